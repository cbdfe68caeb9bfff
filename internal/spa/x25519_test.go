package spa

import (
	"bytes"
	"crypto/ecdh"
	crand "crypto/rand"
	"encoding/hex"
	"math/rand/v2"
	"testing"
)

// TestX25519MatchesECDH: the circl-backed KeyExchanger gives the same shared
// secret and the same refusals as crypto/ecdh, including for public keys
// with the top bit set (masked, RFC 7748 §5) and low-order points.
func TestX25519MatchesECDH(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	var seed [32]byte
	for i := range 200 {
		for j := range seed {
			seed[j] = byte(r.Uint32())
		}
		std, err := ecdh.X25519().NewPrivateKey(seed[:])
		if err != nil {
			t.Fatal(err)
		}
		fast := newX25519Key(std)
		if !fast.PublicKey().Equal(std.PublicKey()) || fast.Curve() != ecdh.X25519() {
			t.Fatal("public key or curve differs")
		}
		var u [32]byte
		for j := range u {
			u[j] = byte(r.Uint32())
		}
		if i%2 == 1 {
			u[31] |= 0x80
		}
		peer, err := ecdh.X25519().NewPublicKey(u[:])
		if err != nil {
			t.Fatal(err)
		}
		want, err1 := std.ECDH(peer)
		got, err2 := fast.ECDH(peer)
		if (err1 == nil) != (err2 == nil) || !bytes.Equal(want, got) {
			t.Fatalf("u=%x: crypto/ecdh %x, %v; circl %x, %v", u, want, err1, got, err2)
		}
	}
	std, _ := ecdh.X25519().NewPrivateKey(seed[:])
	fast := newX25519Key(std)
	for _, h := range []string{
		"0000000000000000000000000000000000000000000000000000000000000000",
		"0100000000000000000000000000000000000000000000000000000000000000",
		"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
	} {
		b, _ := hex.DecodeString(h)
		peer, err := ecdh.X25519().NewPublicKey(b)
		if err != nil {
			t.Fatal(err)
		}
		want, err1 := std.ECDH(peer)
		got, err2 := fast.ECDH(peer)
		if (err1 == nil) != (err2 == nil) || !bytes.Equal(want, got) {
			t.Fatalf("u=%s: crypto/ecdh %x, %v; circl %x, %v", h, want, err1, got, err2)
		}
	}
	p256, _ := ecdh.P256().GenerateKey(crand.Reader)
	if p256 != nil {
		if _, err := fast.ECDH(p256.PublicKey()); err == nil {
			t.Fatal("accepted a P-256 key")
		}
	}
}

package spa

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"net/netip"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/policy"
	"github.com/sesame-gw/sesame/internal/service"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func fill(b byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b + byte(i)
	}
	return out
}

func gatewayKey(tb testing.TB, b byte) *ecdh.PrivateKey {
	tb.Helper()
	k, err := ecdh.X25519().NewPrivateKey(fill(b, 32))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func clientKey(b byte) ed25519.PrivateKey { return ed25519.NewKeyFromSeed(fill(b, 32)) }

// clients is a lookup over named keys.
type clients map[string]ed25519.PublicKey

func (cs clients) lookup(pub ed25519.PublicKey) (string, bool) {
	for name, k := range cs {
		if k.Equal(pub) {
			return name, true
		}
	}
	return "", false
}

func newOpener(tb testing.TB, gw *ecdh.PrivateKey, cs clients) *Opener[string] {
	tb.Helper()
	o, err := NewOpener(gw, KeyResolver(cs.lookup), 0)
	if err != nil {
		tb.Fatal(err)
	}
	return o
}

func req22() policy.Request {
	return policy.Request{
		Services: []service.Range{{Proto: service.TCP, First: 22, Last: 22}},
		Duration: 30 * time.Second,
	}
}

func reqMany() policy.Request {
	return policy.Request{
		Services: []service.Range{
			{Proto: service.TCP, First: 22, Last: 22},
			{Proto: service.UDP, First: 60000, Last: 61000},
			{Proto: service.TCP, First: 443, Last: 443},
		},
		Duration: 5 * time.Minute,
		Addr:     netip.MustParseAddr("2001:db8::42"),
	}
}

func seal(tb testing.TB, priv ed25519.PrivateKey, gw *ecdh.PrivateKey, req policy.Request, now time.Time) []byte {
	tb.Helper()
	pkt, err := Seal(KeyIdentity(priv), gw.PublicKey(), req, now)
	if err != nil {
		tb.Fatal(err)
	}
	return pkt
}

// remac recomputes mac1 for gw, so a mutated packet reaches the HPKE layer.
func remac(pkt []byte, gw *ecdh.PublicKey) []byte {
	out := append([]byte(nil), pkt...)
	n := len(out) - macSize
	if n < 0 {
		return out
	}
	return newPrefilter(gw.Bytes()).mac(out[:n], out[:n])
}

// reseal seals an arbitrary plaintext to gw as a valid datagram (correct
// framing and mac1), returning the packet and its enc. It models an
// attacker who can encrypt to the gateway (everyone can).
func reseal(tb testing.TB, gw *ecdh.PublicKey, pt []byte) ([]byte, []byte) {
	tb.Helper()
	return resealWith(tb, gw, func([]byte) []byte { return pt })
}

// resealWith is reseal with a plaintext built once enc is known.
func resealWith(tb testing.TB, gw *ecdh.PublicKey, build func(enc []byte) []byte) ([]byte, []byte) {
	tb.Helper()
	pk, err := hpke.NewDHKEMPublicKey(gw)
	if err != nil {
		tb.Fatal(err)
	}
	enc, s, err := hpke.NewSender(pk, suiteKDF(), suiteAEAD(), hpkeInfo(gw.Bytes()))
	if err != nil {
		tb.Fatal(err)
	}
	pkt, err := finish(gw.Bytes(), enc, s, build(enc))
	if err != nil {
		tb.Fatal(err)
	}
	return pkt, enc
}

// decrypt opens pkt's HPKE layer with gw (test-only view of the plaintext).
func decrypt(tb testing.TB, gw *ecdh.PrivateKey, pkt []byte) []byte {
	tb.Helper()
	priv, err := hpke.NewDHKEMPrivateKey(gw)
	if err != nil {
		tb.Fatal(err)
	}
	r, err := hpke.NewRecipient(pkt[2:34], priv, suiteKDF(), suiteAEAD(), hpkeInfo(gw.PublicKey().Bytes()))
	if err != nil {
		tb.Fatal(err)
	}
	pt, err := r.Open(nil, pkt[34:len(pkt)-macSize])
	if err != nil {
		tb.Fatal(err)
	}
	return pt
}

package spa

import (
	"bytes"
	"crypto/ecdh"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
	"time"
)

// fuzzFixture is a gateway, the clients it knows, and valid packets: the
// checked-in vectors sealed to it (deterministic, so every fuzz worker
// process agrees on what is valid).
type fuzzFixture struct {
	o     *Opener[string]
	now   time.Time
	valid [][]byte
}

func newFuzzFixture(f *testing.F) *fuzzFixture {
	raw, err := os.ReadFile(vectorsFile)
	if err != nil {
		f.Fatal(err)
	}
	var vf vectorFile
	if err := json.Unmarshal(raw, &vf); err != nil {
		f.Fatal(err)
	}
	ff := &fuzzFixture{}
	cs := clients{}
	gw := vf.Vectors[0].GatewayPrivate
	for _, v := range vf.Vectors {
		if v.GatewayPrivate != gw {
			continue
		}
		pub, _ := hex.DecodeString(v.ClientPublic)
		cs[v.Name] = pub
		pkt, _ := hex.DecodeString(v.Packet)
		ff.valid = append(ff.valid, pkt)
		ff.now = time.UnixMilli(v.TimestampMs)
		f.Add(pkt)
	}
	if len(ff.valid) < 2 {
		f.Fatal("want at least two vectors for one gateway")
	}
	key, _ := hex.DecodeString(gw)
	priv, err := ecdh.X25519().NewPrivateKey(key)
	if err != nil {
		f.Fatal(err)
	}
	ff.o = newOpener(f, priv, cs)
	for _, p := range ff.valid {
		if _, err := ff.o.Open(p, ff.now); err != nil {
			f.Fatalf("vector does not open: %v", err)
		}
	}
	f.Add([]byte{})
	f.Add([]byte{Magic, Version})
	f.Add([]byte("U2FsdGVkX1+base64+fwknop+looking+text"))
	return ff
}

func (ff *fuzzFixture) isValid(b []byte) bool {
	for _, v := range ff.valid {
		if bytes.Equal(v, b) {
			return true
		}
	}
	return false
}

// FuzzOpen: no input panics, and nothing but an original valid packet
// opens (every byte is covered by mac1, the AEAD or the signature).
func FuzzOpen(f *testing.F) {
	ff := newFuzzFixture(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ff.o.Open(b, ff.now)
		if err == nil && !ff.isValid(b) {
			t.Fatalf("a mutated packet opened: %x -> %+v", b, got)
		}
		if err != nil && ReasonOf(err) == "" {
			t.Fatalf("error without a reason: %v", err)
		}
		if perr := ff.o.Prefilter(b); err == nil && perr != nil {
			t.Fatalf("Open accepted what Prefilter refused: %v", perr)
		}
	})
}

// FuzzOpenRemac is FuzzOpen with mac1 recomputed for the gateway after
// mutation, so mutations reach the HPKE and plaintext layers (as they
// would from an attacker who knows the gateway public key).
func FuzzOpenRemac(f *testing.F) {
	ff := newFuzzFixture(f)
	gwPub := ff.o.gw
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) >= MinSize && len(b) <= MaxSize {
			b = append([]byte(nil), b...)
			b[0], b[1] = Magic, Version
			n := len(b) - macSize
			b = newPrefilter(gwPub).mac(b[:n], b[:n])
		}
		got, err := ff.o.Open(b, ff.now)
		if err == nil && !ff.isValid(b) {
			t.Fatalf("a mutated packet opened: %x -> %+v", b, got)
		}
		if err != nil && ReasonOf(err) == "" {
			t.Fatalf("error without a reason: %v", err)
		}
	})
}

// FuzzPlaintext targets the decoder of the sealed plaintext, which anyone
// holding the gateway public key can feed. No panic; whatever decodes
// re-encodes to the same bytes (one encoding per value); the signed body is
// a prefix of the input.
func FuzzPlaintext(f *testing.F) {
	gw := gatewayKey(f, 1)
	alice := clientKey(10)
	for _, req := range []func() []byte{
		func() []byte { return decrypt(f, gw, seal(f, alice, gw, req22(), t0)) },
		func() []byte { return decrypt(f, gw, seal(f, alice, gw, reqMany(), t0)) },
	} {
		f.Add(req())
	}
	ca := testCA(f)
	id, err := CertIdentity([][]byte{testLeaf(f, ca, "alice", alice.Public())}, alice)
	if err != nil {
		f.Fatal(err)
	}
	certPkt, err := Seal(id, gw.PublicKey(), reqMany(), t0)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(decrypt(f, gw, certPkt))
	x509 := []byte{byte(CredX509), 0, 3, 'a', 'b', 'c'}
	x509 = binary.BigEndian.AppendUint64(x509, 1)
	x509 = append(x509, 0, 0, 0, 1, 4, 192, 0, 2, 1, 1, 17, 0, 53, 0, 53, 2, 9, 9)
	f.Add(x509)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, pt []byte) {
		p, err := parsePlaintext(pt)
		if err != nil {
			if ReasonOf(err) != ErrMalformed {
				t.Fatalf("error %v is not malformed", err)
			}
			return
		}
		body, err := appendBody(nil, p.cred, p.ts, p.req)
		if err != nil {
			t.Fatalf("decoded %+v does not re-encode: %v", p, err)
		}
		again := append(append(body, byte(len(p.sig))), p.sig...)
		if !bytes.Equal(again, pt) || !bytes.Equal(body, p.body) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", pt, again)
		}
	})
}

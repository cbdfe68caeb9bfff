package spa

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/policy"
)

// Test certificates, built deterministically with crypto/x509 only (package
// pki, which issues real ones, imports this package). The CA key is
// Ed25519, so the certificate signatures are deterministic too.

func testCAKey() ed25519.PrivateKey { return ed25519.NewKeyFromSeed(fill(0xC0, 32)) }

func testCA(tb testing.TB) *x509.Certificate {
	tb.Helper()
	key := testCAKey()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Sesame test CA"},
		NotBefore:             time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, key.Public(), key)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// testLeaf issues a client certificate for pub, signed by testCA.
func testLeaf(tb testing.TB, ca *x509.Certificate, name string, pub crypto.PublicKey) []byte {
	tb.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(int64(len(name)) + 1000),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(nil, tmpl, ca, pub, testCAKey())
	if err != nil {
		tb.Fatal(err)
	}
	return der
}

func p256Key(tb testing.TB, b byte) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), fill(b, 32))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// certResolver is a minimal kind-2 resolver for tests: one certificate,
// issued by ca. The real one (package pki) checks much more.
func certResolver(ca *x509.Certificate) Resolver[string] {
	return func(cred Credential, _ time.Time) (crypto.PublicKey, string, error) {
		if cred.Kind != CredX509 {
			return nil, "", ErrCredential
		}
		chain, err := ParseChain(cred.Data)
		if err != nil || len(chain) != 1 {
			return nil, "", fmt.Errorf("%w: %v", ErrCredential, err)
		}
		leaf, err := x509.ParseCertificate(chain[0])
		if err != nil {
			return nil, "", fmt.Errorf("%w: %v", ErrCredential, err)
		}
		if err := leaf.CheckSignatureFrom(ca); err != nil {
			return nil, "", fmt.Errorf("%w: %v", ErrCredential, err)
		}
		return leaf.PublicKey, leaf.Subject.CommonName, nil
	}
}

func TestChainRoundTrip(t *testing.T) {
	for _, certs := range [][][]byte{
		{{1}},
		{[]byte("leaf"), []byte("intermediate")},
		{make([]byte, 1000), {2}, {3}, {4}},
	} {
		data, err := EncodeChain(certs)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseChain(data)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(certs) {
			t.Errorf("ParseChain(EncodeChain(%d certs)) differs", len(certs))
		}
	}
}

func TestChainRejects(t *testing.T) {
	for name, data := range map[string][]byte{
		"empty":           nil,
		"short length":    {0},
		"zero length":     {0, 0},
		"length too long": {0, 3, 1, 2},
		"trailing byte":   {0, 1, 7, 9},
		"five certs":      {0, 1, 1, 0, 1, 2, 0, 1, 3, 0, 1, 4, 0, 1, 5},
	} {
		if _, err := ParseChain(data); !errors.Is(err, ErrChain) {
			t.Errorf("%s: ParseChain = %v, want ErrChain", name, err)
		}
	}
	for name, certs := range map[string][][]byte{
		"none":       nil,
		"empty cert": {{}},
		"five":       {{1}, {2}, {3}, {4}, {5}},
		"huge":       {make([]byte, MaxSize+1)},
	} {
		if _, err := EncodeChain(certs); !errors.Is(err, ErrChain) {
			t.Errorf("%s: EncodeChain = %v, want ErrChain", name, err)
		}
	}
}

func TestCertIdentity(t *testing.T) {
	ca := testCA(t)
	alice := clientKey(10)
	leaf := testLeaf(t, ca, "alice", alice.Public())
	id, err := CertIdentity([][]byte{leaf}, alice)
	if err != nil {
		t.Fatal(err)
	}
	if id.Credential.Kind != CredX509 || len(id.Credential.Data) != 2+len(leaf) {
		t.Errorf("credential = %v, %d bytes", id.Credential.Kind, len(id.Credential.Data))
	}
	if _, err := CertIdentity([][]byte{leaf}, clientKey(11)); err == nil {
		t.Error("CertIdentity accepted a key that does not match the certificate")
	}
	if _, err := CertIdentity([][]byte{[]byte("junk")}, alice); err == nil {
		t.Error("CertIdentity accepted junk for a certificate")
	}
	if _, err := CertIdentity(nil, alice); err == nil {
		t.Error("CertIdentity accepted an empty chain")
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CertIdentity([][]byte{testLeaf(t, ca, "p384", p384.Public())}, p384); err == nil {
		t.Error("CertIdentity accepted a P-384 key")
	}
}

// Kind-2 packets seal and open with Ed25519 and ECDSA P-256 leaves; a
// packet signed by another key than the certificate's is refused.
func TestCertRoundTrip(t *testing.T) {
	gw := gatewayKey(t, 1)
	ca := testCA(t)
	o, err := NewOpener(gw, certResolver(ca), 0)
	if err != nil {
		t.Fatal(err)
	}
	ed := clientKey(10)
	ec := p256Key(t, 0x20)
	for _, tc := range []struct {
		name string
		key  crypto.Signer
	}{{"ed25519", ed}, {"p256", ec}} {
		t.Run(tc.name, func(t *testing.T) {
			leaf := testLeaf(t, ca, tc.name, tc.key.Public())
			id, err := CertIdentity([][]byte{leaf}, tc.key)
			if err != nil {
				t.Fatal(err)
			}
			for _, req := range [](func() policy.Request){req22, reqMany} {
				pkt, err := Seal(id, gw.PublicKey(), req(), t0)
				if err != nil {
					t.Fatal(err)
				}
				if len(pkt) > MaxSize {
					t.Fatalf("%d bytes", len(pkt))
				}
				got, err := o.Open(pkt, t0)
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				if got.Client != tc.name || got.Credential.Kind != CredX509 || got.Request.Duration != req().Duration {
					t.Errorf("Open = %+v", got)
				}
			}
			// The right certificate, signed by another key of the same kind.
			other := Identity{Credential: id.Credential, Signer: clientKey(11)}
			if tc.name == "p256" {
				other.Signer = p256Key(t, 0x21)
			}
			pkt, err := Seal(other, gw.PublicKey(), req22(), t0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := o.Open(pkt, t0); ReasonOf(err) != ErrSignature {
				t.Errorf("foreign signer: %v, want signature", err)
			}
		})
	}
}

// A signature of the wrong algorithm for the certificate's key, or an
// unsupported certificate key, never verifies.
func TestVerifyKinds(t *testing.T) {
	msg := []byte("transcript")
	ed := clientKey(1)
	ec := p256Key(t, 0x30)
	edSig := ed25519.Sign(ed, msg)
	ecSig, err := sign(ec, msg)
	if err != nil {
		t.Fatal(err)
	}
	if verify(ed.Public(), msg, edSig) != nil || verify(ec.Public(), msg, ecSig) != nil {
		t.Fatal("valid signatures refused")
	}
	if ReasonOf(verify(ec.Public(), msg, edSig)) != ErrSignature || ReasonOf(verify(ed.Public(), msg, ecSig)) != ErrSignature {
		t.Error("cross-algorithm signature accepted")
	}
	if ReasonOf(verify(ec.Public(), []byte("other"), ecSig)) != ErrSignature {
		t.Error("ECDSA signature over another message accepted")
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if ReasonOf(verify(p384.Public(), msg, ecSig)) != ErrCredential {
		t.Error("P-384 signer not refused as credential")
	}
	if ReasonOf(verify((*ecdsa.PublicKey)(nil), msg, ecSig)) != ErrCredential {
		t.Error("nil ECDSA key not refused as credential")
	}
}

func TestByKind(t *testing.T) {
	gw := gatewayKey(t, 1)
	ca := testCA(t)
	alice := clientKey(10)
	both := ByKind(map[CredentialKind]Resolver[string]{
		CredEd25519: KeyResolver(clients{"alice": alice.Public().(ed25519.PublicKey)}.lookup),
		CredX509:    certResolver(ca),
	})
	o, err := NewOpener(gw, both, 0)
	if err != nil {
		t.Fatal(err)
	}
	keyPkt := seal(t, alice, gw, req22(), t0)
	id, err := CertIdentity([][]byte{testLeaf(t, ca, "cert-alice", alice.Public())}, alice)
	if err != nil {
		t.Fatal(err)
	}
	certPkt, err := Seal(id, gw.PublicKey(), req22(), t0)
	if err != nil {
		t.Fatal(err)
	}
	for pkt, want := range map[*[]byte]string{&keyPkt: "alice", &certPkt: "cert-alice"} {
		got, err := o.Open(*pkt, t0)
		if err != nil || got.Client != want {
			t.Errorf("Open = %v, %v; want client %s", got, err, want)
		}
	}
	keysOnly, err := NewOpener(gw, ByKind(map[CredentialKind]Resolver[string]{
		CredEd25519: KeyResolver(clients{"alice": alice.Public().(ed25519.PublicKey)}.lookup),
		CredX509:    nil,
	}), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keysOnly.Open(certPkt, t0); ReasonOf(err) != ErrCredential {
		t.Errorf("kind without a resolver: %v, want credential", err)
	}
}

// The size budget of docs/protocol.md §9: a realistic Ed25519 certificate
// with one service fits with room to spare, and the largest chain that
// fits is refused one byte later.
func TestCertPacketSize(t *testing.T) {
	gw := gatewayKey(t, 1)
	ca := testCA(t)
	alice := clientKey(10)
	leaf := testLeaf(t, ca, "alice", alice.Public())
	id, err := CertIdentity([][]byte{leaf}, alice)
	if err != nil {
		t.Fatal(err)
	}
	r6 := req22()
	r6.Addr = reqMany().Addr
	for name, r := range map[string]policy.Request{"source": req22(), "ipv6": r6} {
		pkt, err := Seal(id, gw.PublicKey(), r, t0)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("ed25519 certificate of %d bytes, one service, %s address: %d-byte datagram", len(leaf), name, len(pkt))
	}
	// The biggest opaque credential that fits with an IPv6 address, one
	// service and an ECDSA-sized signature.
	ec := p256Key(t, 0x40)
	fixed := overhead + 1 + 2 + 8 + 4 + 1 + 16 + 1 + serviceSize + 1 + MaxSignatureSize
	fits := Identity{Credential: Credential{Kind: CredX509, Data: make([]byte, MaxSize-fixed)}, Signer: ec}
	if _, err := Seal(fits, gw.PublicKey(), r6, t0); err != nil {
		t.Errorf("credential of %d bytes: %v", MaxSize-fixed, err)
	}
	fits.Credential.Data = make([]byte, MaxSize-fixed+1)
	if _, err := Seal(fits, gw.PublicKey(), r6, t0); !errors.Is(err, ErrTooLarge) {
		t.Errorf("credential of %d bytes: %v, want ErrTooLarge", MaxSize-fixed+1, err)
	}
	if CredentialRoom(1) != MaxSize-fixed {
		t.Errorf("CredentialRoom(1) = %d, want %d", CredentialRoom(1), MaxSize-fixed)
	}
	if MaxSize-fixed != 1055 {
		t.Errorf("room for the chain: %d bytes, docs/protocol.md §9 says 1055", MaxSize-fixed)
	}
}

// FuzzChain: ParseChain never panics, and what it accepts re-encodes to the
// same bytes (one encoding per chain).
func FuzzChain(f *testing.F) {
	f.Add([]byte{0, 1, 0x30})
	f.Add([]byte{0, 2, 0x30, 0, 0, 1, 9})
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := ParseChain(data)
		if err != nil {
			if !errors.Is(err, ErrChain) {
				t.Fatalf("error %v is not ErrChain", err)
			}
			return
		}
		again, err := EncodeChain(certs)
		if err != nil {
			t.Fatalf("parsed chain does not re-encode: %v", err)
		}
		if string(again) != string(data) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", data, again)
		}
	})
}

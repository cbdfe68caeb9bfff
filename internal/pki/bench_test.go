package pki

import (
	"crypto"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/policy"
	"github.com/sesame-gw/sesame/internal/spa"
)

// benchOpen is the gateway's per-packet cost for a valid certificate
// packet: mac1, X25519, AEAD, parse, chain check (cache hit or miss),
// CRL lookup, signature verification.
func benchOpen(b *testing.B, key crypto.Signer, cacheSize int) {
	ca := defaultCA(b)
	gwKey := gatewayKey(b, 1)
	v, err := NewVerifier(ca.cert, Options{CRLRequired: true, CacheSize: cacheSize})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := v.SetCRL(ca.crl(b, crlOpts{revoked: []int64{1, 2, 3}})); err != nil {
		b.Fatal(err)
	}
	o, err := spa.NewOpener(gwKey, spa.ByKind(map[spa.CredentialKind]spa.Resolver[*policy.Client]{
		spa.CredX509: v.Resolver(Scope{Key: gwKey.PublicKey().Bytes()}, Local{}),
	}), 0)
	if err != nil {
		b.Fatal(err)
	}
	pkt := sealCert(b, ca.issue(b, leafOpts{key: key.Public()}), key, gwKey, req("22/tcp", time.Minute), t0)
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := o.Open(pkt, t0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenCertEd25519(b *testing.B)        { benchOpen(b, edKey(10), 0) }
func BenchmarkOpenCertEd25519NoCache(b *testing.B) { benchOpen(b, edKey(10), -1) }
func BenchmarkOpenCertP256(b *testing.B)           { benchOpen(b, p256Key(b, 0x20), 0) }
func BenchmarkOpenCertP256NoCache(b *testing.B)    { benchOpen(b, p256Key(b, 0x20), -1) }

package pki

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/policy"
	"github.com/sesame-gw/sesame/internal/service"
	"github.com/sesame-gw/sesame/internal/spa"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func fill(b byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b + byte(i)
	}
	return out
}

func edKey(b byte) ed25519.PrivateKey { return ed25519.NewKeyFromSeed(fill(b, 32)) }

func p256Key(tb testing.TB, b byte) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), fill(b, 32))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func gatewayKey(tb testing.TB, b byte) *ecdh.PrivateKey {
	tb.Helper()
	k, err := ecdh.X25519().NewPrivateKey(fill(b, 32))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// testCA is a CA certificate and its key.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newCA(tb testing.TB, name string, key crypto.Signer) *testCA {
	tb.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             t0.AddDate(-1, 0, 0),
		NotAfter:              t0.AddDate(5, 0, 0),
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
	return &testCA{cert: c, key: key}
}

func defaultCA(tb testing.TB) *testCA { return newCA(tb, "Sesame test CA", edKey(0xC0)) }

func ssh10m() Authorization {
	return Authorization{Services: []service.Range{{Proto: service.TCP, First: 22, Last: 22}}, MaxDuration: 10 * time.Minute}
}

// leafOpts describe a client certificate; zero fields take good values.
type leafOpts struct {
	name      string
	serial    int64
	key       crypto.PublicKey
	notBefore time.Time
	notAfter  time.Time
	authz     *Authorization
	noAuthz   bool
	nonCrit   bool
	eku       []x509.ExtKeyUsage
	ku        x509.KeyUsage
	isCA      bool
	extra     []pkix.Extension
}

func (ca *testCA) issue(tb testing.TB, o leafOpts) []byte {
	tb.Helper()
	if o.name == "" {
		o.name = "alice"
	}
	if o.serial == 0 {
		o.serial = 4242
	}
	if o.key == nil {
		o.key = edKey(10).Public()
	}
	if o.notBefore.IsZero() {
		o.notBefore = t0.Add(-time.Hour)
	}
	if o.notAfter.IsZero() {
		o.notAfter = t0.AddDate(0, 3, 0)
	}
	if o.eku == nil {
		o.eku = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	if o.ku == 0 {
		o.ku = x509.KeyUsageDigitalSignature
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(o.serial),
		Subject:      pkix.Name{CommonName: o.name},
		NotBefore:    o.notBefore,
		NotAfter:     o.notAfter,
		KeyUsage:     o.ku,
		ExtKeyUsage:  o.eku,
	}
	if o.isCA {
		tmpl.BasicConstraintsValid, tmpl.IsCA = true, true
	}
	if !o.noAuthz {
		a := ssh10m()
		if o.authz != nil {
			a = *o.authz
		}
		ext, err := a.Extension()
		if err != nil {
			tb.Fatal(err)
		}
		ext.Critical = !o.nonCrit
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, ext)
	}
	tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, o.extra...)
	der, err := x509.CreateCertificate(nil, tmpl, ca.cert, o.key, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	return der
}

// crlOpts describe a CRL; zero fields take good values.
type crlOpts struct {
	number     int64
	thisUpdate time.Time
	nextUpdate time.Time
	revoked    []int64
	signer     crypto.Signer // another key: a forged CRL
}

func (ca *testCA) crl(tb testing.TB, o crlOpts) []byte {
	tb.Helper()
	if o.number == 0 {
		o.number = 1
	}
	if o.thisUpdate.IsZero() {
		o.thisUpdate = t0.Add(-time.Hour)
	}
	if o.nextUpdate.IsZero() {
		o.nextUpdate = o.thisUpdate.Add(7 * 24 * time.Hour)
	}
	rl := &x509.RevocationList{Number: big.NewInt(o.number), ThisUpdate: o.thisUpdate, NextUpdate: o.nextUpdate}
	for _, s := range o.revoked {
		rl.RevokedCertificateEntries = append(rl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: big.NewInt(s), RevocationTime: o.thisUpdate})
	}
	issuer, key := ca.cert, ca.key
	if o.signer != nil {
		key = o.signer
		// CreateRevocationList refuses a key that does not match the
		// issuer; forge with a look-alike issuer of the same name.
		issuer = newCA(tb, ca.cert.Subject.CommonName, o.signer).cert
		issuer.SubjectKeyId = ca.cert.SubjectKeyId
	}
	der, err := x509.CreateRevocationList(nil, rl, issuer, key)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

func newVerifier(tb testing.TB, ca *testCA, required bool, crl []byte) *Verifier {
	tb.Helper()
	v, err := NewVerifier(ca.cert, Options{CRLRequired: required})
	if err != nil {
		tb.Fatal(err)
	}
	if crl != nil {
		if _, err := v.SetCRL(crl); err != nil {
			tb.Fatal(err)
		}
	}
	return v
}

func req(svc string, d time.Duration) policy.Request {
	r, err := service.ParseRange(svc, 0)
	if err != nil {
		panic(err)
	}
	return policy.Request{Services: []service.Range{r}, Duration: d}
}

func sealCert(tb testing.TB, leaf []byte, key crypto.Signer, gw *ecdh.PrivateKey, r policy.Request, now time.Time) []byte {
	tb.Helper()
	// Not spa.CertIdentity: tests also seal with a key that does not
	// match the certificate.
	data, err := spa.EncodeChain([][]byte{leaf})
	if err != nil {
		tb.Fatal(err)
	}
	id := spa.Identity{Credential: spa.Credential{Kind: spa.CredX509, Data: data}, Signer: key}
	pkt, err := spa.Seal(id, gw.PublicKey(), r, now)
	if err != nil {
		tb.Fatal(err)
	}
	return pkt
}

func mustPEM(tb testing.TB, p []byte) []byte {
	tb.Helper()
	b, _ := pem.Decode(p)
	if b == nil {
		tb.Fatal("no PEM block")
	}
	return b.Bytes
}

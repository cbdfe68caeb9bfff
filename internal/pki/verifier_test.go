package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/spa"
)

func wantReason(t *testing.T, what string, err error, want spa.Reason) {
	t.Helper()
	if got := spa.ReasonOf(err); got != want {
		t.Errorf("%s: %v (reason %q), want %q", what, err, got, want)
	}
}

func TestCheckValid(t *testing.T) {
	ca := defaultCA(t)
	v := newVerifier(t, ca, true, ca.crl(t, crlOpts{}))
	for name, key := range map[string]any{"ed25519": edKey(10).Public(), "p256": p256Key(t, 0x20).Public()} {
		leaf := ca.issue(t, leafOpts{key: key})
		c, err := v.Check([][]byte{leaf}, t0)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if c.Name != "alice" || c.Serial() != "1092" || c.Authorization.MaxDuration != 10*time.Minute {
			t.Errorf("%s: Check = %+v", name, c)
		}
		// Cached: the same answer again.
		if again, err := v.Check([][]byte{leaf}, t0); err != nil || again != c {
			t.Errorf("%s: second Check = %v, %v (want the cached certificate)", name, again, err)
		}
	}
}

func TestCheckRejects(t *testing.T) {
	ca := defaultCA(t)
	v := newVerifier(t, ca, true, ca.crl(t, crlOpts{revoked: []int64{666}}))
	other := newCA(t, "Some other CA", edKey(0xD0))
	lookalike := newCA(t, "Sesame test CA", edKey(0xD0)) // same name, other key
	lookalike.cert.SubjectKeyId = ca.cert.SubjectKeyId
	p384, err := ecdsa.GenerateKey(elliptic.P384(), nil)
	if err != nil {
		t.Fatal(err)
	}
	good := ca.issue(t, leafOpts{})
	tampered := bytes.Clone(good)
	ext, _ := ssh10m().Marshal()
	i := bytes.Index(tampered, ext)
	if i < 0 {
		t.Fatal("extension not found in the certificate")
	}
	tampered[i+len(ext)-1] = 0xff // maxDuration 600 s -> 0x02ff: a valid, longer duration
	unknownCrit := pkix.Extension{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Critical: true, Value: []byte{5, 0}}
	junkAuthz := pkix.Extension{Id: OIDAuthorization, Critical: true, Value: []byte{0x30, 0x00}}

	cases := []struct {
		name  string
		chain [][]byte
		now   time.Time
		want  spa.Reason
	}{
		{"expired", [][]byte{ca.issue(t, leafOpts{notAfter: t0.Add(-time.Second)})}, t0, ErrExpired},
		{"not yet valid", [][]byte{ca.issue(t, leafOpts{notBefore: t0.Add(time.Minute)})}, t0, ErrNotYetValid},
		{"wrong CA", [][]byte{other.issue(t, leafOpts{})}, t0, ErrUnknownCA},
		{"look-alike CA (same name, other key)", [][]byte{lookalike.issue(t, leafOpts{})}, t0, ErrBadSignature},
		{"tampered extension", [][]byte{tampered}, t0, ErrBadSignature},
		{"revoked", [][]byte{ca.issue(t, leafOpts{serial: 666})}, t0, ErrRevoked},
		{"two certificates", [][]byte{good, ca.cert.Raw}, t0, ErrBadCertificate},
		{"no certificate", nil, t0, ErrBadCertificate},
		{"not DER", [][]byte{[]byte("certificate")}, t0, ErrBadCertificate},
		{"server auth only", [][]byte{ca.issue(t, leafOpts{eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})}, t0, ErrBadCertificate},
		{"key usage without signature", [][]byte{ca.issue(t, leafOpts{ku: x509.KeyUsageKeyEncipherment})}, t0, ErrBadCertificate},
		{"no authorization", [][]byte{ca.issue(t, leafOpts{noAuthz: true})}, t0, ErrBadCertificate},
		{"authorization not critical", [][]byte{ca.issue(t, leafOpts{nonCrit: true})}, t0, ErrBadCertificate},
		{"authorization twice", [][]byte{ca.issue(t, leafOpts{noAuthz: true, extra: []pkix.Extension{junkAuthz, junkAuthz}})}, t0, ErrBadCertificate},
		{"invalid authorization", [][]byte{ca.issue(t, leafOpts{noAuthz: true, extra: []pkix.Extension{junkAuthz}})}, t0, ErrBadCertificate},
		{"unknown critical extension", [][]byte{ca.issue(t, leafOpts{extra: []pkix.Extension{unknownCrit}})}, t0, ErrBadCertificate},
		{"a CA certificate", [][]byte{ca.issue(t, leafOpts{isCA: true, ku: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign})}, t0, ErrBadCertificate},
		{"P-384 key", [][]byte{ca.issue(t, leafOpts{key: p384.Public()})}, t0, ErrBadCertificate},
		{"CA expired", [][]byte{ca.issue(t, leafOpts{notAfter: t0.AddDate(10, 0, 0)})}, t0.AddDate(6, 0, 0), ErrExpired},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Freshness is not what these cases are about.
			vv := v
			if !tc.now.Equal(t0) {
				vv = newVerifier(t, ca, false, ca.crl(t, crlOpts{}))
			}
			c, err := vv.Check(tc.chain, tc.now)
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			t.Log(err)
			wantReason(t, tc.name, err, tc.want)
		})
	}
	// The control: the untampered certificate passes.
	if _, err := v.Check([][]byte{good}, t0); err != nil {
		t.Fatalf("control: %v", err)
	}
	// A rejection is never cached: the tampered certificate stays refused
	// after the good one (same serial) was accepted.
	if _, err := v.Check([][]byte{tampered}, t0); spa.ReasonOf(err) != ErrBadSignature {
		t.Errorf("tampered after good: %v", err)
	}
}

func TestCRLStates(t *testing.T) {
	ca := defaultCA(t)
	leaf := ca.issue(t, leafOpts{serial: 77})
	chain := [][]byte{leaf}
	week := 7 * 24 * time.Hour
	crl := ca.crl(t, crlOpts{number: 5, thisUpdate: t0.Add(-time.Hour), nextUpdate: t0.Add(week)})

	t.Run("no CRL", func(t *testing.T) {
		for _, required := range []bool{true, false} {
			v := newVerifier(t, ca, required, nil)
			_, err := v.Check(chain, t0)
			wantReason(t, "no CRL", err, ErrNoCRL)
		}
	})
	t.Run("stale, required", func(t *testing.T) {
		v := newVerifier(t, ca, true, crl)
		for name, now := range map[string]time.Time{
			"at next update":     t0.Add(week),
			"after next update":  t0.Add(2 * week),
			"before this update": t0.Add(-2 * time.Hour),
		} {
			_, err := v.Check(chain, now)
			if name == "before this update" {
				// The certificate is valid from t0-1h; test the CRL alone.
				_, err = v.Check([][]byte{ca.issue(t, leafOpts{serial: 78, notBefore: t0.Add(-3 * time.Hour)})}, now)
			}
			wantReason(t, name, err, ErrStaleCRL)
		}
		if _, err := v.Check(chain, t0.Add(week-time.Second)); err != nil {
			t.Errorf("just before next update: %v", err)
		}
	})
	t.Run("stale, not required", func(t *testing.T) {
		v := newVerifier(t, ca, false, ca.crl(t, crlOpts{number: 5, thisUpdate: t0.Add(-time.Hour), nextUpdate: t0.Add(week), revoked: []int64{99}}))
		if _, err := v.Check(chain, t0.Add(2*week)); err != nil {
			t.Errorf("stale CRL with crl_required = false: %v", err)
		}
		// The last good CRL still revokes.
		_, err := v.Check([][]byte{ca.issue(t, leafOpts{serial: 99})}, t0.Add(2*week))
		wantReason(t, "revoked by a stale CRL", err, ErrRevoked)
	})
	t.Run("revocation takes effect on SetCRL", func(t *testing.T) {
		v := newVerifier(t, ca, true, crl)
		if _, err := v.Check(chain, t0); err != nil {
			t.Fatal(err)
		}
		info, err := v.SetCRL(ca.crl(t, crlOpts{number: 6, revoked: []int64{77}}))
		if err != nil || info.Number.Int64() != 6 || info.Revoked != 1 {
			t.Fatalf("SetCRL = %+v, %v", info, err)
		}
		_, err = v.Check(chain, t0)
		wantReason(t, "after revocation", err, ErrRevoked)
	})
}

func TestSetCRLRejects(t *testing.T) {
	ca := defaultCA(t)
	other := newCA(t, "Some other CA", edKey(0xD0))
	v := newVerifier(t, ca, true, ca.crl(t, crlOpts{number: 5}))
	leaf := [][]byte{ca.issue(t, leafOpts{serial: 77})}
	good := ca.crl(t, crlOpts{number: 5})
	cases := map[string][]byte{
		"forged (signed by another key, same issuer name)": ca.crl(t, crlOpts{number: 9, revoked: []int64{1}, signer: edKey(0xD0)}),
		"another CA's CRL":           other.crl(t, crlOpts{number: 9}),
		"rollback (lower number)":    ca.crl(t, crlOpts{number: 4}),
		"same number, other content": ca.crl(t, crlOpts{number: 5, revoked: []int64{77}}),
		"junk":                       []byte("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"),
		"wrong PEM type":             bytes.Replace(good, []byte("X509 CRL"), []byte("CERTIFICATE"), 2),
		"trailing data":              append(bytes.Clone(good), "junk"...),
		"empty":                      nil,
		"too large":                  make([]byte, MaxCRLSize+1),
	}
	for name, data := range cases {
		if _, err := v.SetCRL(data); !errors.Is(err, ErrCRL) {
			t.Errorf("%s: SetCRL = %v, want ErrCRL", name, err)
		}
	}
	if _, err := v.SetCRL(ca.crl(t, crlOpts{number: 4})); !errors.Is(err, ErrCRLRollback) {
		t.Errorf("rollback: %v, want ErrCRLRollback", err)
	}
	// None of them replaced the good CRL: 77 is not revoked, number 5.
	if info, _ := v.CRL(); info.Number.Int64() != 5 {
		t.Errorf("CRL in use has number %v", info.Number)
	}
	if _, err := v.Check(leaf, t0); err != nil {
		t.Errorf("after refused CRLs: %v", err)
	}
	// The same CRL again, in DER this time, is fine.
	der := ca.crl(t, crlOpts{number: 5})
	if _, err := v.SetCRL(pemBody(t, der)); err != nil {
		t.Errorf("same CRL in DER: %v", err)
	}
}

func pemBody(t *testing.T, p []byte) []byte {
	t.Helper()
	crls, err := x509.ParseRevocationList(mustPEM(t, p))
	if err != nil {
		t.Fatal(err)
	}
	return crls.Raw
}

func TestNewVerifierRejects(t *testing.T) {
	ca := defaultCA(t)
	leaf, err := x509.ParseCertificate(ca.issue(t, leafOpts{}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewVerifier(leaf, Options{}); err == nil {
		t.Error("a leaf accepted as CA")
	}
	if _, err := NewVerifier(nil, Options{}); err == nil {
		t.Error("nil CA accepted")
	}
}

// Checks run concurrently with CRL swaps (the background updater): each
// sees a whole CRL, and after the swap that revokes the certificate every
// later Check refuses it.
func TestConcurrentSwap(t *testing.T) {
	ca := defaultCA(t)
	v := newVerifier(t, ca, true, ca.crl(t, crlOpts{number: 1}))
	leaf := [][]byte{ca.issue(t, leafOpts{serial: 5})}
	crls := make([][]byte, 20)
	for i := range crls {
		o := crlOpts{number: int64(i + 2)}
		if i == len(crls)-1 {
			o.revoked = []int64{5}
		}
		crls[i] = ca.crl(t, o)
	}
	done := make(chan struct{})
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				if _, err := v.Check(leaf, t0); err != nil && spa.ReasonOf(err) != ErrRevoked {
					errs <- err
					return
				}
			}
		}()
	}
	for _, c := range crls {
		if _, err := v.SetCRL(c); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	_, err := v.Check(leaf, t0)
	wantReason(t, "after the last swap", err, ErrRevoked)
}

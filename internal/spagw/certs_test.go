package spagw

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/firewall"
	"github.com/sesame-gw/sesame/internal/pki"
	"github.com/sesame-gw/sesame/internal/pki/cadir"
	"github.com/sesame-gw/sesame/internal/policy"
	"github.com/sesame-gw/sesame/internal/replay"
	"github.com/sesame-gw/sesame/internal/service"
	"github.com/sesame-gw/sesame/internal/spa"
)

// certCA is a CA directory made at t0 and a verifier loaded with its CRL.
type certCA struct {
	ca *cadir.CA
	v  *pki.Verifier
}

func newCertCA(t *testing.T, name string) *certCA {
	t.Helper()
	ca, err := cadir.Init(filepath.Join(t.TempDir(), "ca"), cadir.InitOptions{Name: name}, t0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ca.Close() })
	v, err := pki.NewVerifier(ca.Cert(), pki.Options{CRLRequired: true})
	if err != nil {
		t.Fatal(err)
	}
	c := &certCA{ca: ca, v: v}
	c.loadCRL(t)
	return c
}

// loadCRL hands the CA's crl.pem to the verifier.
func (c *certCA) loadCRL(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.ca.Dir(), cadir.CRLFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.v.SetCRL(b); err != nil {
		t.Fatal(err)
	}
}

// issue certifies key for a, valid a day from t0-1h, and returns the
// identity that seals with it.
func (c *certCA) issue(t *testing.T, name string, key ed25519.PrivateKey, a pki.Authorization) (spa.Identity, string) {
	t.Helper()
	cert, err := c.ca.Issue(cadir.IssueRequest{Name: name, PublicKey: key.Public(), Authorization: a, ValidFor: 24 * time.Hour}, t0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	id, err := spa.CertIdentity([][]byte{cert.Raw}, key)
	if err != nil {
		t.Fatal(err)
	}
	return id, pki.SerialText(cert.SerialNumber)
}

func sealID(t *testing.T, id spa.Identity, f *fixture, r policy.Request, at time.Time) []byte {
	t.Helper()
	p, err := spa.Seal(id, f.gw.PublicKey(), r, at)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Certificate clients get the intersection of their certificate and the
// local limit; every certificate refusal is logged (not quiet) with its
// reason and a detail naming the certificate; raw-key clients are
// unaffected; without Certs, certificates are refused with credential.
func TestCertificateClients(t *testing.T) {
	f := newFixture(t)
	c := newCertCA(t, "")
	other := newCertCA(t, "Other CA")
	s := f.settings()
	s.Certs = &Certificates{Verifier: c.v, Names: []string{"gw1"},
		Local: pki.Local{Allow: ranges(t, "22/tcp", "443/tcp"), MaxDuration: 2 * time.Minute}}
	h, err := New(s, replay.New(0), nil)
	if err != nil {
		t.Fatal(err)
	}
	auth := func(d time.Duration, svcs ...string) pki.Authorization {
		return pki.Authorization{Services: ranges(t, svcs...), MaxDuration: d}
	}
	alice, _ := c.issue(t, "alice", idKey(40), auth(10*time.Minute, "22/tcp", "80/tcp"))
	dave, daveSerial := c.issue(t, "dave", idKey(41), auth(time.Minute, "22/tcp"))
	web, _ := c.issue(t, "web", idKey(42), auth(time.Minute, "80/tcp"))
	mallory, _ := other.issue(t, "mallory", idKey(43), auth(time.Minute, "22/tcp"))
	scoped := auth(time.Minute, "22/tcp")
	scoped.GatewayKeys = [][]byte{gwKey(t, 99).PublicKey().Bytes()}
	elsewhere, _ := c.issue(t, "elsewhere", idKey(44), scoped)
	scoped.GatewayKeys = [][]byte{f.gw.PublicKey().Bytes()}
	here, _ := c.issue(t, "here", idKey(45), scoped)
	scoped.GatewayKeys, scoped.GatewayNames = nil, []string{"GW1"}
	named, _ := c.issue(t, "named", idKey(46), scoped)
	if _, _, _, err := c.ca.RevokeSerial(daveSerial, t0.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	c.loadCRL(t)

	at := t0.Add(time.Second)
	for _, tc := range []struct {
		name   string
		id     spa.Identity
		req    policy.Request
		reason string
		client string
		detail string
	}{
		{"granted", alice, req(t, 2*time.Minute, "22/tcp"), "", "alice", ""},
		{"scope: this gateway's key", here, req(t, time.Minute, "22/tcp"), "", "here", ""},
		{"scope: this gateway's name", named, req(t, time.Minute, "22/tcp"), "", "named", ""},
		{"in the certificate, not here", alice, req(t, time.Minute, "80/tcp"), "service-not-allowed", "alice", "80/tcp"},
		{"here, not in the certificate", alice, req(t, time.Minute, "443/tcp"), "service-not-allowed", "alice", "443/tcp"},
		{"local max duration", alice, req(t, 3*time.Minute, "22/tcp"), "duration-too-long", "alice", "3m0s > 2m0s"},
		{"revoked", dave, req(t, time.Minute, "22/tcp"), "revoked", "", "dave, serial " + daveSerial},
		{"another CA", mallory, req(t, time.Minute, "22/tcp"), "unknown-ca", "", `issued by "CN=Other CA"`},
		{"nothing in common", web, req(t, time.Minute, "80/tcp"), "not-authorized", "", "web"},
		{"scope: another gateway", elsewhere, req(t, time.Minute, "22/tcp"), "not-authorized", "", "not valid at this gateway"},
		{"raw key still works", spa.KeyIdentity(f.alice), req(t, time.Minute, "22/tcp"), "", "alice", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := h.Handle(at, src4, gwIP, sealID(t, tc.id, f, tc.req, at))
			if v.Reason != tc.reason || v.Client != tc.client || v.Quiet || !strings.Contains(v.Detail, tc.detail) {
				t.Fatalf("verdict %+v; want reason %q client %q detail %q", v, tc.reason, tc.client, tc.detail)
			}
			if tc.reason == "" && (len(v.Grants) != 1 || v.Grants[0] != (firewall.Grant{Addr: src4, Service: service.Service{Proto: service.TCP, Port: 22}, TTL: tc.req.Duration})) {
				t.Fatalf("grants %v", v.Grants)
			}
		})
	}
	// After the certificate's NotAfter: expired.
	late := t0.Add(24 * time.Hour)
	if v := h.Handle(late, src4, gwIP, sealID(t, alice, f, req(t, time.Minute, "22/tcp"), late)); v.Reason != "expired" || v.Quiet || !strings.Contains(v.Detail, "alice") {
		t.Fatalf("expired: %+v", v)
	}
	// Without certificate settings, kind 2 is refused with credential.
	if err := h.Update(f.settings()); err != nil {
		t.Fatal(err)
	}
	if v := h.Handle(at, src4, gwIP, sealID(t, here, f, req(t, time.Minute, "22/tcp"), at.Add(time.Millisecond))); v.Reason != "credential" || v.Quiet {
		t.Fatalf("no [pki]: %+v", v)
	}
	s.Certs = &Certificates{}
	if err := h.Update(s); err == nil {
		t.Fatal("Update accepted certificate settings without a verifier")
	}
}

// With crl_required, a stale CRL refuses every certificate client with
// stale-crl; without a CRL, no-crl. Both are logged, not quiet.
func TestCertificateCRLState(t *testing.T) {
	f := newFixture(t)
	ca, err := cadir.Init(filepath.Join(t.TempDir(), "ca"), cadir.InitOptions{CRLValidFor: time.Minute}, t0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	c := &certCA{ca: ca}
	alice, _ := c.issue(t, "alice", idKey(40), pki.Authorization{Services: ranges(t, "22/tcp"), MaxDuration: time.Minute})
	for _, required := range []bool{true, false} {
		c.v, err = pki.NewVerifier(ca.Cert(), pki.Options{CRLRequired: required})
		if err != nil {
			t.Fatal(err)
		}
		s := f.settings()
		s.Certs = &Certificates{Verifier: c.v}
		h, err := New(s, replay.New(0), nil)
		if err != nil {
			t.Fatal(err)
		}
		at := t0.Add(time.Second)
		if v := h.Handle(at, src4, gwIP, sealID(t, alice, f, req(t, time.Minute, "22/tcp"), at)); v.Reason != "no-crl" || v.Quiet {
			t.Fatalf("required=%v, no CRL: %+v", required, v)
		}
		c.loadCRL(t) // signed at t0-1h, next update t0-59m: stale at t0
		at = at.Add(time.Second)
		v := h.Handle(at, src4, gwIP, sealID(t, alice, f, req(t, time.Minute, "22/tcp"), at))
		if required && (v.Reason != "stale-crl" || v.Quiet || !strings.Contains(v.Detail, "CRL")) {
			t.Fatalf("required, stale CRL: %+v", v)
		}
		if !required && (v.Reason != "" || v.Client != "alice") {
			t.Fatalf("not required, stale CRL: %+v", v)
		}
	}
}

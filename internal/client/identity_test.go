package client

import (
	"crypto/ed25519"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/pki"
	"github.com/sesame-gw/sesame/internal/pki/cadir"
	"github.com/sesame-gw/sesame/internal/pki/certfile"
	"github.com/sesame-gw/sesame/internal/service"
	"github.com/sesame-gw/sesame/internal/spa"
	"github.com/sesame-gw/sesame/internal/spakey"
)

// A raw identity key gives a kind-1 identity, a certificate and its key a
// kind-2 one; a gateway key, a key that does not match the certificate
// and a missing key are refused.
func TestLoadIdentity(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, kind spakey.Kind) (string, *spakey.PrivateKey) {
		k, err := spakey.Generate(kind)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := spakey.WriteFile(p, k); err != nil {
			t.Fatal(err)
		}
		return p, k
	}
	idPath, idKey := write("id.key", spakey.Identity)
	gwPath, _ := write("gw.key", spakey.Gateway)

	id, err := LoadIdentity(idPath, "")
	if err != nil || id.Credential.Kind != spa.CredEd25519 || !idKey.Identity().Equal(id.Signer) {
		t.Fatalf("raw key: %+v %v", id, err)
	}
	if _, err := LoadIdentity(gwPath, ""); err == nil || !strings.Contains(err.Error(), "gateway key") {
		t.Fatalf("gateway key: %v", err)
	}

	ca, err := cadir.Init(filepath.Join(dir, "ca"), cadir.InitOptions{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	// sesame ca issue --public-key: the identity key is the certificate's key.
	cert, err := ca.Issue(cadir.IssueRequest{Name: "alice", PublicKey: idKey.Identity().Public().(ed25519.PublicKey), ValidFor: time.Hour,
		Authorization: pki.Authorization{Services: []service.Range{{Proto: service.TCP, First: 22, Last: 22}}, MaxDuration: time.Minute}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	crt := filepath.Join(dir, "alice.crt")
	if err := certfile.WriteCert(crt, cert.Raw); err != nil {
		t.Fatal(err)
	}
	id, err = LoadIdentity(idPath, crt)
	if err != nil || id.Credential.Kind != spa.CredX509 {
		t.Fatalf("certificate: %+v %v", id, err)
	}
	if chain, err := spa.ParseChain(id.Credential.Data); err != nil || len(chain) != 1 || string(chain[0]) != string(cert.Raw) {
		t.Fatalf("chain %v %v", chain, err)
	}
	other, _ := write("other.key", spakey.Identity)
	if _, err := LoadIdentity(other, crt); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("mismatched key: %v", err)
	}
	if _, err := LoadIdentity(CertKeyPath(crt), crt); err == nil || !strings.Contains(err.Error(), "alice.key") {
		t.Fatalf("missing key: %v", err)
	}
}

func TestCertKeyPath(t *testing.T) {
	for in, want := range map[string]string{"alice.crt": "alice.key", "/etc/x/bob.crt": "/etc/x/bob.key", "c.pem": "c.pem.key"} {
		if got := CertKeyPath(in); got != want {
			t.Errorf("CertKeyPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// cert in client.toml is expanded like key, and two profiles for one host
// with different certificates are ambiguous.
func TestProfileCert(t *testing.T) {
	src := `
[profile.a]
host = "gw.example.org"
gateway_key = "` + gwA + `"
cert = "certs/alice.crt"
key = "certs/alice.key"

[profile.b]
host = "gw.example.org"
gateway_key = "` + gwA + `"
cert = "certs/bob.crt"
key = "certs/alice.key"
`
	ps, err := ParseProfiles("/home/u/.config/sesame/client.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := ps.Get("a")
	if a.Cert != "/home/u/.config/sesame/certs/alice.crt" || a.Key != "/home/u/.config/sesame/certs/alice.key" {
		t.Fatalf("a %+v", a)
	}
	if _, _, err := ps.ForHost("gw.example.org"); err == nil {
		t.Fatal("profiles with different certificates for one host are not ambiguous")
	}
}

package config

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/pki"
	"github.com/sesame-gw/sesame/internal/pki/cadir"
	"github.com/sesame-gw/sesame/internal/pki/certfile"
	"github.com/sesame-gw/sesame/internal/service"
)

// newCA makes a CA directory and returns it, with the CA closed.
func newCA(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	c, err := cadir.Init(dir, cadir.InitOptions{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	return dir
}

// writeConfig writes src as sesame.toml in a new directory and loads it.
func writeConfig(t *testing.T, src string) (*Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sesame.toml")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return Load(path)
}

// The gateway line of issue 7, with [spa] and nothing else but the local
// limit: valid without [[client]] and [[door]].
func TestPKIWithoutClients(t *testing.T) {
	dir := newCA(t)
	c, err := writeConfig(t, `[spa]
key = "/etc/sesame/gateway.key"

[pki]
ca = "`+dir+`/ca.crt"
crl = "`+dir+`/crl.pem"
allow = ["22/tcp"]
`)
	if err != nil {
		t.Fatal(err)
	}
	p := c.PKI
	if p == nil || !p.CRLRequired() || p.CRLRefresh != 0 || p.CACert() == nil || !p.CACert().IsCA {
		t.Fatalf("pki %+v", p)
	}
	if c.PKICAPath() != dir+"/ca.crt" || c.PKICRLSource() != dir+"/crl.pem" {
		t.Fatalf("paths %q %q", c.PKICAPath(), c.PKICRLSource())
	}
	if pr := c.Protected(); len(pr) != 1 || pr[0].String() != "22/tcp" {
		t.Fatalf("protected %v", pr)
	}
	if _, err := pki.NewVerifier(p.CACert(), pki.Options{CRLRequired: p.CRLRequired()}); err != nil {
		t.Fatal(err)
	}
}

func TestPKIFullConfig(t *testing.T) {
	dir := newCA(t)
	confDir := t.TempDir()
	if err := os.Mkdir(filepath.Join(confDir, "ca"), 0o700); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	os.WriteFile(filepath.Join(confDir, "ca", "ca.crt"), b, 0o644)
	src := `[spa]
key = "gw.key"

[[door]]
name = "web"
sequence = ["7000/tcp", "8000/udp"]
open = ["443/tcp"]

[pki]
ca = "ca/ca.crt"
crl = "https://ca.example.org/sesame/crl.pem"
crl_required = false
crl_refresh = "1m"
name = ["gw1", "GW-2.example.org"]
allow = ["22/tcp", "60000-60009/udp"]
max_duration = "10m"
sources = ["192.0.2.0/24", "2001:db8::/32"]
other_address = true
`
	path := filepath.Join(confDir, "sesame.toml")
	os.WriteFile(path, []byte(src), 0o600)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	p := c.PKI
	if p.CRLRequired() || p.CRLRefresh.D() != time.Minute || len(p.Names) != 2 || p.CACert() == nil {
		t.Fatalf("pki %+v", p)
	}
	if c.PKICAPath() != filepath.Join(confDir, "ca/ca.crt") || c.PKICRLSource() != "https://ca.example.org/sesame/crl.pem" {
		t.Fatalf("paths %q %q", c.PKICAPath(), c.PKICRLSource())
	}
	l := p.Local()
	if len(l.Allow) != 2 || l.Allow[1] != (service.Range{Proto: service.UDP, First: 60000, Last: 60009}) ||
		l.MaxDuration != 10*time.Minute || len(l.Sources) != 2 || l.Sources[0] != netip.MustParsePrefix("192.0.2.0/24") || !l.OtherAddress {
		t.Fatalf("local %+v", l)
	}
	if pr := c.Protected(); len(pr) != 1+1+10 {
		t.Fatalf("protected %v", pr)
	}
}

// Every bad [pki] names the file, the line and the key.
func TestPKIErrorsNameFileLineKey(t *testing.T) {
	spa := "[spa]\nkey = \"/k\"\n"                                            // lines 1-2
	pkiT := "[pki]\nca = \"/ca.crt\"\ncrl = \"/crl.pem\"\nallow = [\"22\"]\n" // lines 3-6 after spa
	cases := []struct {
		name, src string
		line      int
		key       string
		msg       string
	}{
		{"pki without spa", pkiT, 1, "pki", "needs an [spa] table"},
		{"missing ca", spa + "[pki]\ncrl = \"/crl.pem\"\nallow = [\"22\"]\n", 3, "pki.ca", "missing"},
		{"missing crl", spa + "[pki]\nca = \"/ca.crt\"\nallow = [\"22\"]\n", 3, "pki.crl", "missing"},
		{"ftp crl", spa + "[pki]\nca = \"/ca.crt\"\ncrl = \"ftp://x/crl\"\nallow = [\"22\"]\n", 5, "pki.crl", "only http"},
		{"bad url", spa + "[pki]\nca = \"/ca.crt\"\ncrl = \"https:///crl\"\nallow = [\"22\"]\n", 5, "pki.crl", "not a valid URL"},
		{"crl_required string", spa + pkiT + "crl_required = \"yes\"\n", 7, "crl_required", "bool"},
		{"short refresh", spa + pkiT + "crl_refresh = \"10ms\"\n", 7, "pki.crl_refresh", "10ms is not from 1s"},
		{"bad name", spa + pkiT + "name = [\"gw_1\"]\n", 7, "pki.name", "only letters"},
		{"long max_duration", spa + pkiT + "max_duration = \"2d\"\n", 7, "pki.max_duration", "48h0m0s"},
		{"bad source", spa + pkiT + "sources = [\"10.0.0.1/8\"]\n", 7, "sources", "host bits"},
		{"unknown key", spa + pkiT + "crl_requird = true\n", 7, "pki.crl_requird", "unknown key"},
		{"wide allow", spa + "[pki]\nca = \"/ca.crt\"\ncrl = \"/crl.pem\"\nallow = [\"1000-9000/tcp\"]\n", 6, "pki.allow", "too wide"},
		{"allow spa port", spa + "[pki]\nca = \"/ca.crt\"\ncrl = \"/crl.pem\"\nallow = [\"62201/udp\"]\n", 6, "pki.allow", "SPA port"},
		{"allow knock port", spa + "[[door]]\nname = \"d\"\nsequence = [\"7000/tcp\", \"8000/udp\"]\nopen = [\"22\"]\n[pki]\nca = \"/ca.crt\"\ncrl = \"/crl.pem\"\nallow = [\"8000/udp\"]\n", 10, "pki.allow", "knock port of door \"d\""},
		{"nothing hidden", spa + "[pki]\nca = \"/ca.crt\"\ncrl = \"/crl.pem\"\n", 3, "pki.allow", "nothing would be hidden"},
	}
	for _, c := range cases {
		_, err := Parse("/etc/sesame/sesame.toml", []byte(c.src))
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		var ce *Error
		if !errors.As(err, &ce) {
			t.Errorf("%s: error %v is not a *config.Error", c.name, err)
			continue
		}
		if ce.Line != c.line || !strings.Contains(ce.Key, c.key) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: got %q (line %d key %q); want line %d key %q msg %q", c.name, err, ce.Line, ce.Key, c.line, c.key, c.msg)
		}
	}
	// With a door, an empty allow is no local limit.
	ok := spa + "[[door]]\nname = \"d\"\nsequence = [\"7000/tcp\", \"8000/udp\"]\nopen = [\"22\"]\n[pki]\nca = \"/ca.crt\"\ncrl = \"http://10.0.0.1/crl.pem\"\n"
	if c, err := Parse("x.toml", []byte(ok)); err != nil || len(c.PKI.Local().Allow) != 0 {
		t.Fatalf("empty allow with a door: %v", err)
	}
}

// Load reads the CA: a missing file or a certificate that is not a CA is
// an error at pki.ca.
func TestPKILoadChecksCA(t *testing.T) {
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	leafDir := newCA(t)
	ca, err := cadir.Open(leafDir)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(cadir.IssueRequest{Name: "alice", PublicKey: priv.Public(), ValidFor: time.Hour,
		Authorization: pki.Authorization{Services: []service.Range{{Proto: service.TCP, First: 22, Last: 22}}, MaxDuration: time.Minute}}, time.Now())
	ca.Close()
	if err != nil {
		t.Fatal(err)
	}
	leafPath := filepath.Join(dir, "alice.crt")
	if err := certfile.WriteCert(leafPath, leaf.Raw); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, msg string }{
		{filepath.Join(dir, "missing.crt"), "no such file"},
		{leafPath, "not a CA certificate"},
	} {
		_, err := writeConfig(t, "[spa]\nkey = \"/k\"\n\n[pki]\nca = \""+tc.path+"\"\ncrl = \"/crl.pem\"\nallow = [\"22\"]\n")
		var ce *Error
		if !errors.As(err, &ce) || ce.Line != 5 || ce.Key != "pki.ca" || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v", tc.path, err)
		}
	}
}

// Whatever Parse accepts with [pki] has [spa], a CA and a CRL source, and
// protects something.
func FuzzParsePKI(f *testing.F) {
	f.Add([]byte("[spa]\nkey = \"k\"\n[pki]\nca = \"ca.crt\"\ncrl = \"crl.pem\"\nallow = [\"22/tcp\"]\n"))
	f.Add([]byte("[spa]\nkey = \"k\"\n[pki]\nca = \"/ca.crt\"\ncrl = \"https://h/crl.pem\"\ncrl_required = false\ncrl_refresh = \"1m\"\nname = [\"gw1\"]\nallow = [\"60000-60010/udp\"]\nmax_duration = \"5m\"\nsources = [\"10.0.0.0/8\"]\nother_address = true\n"))
	f.Add([]byte("[spa]\nkey = \"k\"\n[[door]]\nname = \"d\"\nsequence = [\"7000\", \"8000/udp\"]\nopen = [\"22\"]\n[pki]\nca = \"c\"\ncrl = \"http://x/\"\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		c, err := Parse("f.toml", src)
		if err != nil || c.PKI == nil {
			return
		}
		if c.SPA == nil || c.PKICAPath() == "" || c.PKICRLSource() == "" {
			t.Fatalf("accepted [pki] without [spa], ca or crl: %+v", c.PKI)
		}
		if len(c.Protected()) == 0 {
			t.Fatal("accepted a config that protects nothing")
		}
		spaPort, _ := c.SPAPort()
		for _, r := range c.PKI.Local().Allow {
			if r.Len() > maxAllowRange || r.Contains(spaPort) {
				t.Fatalf("accepted allow %v", r)
			}
		}
	})
}

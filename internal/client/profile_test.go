package client

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/service"
	"github.com/sesame-gw/sesame/internal/spakey"
)

const (
	gwA = "sesame-gw1:A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg"
	gwB = "sesame-gw1:Nf3N_dHgD3Q1sA2e8ot2uPbFq3PpBfpLIgs2Wf_gQH0"
)

func TestParseProfiles(t *testing.T) {
	home, err := os.UserHomeDir()
	if err != nil {
		t.Skip("no home directory")
	}
	src := `
key = "~/.config/sesame/id.key"
duration = "1m"

[profile.work]
host = "gw.example.org"
gateway_key = "` + gwA + `"
services = ["22/tcp", "udp/60000-60010"]

[profile.lab]
host = "2001:db8::1"
gateway_key = "` + gwB + `"
key = "keys/lab.key"
port = 40000
services = ["tcp/2222"]
duration = "5m"
for_address = "::ffff:198.51.100.7"
ip = 6
`
	ps, err := ParseProfiles("/home/u/.config/sesame/client.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := ps.Names(); len(got) != 2 || got[0] != "lab" || got[1] != "work" {
		t.Fatalf("names %v", got)
	}
	w, ok := ps.Get("work")
	if !ok {
		t.Fatal("no work")
	}
	wantKey, _ := spakey.ParseGateway(gwA)
	if w.Target() != "gw.example.org" || !w.GatewayKey.Equal(wantKey) || w.Key != filepath.Join(home, ".config/sesame/id.key") ||
		w.Port != 62201 || w.Duration != time.Minute || len(w.Services) != 2 ||
		w.Services[1] != (service.Range{Proto: service.UDP, First: 60000, Last: 60010}) || w.ForAddress.IsValid() || w.IP != 0 {
		t.Fatalf("work %+v", w)
	}
	l, _ := ps.Get("lab")
	if l.Key != "/home/u/.config/sesame/keys/lab.key" || l.Port != 40000 || l.Duration != 5*time.Minute ||
		l.ForAddress != netip.MustParseAddr("198.51.100.7") || l.IP != 6 || l.Target() != "2001:db8::1" {
		t.Fatalf("lab %+v", l)
	}
	// Get returns copies.
	w.Services[0].First = 1
	if w2, _ := ps.Get("work"); w2.Services[0].First != 22 {
		t.Fatal("Get aliases the stored services")
	}
	d := ps.Defaults()
	if d.Key != w.Key || d.Duration != time.Minute || d.GatewayKey != nil || d.Port != 62201 {
		t.Fatalf("defaults %+v", d)
	}
	var none *Profiles
	if d := none.Defaults(); d.Port != 62201 || d.Duration != DefaultDuration {
		t.Fatalf("nil defaults %+v", d)
	}
	if _, ok := none.Get("x"); ok {
		t.Fatal("nil Profiles has a profile")
	}
}

func TestForHost(t *testing.T) {
	src := `
[profile.work]
host = "gw.example.org"
gateway_key = "` + gwA + `"
services = ["22/tcp"]

[profile.work-db]
host = "GW.example.org"
gateway_key = "` + gwA + `"
services = ["5432/tcp"]

[profile.other]
host = "other.example.org"
gateway_key = "` + gwA + `"

[profile.clash]
host = "other.example.org"
gateway_key = "` + gwB + `"
`
	ps, err := ParseProfiles("c.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	// By name first.
	if p, ok, err := ps.ForHost("work-db"); !ok || err != nil || p.Services[0].First != 5432 {
		t.Fatalf("by name: %+v %v %v", p, ok, err)
	}
	// By host: two profiles that agree on the gateway; the first name wins.
	if p, ok, err := ps.ForHost("gw.example.org"); !ok || err != nil || p.Name != "work" {
		t.Fatalf("by host: %+v %v %v", p, ok, err)
	}
	if _, _, err := ps.ForHost("other.example.org"); !errors.Is(err, ErrAmbiguous) || !strings.Contains(err.Error(), "clash, other") {
		t.Fatalf("ambiguous: %v", err)
	}
	if _, ok, err := ps.ForHost("nowhere"); ok || err != nil {
		t.Fatalf("no match: %v %v", ok, err)
	}
}

func TestParseProfilesErrors(t *testing.T) {
	for _, c := range []struct{ src, msg string }{
		{"[profile.a]\nhots = \"x\"\n", "unknown key profile.a.hots"},
		{"colour = 1\n", "unknown key colour"},
		{"[profile.a]\ngateway_key = \"sesame-id1:A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg\"\n", "profile.a.gateway_key: invalid public key"},
		{"[profile.a]\nservices = [\"22/icmp\"]\n", "profile.a.services"},
		{"[profile.a]\nduration = \"0s\"\n", "profile.a.duration"},
		{"[profile.a]\nport = 0\nfor_address = \"nope\"\n", "profile.a.for_address"},
		{"[profile.a]\nport = 70000\n", "profile.a.port"},
		{"[profile.a]\nip = 5\n", "profile.a.ip"},
		{"[profile.\"a b\"]\n", "not a usable name"},
		{"[profile.a\n", "c.toml"},
	} {
		_, err := ParseProfiles("c.toml", []byte(c.src))
		if err == nil || !strings.Contains(err.Error(), c.msg) || !strings.HasPrefix(err.Error(), "c.toml") {
			t.Errorf("%q: err = %v, want %q", c.src, err, c.msg)
		}
	}
}

func TestLoadProfiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadProfiles(filepath.Join(dir, "none.toml")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	path := filepath.Join(dir, "client.toml")
	os.WriteFile(path, []byte("[profile.x]\nkey = \"id.key\"\n"), 0o600)
	ps, err := LoadProfiles(path)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := ps.Get("x"); p.Key != filepath.Join(dir, "id.key") || ps.File != path {
		t.Fatalf("%+v", p)
	}
	t.Setenv("XDG_CONFIG_HOME", dir)
	if p, err := DefaultProfilesPath(); err != nil || p != filepath.Join(dir, "sesame", "client.toml") {
		t.Fatalf("DefaultProfilesPath = %q, %v", p, err)
	}
}

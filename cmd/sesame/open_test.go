package main

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/service"
	"github.com/sesame-gw/sesame/internal/spa"
	"github.com/sesame-gw/sesame/internal/spakey"
)

type openFixture struct {
	dir, idPath, gwPub, profiles string
	opener                       *spa.Opener[string]
}

func newOpenFixture(t *testing.T) *openFixture {
	t.Helper()
	f := &openFixture{dir: t.TempDir()}
	f.idPath = filepath.Join(f.dir, "id.key")
	gwPath := filepath.Join(f.dir, "gw.key")
	if _, _, code := sesame(t, "keygen", "-o", f.idPath); code != 0 {
		t.Fatal("keygen")
	}
	out, _, code := sesame(t, "keygen", "--gateway", "-o", gwPath)
	if code != 0 {
		t.Fatal("keygen --gateway")
	}
	f.gwPub = strings.TrimSpace(out)
	gw, err := spakey.ReadFile(gwPath)
	if err != nil {
		t.Fatal(err)
	}
	id, err := spakey.ReadFile(f.idPath)
	if err != nil {
		t.Fatal(err)
	}
	me := id.Identity().Public().(ed25519.PublicKey)
	f.opener, err = spa.NewOpener(gw.Gateway(), spa.KeyResolver(func(k ed25519.PublicKey) (string, bool) { return "me", k.Equal(me) }), 0)
	if err != nil {
		t.Fatal(err)
	}
	f.profiles = filepath.Join(f.dir, "client.toml")
	os.WriteFile(f.profiles, []byte(fmt.Sprintf(`key = "id.key"
[profile.work]
host = "192.0.2.1"
gateway_key = %q
services = ["22/tcp", "udp/60000-60010"]
duration = "2m"
for_address = "198.51.100.9"
`, f.gwPub)), 0o600)
	return f
}

// printed runs `sesame open --print ARGS` and opens the packet.
func (f *openFixture) printed(t *testing.T, args ...string) *spa.Opened[string] {
	t.Helper()
	out, errs, code := sesame(t, append([]string{"open", "--print", "--profiles", f.profiles}, args...)...)
	if code != 0 {
		t.Fatalf("open %v: %d %s", args, code, errs)
	}
	pkt, err := hex.DecodeString(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	op, err := f.opener.Open(pkt, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return op
}

func TestOpenPrint(t *testing.T) {
	f := newOpenFixture(t)
	// As in the issue: flags only (no profile has this host).
	op := f.printed(t, "192.0.2.2", "22/tcp", "tcp/2222", "--key", f.idPath, "--gateway-key", f.gwPub, "--port", "40000", "--duration", "45s")
	want := []service.Range{{Proto: service.TCP, First: 22, Last: 22}, {Proto: service.TCP, First: 2222, Last: 2222}}
	if op.Client != "me" || op.Request.Duration != 45*time.Second || op.Request.Addr.IsValid() || fmt.Sprint(op.Request.Services) != fmt.Sprint(want) {
		t.Fatalf("flags: %+v", op.Request)
	}
	// A profile: its services, duration, address.
	op = f.printed(t, "work")
	if op.Request.Duration != 2*time.Minute || op.Request.Addr != netip.MustParseAddr("198.51.100.9") || len(op.Request.Services) != 2 || op.Request.Services[1].Last != 60010 {
		t.Fatalf("profile: %+v", op.Request)
	}
	// Flags override the profile; the profile matched by host gives the keys.
	op = f.printed(t, "192.0.2.1", "443", "--duration", "10s", "--for-address", "2001:db8::1")
	if op.Request.Duration != 10*time.Second || op.Request.Addr != netip.MustParseAddr("2001:db8::1") || op.Request.Services[0].First != 443 {
		t.Fatalf("override: %+v", op.Request)
	}
}

func TestOpenErrors(t *testing.T) {
	f := newOpenFixture(t)
	none := filepath.Join(f.dir, "none.toml")
	os.WriteFile(none, nil, 0o600)
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"open"}, 2, "need a host"},
		{[]string{"open", "--profiles", none, "192.0.2.1", "--key", f.idPath}, 2, "no service"},
		{[]string{"open", "--profiles", none, "192.0.2.1", "22/tcp", "--key", f.idPath}, 2, "no gateway key"},
		{[]string{"open", "--profiles", none, "192.0.2.1", "22/icmp"}, 2, "icmp"},
		{[]string{"open", "--profiles", f.profiles, "work", "-4", "-6"}, 2, "exclude"},
		{[]string{"open", "--profiles", f.profiles, "work", "60000/udp", "--wait"}, 2, "needs a tcp service"},
		{[]string{"open", "--profiles", f.profiles, "work", "--gateway-key", "sesame-id1:A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg"}, 2, "client key"},
		{[]string{"open", "--profiles", f.profiles, "work", "--key", filepath.Join(f.dir, "gw.key")}, 1, "gateway key"},
		{[]string{"open", "--profiles", filepath.Join(f.dir, "missing.toml"), "work"}, 1, "no such file"},
		{[]string{"proxy", "host"}, 2, "need a host and a port"},
		{[]string{"proxy", "host", "0"}, 2, "not a number"},
	} {
		_, errs, code := sesame(t, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.msg) {
			t.Errorf("%v: exit %d %q; want %d %q", tc.args, code, errs, tc.code, tc.msg)
		}
	}
}

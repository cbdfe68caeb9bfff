package spagw

import (
	"encoding/base64"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/pki"
	"github.com/sesame-gw/sesame/internal/policy"
	"github.com/sesame-gw/sesame/internal/replay"
)

// Clients lists every [[client]] by name with its kind, services and
// longest grant (the default when unset), then the certificate clients;
// an Update replaces the list; no key material appears.
func TestClients(t *testing.T) {
	f := newFixture(t)
	h := f.handler(t, replay.New(0))
	want := []string{
		"alice (spa key) → 22/tcp 60000-60010/udp for up to 5m0s",
		"bob (spa key) → 22/tcp for up to 1m0s, expires 2026-11-22 12:00 UTC",
		"carol (spa key) → 22/tcp for up to 1m0s",
	}
	if got := h.Clients(); !slices.Equal(got, want) {
		t.Fatalf("Clients:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	c := newCertCA(t, "Example Root")
	s := Settings{Key: f.gw, Certs: &Certificates{Verifier: c.v, Local: pki.Local{Allow: ranges(t, "22/tcp", "443/tcp"), MaxDuration: 2 * time.Minute}}}
	if err := h.Update(s); err != nil {
		t.Fatal(err)
	}
	want = []string{`certificates of CA "Example Root" (spa cert) → as certified, within 22/tcp 443/tcp for up to 2m0s`}
	if got := h.Clients(); !slices.Equal(got, want) {
		t.Fatalf("after Update: %q, want %q", got, want)
	}
	s.Certs.Local = pki.Local{}
	h.Update(s)
	if got := h.Clients(); len(got) != 1 || !strings.HasSuffix(got[0], "→ as certified for as certified") {
		t.Fatalf("no local limit: %q", got)
	}

	// A failed Update keeps the list in force.
	if err := h.Update(Settings{}); err == nil {
		t.Fatal("Update without a key succeeded")
	}
	if got := h.Clients(); len(got) != 1 {
		t.Fatalf("failed Update changed the list: %q", got)
	}
}

func TestClientsShowNoKeys(t *testing.T) {
	f := newFixture(t)
	h := f.handler(t, replay.New(0))
	all := strings.Join(h.Clients(), "\n")
	for _, c := range f.set.All() {
		for _, enc := range []string{hex.EncodeToString(c.Key), base64.StdEncoding.EncodeToString(c.Key), base64.RawStdEncoding.EncodeToString(c.Key)} {
			if strings.Contains(all, enc[:16]) {
				t.Fatalf("%s's key appears in %q", c.Name, all)
			}
		}
	}
	if strings.Contains(all, "sesame-id1") {
		t.Fatalf("key text in %q", all)
	}
	var empty Settings
	empty.Key = f.gw
	empty.Clients, _ = policy.NewSet(nil)
	h.Update(empty)
	if got := h.Clients(); got != nil {
		t.Fatalf("no clients: %q", got)
	}
}

package spagw

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/config"
	"github.com/sesame-gw/sesame/internal/replay"
	"github.com/sesame-gw/sesame/internal/spakey"
)

// writeConfig writes a gateway key and a config naming it (relative to the
// config's directory) in a fresh directory.
func writeConfig(t *testing.T, f *fixture, extra string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	k, err := spakey.NewGateway(f.gw)
	if err != nil {
		t.Fatal(err)
	}
	if err := spakey.WriteFile(filepath.Join(dir, "gw.key"), k); err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf(`[gateway]
state_dir = %q
[spa]
key = "gw.key"
window = "10s"
%s
[[client]]
name = "alice"
public_key = %q
allow = ["22/tcp"]
`, filepath.Join(dir, "state", "sub"), extra, spakey.FormatIdentity(f.alice.Public().(ed25519.PublicKey)))
	path := filepath.Join(dir, "sesame.toml")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestFromConfig(t *testing.T) {
	f := newFixture(t)
	cfg := writeConfig(t, f, "replay_capacity = 1")
	s, err := FromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Key.Equal(f.gw) || s.Window != 10*time.Second || s.Clients.Len() != 1 {
		t.Fatalf("settings %+v", s)
	}
	store, err := OpenReplay(cfg, t0)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	fi, err := os.Stat(cfg.Gateway.StateDir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state dir: %v %v", fi, err)
	}
	h, err := New(s, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v := h.Handle(t0, src4, gwIP, seal(t, f.alice, f.gw.PublicKey(), req(t, 30*time.Second, "22/tcp"), t0)); v.Reason != "" || v.Client != "alice" {
		t.Fatalf("%+v", v)
	}
	// replay_capacity is applied.
	if v := h.Handle(t0, src4, gwIP, seal(t, f.alice, f.gw.PublicKey(), req(t, 30*time.Second, "22/tcp"), t0)); v.Reason != "replay-cache-full" {
		t.Fatalf("%+v", v)
	}
	if _, err := os.Stat(filepath.Join(cfg.Gateway.StateDir, ReplayFile)); err != nil {
		t.Fatal(err)
	}
}

func TestFromConfigRejects(t *testing.T) {
	f := newFixture(t)
	cfg := writeConfig(t, f, "")
	keyPath := cfg.SPAKeyPath()

	if err := os.Chmod(keyPath, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := FromConfig(cfg); !errors.Is(err, spakey.ErrPermissions) {
		t.Errorf("world-readable key: %v", err)
	}
	os.Remove(keyPath)
	if _, err := FromConfig(cfg); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing key: %v", err)
	}
	id, _ := spakey.NewIdentity(f.alice)
	if err := spakey.WriteFile(keyPath, id); err != nil {
		t.Fatal(err)
	}
	if _, err := FromConfig(cfg); err == nil {
		t.Error("identity key accepted as the gateway key")
	}
	cfg.SPA = nil
	if _, err := FromConfig(cfg); err == nil {
		t.Error("no [spa] accepted")
	}
	if _, err := OpenReplay(cfg, t0); err == nil {
		t.Error("OpenReplay without [spa]")
	}
}

func TestOpenReplayBadFile(t *testing.T) {
	f := newFixture(t)
	cfg := writeConfig(t, f, "")
	os.MkdirAll(cfg.Gateway.StateDir, 0o700)
	os.WriteFile(filepath.Join(cfg.Gateway.StateDir, ReplayFile), []byte("not a replay file at all"), 0o600)
	if _, err := OpenReplay(cfg, t0); !errors.Is(err, replay.ErrFormat) {
		t.Fatalf("err = %v", err)
	}
}

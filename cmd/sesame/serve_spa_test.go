package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/config"
	"github.com/sesame-gw/sesame/internal/gateway"
	"github.com/sesame-gw/sesame/internal/replay"
)

// A reload builds a second handler while the first still runs: both use
// one replay Store, closed when the last configuration is released.
func TestAddSPASharesReplayAcrossReloads(t *testing.T) {
	dir := t.TempDir()
	gwKey := filepath.Join(dir, "gw.key")
	if _, errs, code := sesame(t, "keygen", "--gateway", "-o", gwKey); code != 0 {
		t.Fatal(errs)
	}
	load := func(extra string) *config.Config {
		path := filepath.Join(dir, "sesame.toml")
		os.WriteFile(path, []byte(fmt.Sprintf("[gateway]\nstate_dir = %q\n[spa]\nkey = %q\n%s\n[[client]]\nname = \"a\"\npublic_key = \"sesame-id1:A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg\"\nallow = [\"22\"]\n", filepath.Join(dir, "state"), gwKey, extra)), 0o600)
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	var logb strings.Builder
	log := slog.New(slog.NewTextHandler(&logb, nil))
	var gc1, gc2 gateway.Config
	release1, err := addSPA(&gc1, load(""), log)
	if err != nil {
		t.Fatal(err)
	}
	release2, err := addSPA(&gc2, load("replay_capacity = 5"), log)
	if err != nil {
		t.Fatal(err)
	}
	if len(gc1.Handlers) != 1 || len(gc2.Handlers) != 1 || len(gc2.SPAPorts) != 1 || gc2.SPAPorts[0].String() != "62201/udp" {
		t.Fatalf("handlers %v %v ports %v", gc1.Handlers, gc2.Handlers, gc2.SPAPorts)
	}
	path := filepath.Join(dir, "state", "spa-replay")
	ref := replays.m[path]
	if ref == nil || ref.refs != 2 {
		t.Fatalf("shared store %+v", ref)
	}
	if !strings.Contains(logb.String(), "next restart") {
		t.Errorf("changed replay_capacity not reported:\n%s", logb.String())
	}
	release1()
	release1() // idempotent
	if err := ref.s.Add(replay.Key{1}, time.Now().Add(time.Minute), time.Now()); err != nil {
		t.Fatalf("store closed while the reloaded config uses it: %v", err)
	}
	release2()
	if _, ok := replays.m[path]; ok {
		t.Fatal("store kept after the last release")
	}
	if err := ref.s.Add(replay.Key{2}, time.Now().Add(time.Minute), time.Now()); err == nil {
		t.Fatal("store still open after the last release")
	}
	// Without [spa] nothing is added.
	var gc3 gateway.Config
	cfg := load("")
	cfg.SPA = nil
	if release, err := addSPA(&gc3, cfg, log); err != nil || len(gc3.Handlers) != 0 {
		t.Fatalf("no [spa]: %v %v", gc3.Handlers, err)
	} else {
		release()
	}
}

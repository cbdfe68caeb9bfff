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
	"github.com/sesame-gw/sesame/internal/pki/cadir"
)

// A reload that keeps [pki] ca and crl keeps the verifier (and its CRL);
// one that changes them gets a new verifier with its CRL loaded before it
// goes live, and the old updater stops once the old configuration is
// released. The running verifier's CRL is in the status counters.
func TestAddPKISharedAcrossReloads(t *testing.T) {
	dir := t.TempDir()
	gwKey := filepath.Join(dir, "gw.key")
	if _, errs, code := sesame(t, "keygen", "--gateway", "-o", gwKey); code != 0 {
		t.Fatal(errs)
	}
	caDir := filepath.Join(dir, "ca")
	ca, err := cadir.Init(caDir, cadir.InitOptions{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ca.Close()
	load := func(extra string) *config.Config {
		path := filepath.Join(dir, "sesame.toml")
		os.WriteFile(path, []byte(fmt.Sprintf("[gateway]\nstate_dir = %q\n[spa]\nkey = %q\n[pki]\nca = %q\ncrl = %q\nallow = [\"22/tcp\"]\n%s\n",
			filepath.Join(dir, "state"), gwKey, filepath.Join(caDir, "ca.crt"), filepath.Join(caDir, "crl.pem"), extra)), 0o600)
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	var logb strings.Builder
	log := slog.New(slog.NewTextHandler(&logb, nil))
	if certs.current() != nil {
		t.Fatal("a verifier before any configuration")
	}
	var gc1, gc2, gc3 gateway.Config
	release1, err := addSPA(&gc1, load(""), log)
	if err != nil {
		t.Fatal(err)
	}
	v1 := certs.current()
	if v1 == nil || len(gc1.Handlers) != 1 {
		t.Fatalf("verifier %v handlers %v", v1, gc1.Handlers)
	}
	if info, ok := v1.CRL(); !ok || info.Number.Int64() != 1 {
		t.Fatalf("CRL not loaded at start: %+v %v\n%s", info, ok, logb.String())
	}
	if !strings.Contains(logb.String(), "certificate SPA") || !strings.Contains(logb.String(), "CRL loaded") {
		t.Fatalf("log:\n%s", logb.String())
	}
	// The same [pki]: the same verifier.
	release2, err := addSPA(&gc2, load("# reload"), log)
	if err != nil {
		t.Fatal(err)
	}
	if certs.current() != v1 || len(certs.m) != 1 {
		t.Fatalf("reload without a [pki] change made a new verifier (%d)", len(certs.m))
	}
	// crl_required changed: a new verifier, with its CRL already loaded.
	release3, err := addSPA(&gc3, load("crl_required = false"), log)
	if err != nil {
		t.Fatal(err)
	}
	v3 := certs.current()
	if v3 == v1 || v3.CRLRequired() || len(certs.m) != 2 {
		t.Fatalf("crl_required change kept the verifier")
	}
	if _, ok := v3.CRL(); !ok {
		t.Fatal("new verifier without its CRL")
	}
	counters := map[string]uint64{}
	addCRLStatus(counters, time.Now())
	if counters[crlLoaded] != 1 || counters[crlFresh] != 1 || counters[crlNumber] != 1 || counters[crlRevoked] != 0 || counters[crlNextUpdate] <= counters[crlThisUpdate] {
		t.Fatalf("counters %v", counters)
	}
	var out strings.Builder
	printCRL(&out, counters)
	if !strings.Contains(out.String(), "certificates: CRL 1, 0 revoked") || !strings.Contains(out.String(), "fresh") {
		t.Fatalf("status line %q", out.String())
	}
	// The reload to crl_required = false is refused: the old verifier is
	// the running one again, and the new updater has stopped.
	var ref3 *pkiRef
	for _, r := range certs.m {
		if r.v == v3 {
			ref3 = r
		}
	}
	release3()
	if certs.current() != v1 {
		t.Fatal("released configuration still current")
	}
	select {
	case <-ref3.done:
	default:
		t.Fatal("updater of a released verifier still runs")
	}
	release1()
	release1() // idempotent
	if certs.current() != v1 {
		t.Fatal("verifier dropped while a configuration uses it")
	}
	release2()
	if certs.current() != nil || len(certs.m) != 0 {
		t.Fatalf("verifiers left: %d", len(certs.m))
	}
	counters = map[string]uint64{}
	addCRLStatus(counters, time.Now())
	if len(counters) != 0 {
		t.Fatalf("counters without [pki]: %v", counters)
	}
	out.Reset()
	printCRL(&out, map[string]uint64{crlLoaded: 0})
	if !strings.Contains(out.String(), "NO CRL LOADED") {
		t.Fatalf("status line %q", out.String())
	}
}

// Package netnstest gives tests a network-namespace bench (package netns)
// with the house rules built in: skipped with a clear message when not root,
// removed by t.Cleanup, and the output of every process it ran logged when
// the test failed.
package netnstest

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/netns"
)

// SkipMessage is the reason tests are skipped when not run as root.
const SkipMessage = "needs root and network namespaces: run as root"

// setupTimeout bounds New; a bench comes up in well under a second.
const setupTimeout = 30 * time.Second

// New returns a fresh bench for t, or skips t when the process is not root.
// The bench logs to t, is closed by t.Cleanup (a Close error fails the
// test), and when t has failed each process's output is logged first.
// A bench that cannot be built fails the test. Options.Logger defaults to
// a logger writing to t.
func New(t testing.TB, opts netns.Options) *netns.Bench {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip(SkipMessage)
	}
	RequireBinary(t, "ip")
	if opts.Logger == nil {
		opts.Logger = Logger(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	b, err := netns.New(ctx, opts)
	if err != nil {
		t.Fatalf("netnstest: bench: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range b.Procs() {
				t.Logf("output of %s (exit: %v):\n%s", p, p.Err(), p.Output())
			}
		}
		if err := b.Close(); err != nil {
			t.Errorf("netnstest: close bench: %v", err)
		}
	})
	return b
}

// RequireBinary skips t when the program name is not on PATH, but fails it
// when the environment has CI=true: CI installs every peer (nft, knockd,
// fwknopd, ...), so a missing one there is a defect, not a reason to skip.
func RequireBinary(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("netnstest: %s is required in CI: %v", name, err)
		}
		t.Skipf("netnstest: %s not installed: %v", name, err)
	}
}

// Logger returns a slog.Logger that writes text lines through t.Log. It
// must not be used after the test has completed.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// Package e2e runs the real sesame binary in network namespaces against the
// real kernel (nftables, NFLOG) and the real peers (Debian's knock client,
// nmap). Every test skips with a clear message when not root.
package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/netns"
	"github.com/sesame-gw/sesame/internal/netns/netnstest"
)

// sesameBin is the binary under test, built once by TestMain (root only).
var sesameBin string

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		dir, err := os.MkdirTemp("", "sesame-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		sesameBin = filepath.Join(dir, "sesame")
		build := exec.Command("go", "build", "-o", sesameBin, "../cmd/sesame")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building sesame:", err)
			os.Exit(1)
		}
		code := m.Run()
		os.RemoveAll(dir)
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// gateway is a sesame daemon running in a bench's gateway namespace.
type gateway struct {
	t    *testing.T
	b    *netns.Bench
	proc *netns.Proc
	cfg  string
	sock string // its control socket, its own (ownControlSocket)
}

// controlSocket returns a control socket path of the test's own, in a
// short temporary directory (a unix socket path holds 107 bytes).
func controlSocket(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "se2e-ctl-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "control.sock")
}

var gatewayTable = regexp.MustCompile(`(?m)^\[gateway\][ \t]*$`)

// ownControlSocket returns config with control_socket set to sock unless
// it names one: daemons of concurrent tests (and of other checkouts, or a
// real sesame on the host) must not share /run/sesame/control.sock. It
// returns the socket in force.
func ownControlSocket(config, sock string) (string, string) {
	if m := regexp.MustCompile(`(?m)^control_socket\s*=\s*"([^"]*)"`).FindStringSubmatch(config); m != nil {
		return config, m[1]
	}
	line := fmt.Sprintf("control_socket = %q", sock)
	if loc := gatewayTable.FindStringIndex(config); loc != nil {
		return config[:loc[1]] + "\n" + line + config[loc[1]:], sock
	}
	return "[gateway]\n" + line + "\n" + config, sock // no top-level keys in sesame.toml
}

// ownControlSocketFile is ownControlSocket on the file at path.
func ownControlSocketFile(t testing.TB, path, sock string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, sock := ownControlSocket(string(b), sock)
	if c != string(b) {
		if err := os.WriteFile(path, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return sock
}

// withControlSocket appends --control-socket (a new path of the test's)
// to the argv of a flag-configured daemon (knockd mode, fwknop alone)
// unless it has one.
func withControlSocket(t testing.TB, argv []string) []string {
	if slices.Contains(argv, "--control-socket") {
		return argv
	}
	return append(slices.Clip(argv), "--control-socket", controlSocket(t))
}

// newBench returns a bench, with nft required.
func newBench(t *testing.T) *netns.Bench {
	b := netnstest.New(t, netns.Options{Name: "se2e"})
	netnstest.RequireBinary(t, "nft")
	return b
}

// startGateway writes config (with the bench's state dir filled in) and
// starts `sesame serve -c` in the gateway namespace, waiting until it is
// ready.
func startGateway(t *testing.T, b *netns.Bench, config string) *gateway {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sesame.toml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &gateway{t: t, b: b, cfg: path, sock: controlSocket(t)}
	g.start()
	t.Cleanup(func() {
		// Remove what the daemon installed so the namespace goes cleanly.
		_ = b.Command(context.Background(), b.GW, sesameBin, "cleanup").Run()
	})
	return g
}

func (g *gateway) start() {
	g.t.Helper()
	g.sock = ownControlSocketFile(g.t, g.cfg, g.sock) // again: tests rewrite the file
	p, err := g.b.Start(g.b.GW, sesameBin, "serve", "-c", g.cfg)
	if err != nil {
		g.t.Fatal(err)
	}
	g.proc = p
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitOutput(ctx, "gateway ready"); err != nil {
		g.t.Fatalf("gateway did not start: %v\n%s", err, p.Output())
	}
}

// serveForBench starts `sesame serve ARGS...` in the gateway namespace for
// a benchmark, waits until it is ready and removes its table at the end.
func serveForBench(tb testing.TB, b *netns.Bench, args ...string) *netns.Proc {
	tb.Helper()
	p, err := b.Start(b.GW, append([]string{sesameBin, "serve"}, args...)...)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitOutput(ctx, "gateway ready"); err != nil {
		tb.Fatalf("gateway did not start: %v\n%s", err, p.Output())
	}
	tb.Cleanup(func() { b.Command(context.Background(), b.GW, sesameBin, "cleanup").Run() })
	return p
}

// log returns the daemon's output so far.
func (g *gateway) log() string { return string(g.proc.Output()) }

// run runs argv in namespace ns and returns its combined output; it fails
// the test when the command fails, unless allowFail.
func run(t *testing.T, b *netns.Bench, ns string, timeout time.Duration, allowFail bool, argv ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := b.Command(ctx, ns, argv...).CombinedOutput()
	if err != nil && !allowFail {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out), err
}

// hidden asserts that addr does not answer from the client namespace,
// bound to source from (zero: default source).
func hidden(t *testing.T, b *netns.Bench, from netip.Addr, addr netip.AddrPort) {
	t.Helper()
	if b.ReachableFrom(context.Background(), b.Client, from, addr, 400*time.Millisecond) {
		t.Fatalf("%v reachable from %v; want hidden", addr, from)
	}
}

func reachable(t *testing.T, b *netns.Bench, from netip.Addr, addr netip.AddrPort) {
	t.Helper()
	if !b.ReachableFrom(context.Background(), b.Client, from, addr, 2*time.Second) {
		t.Fatalf("%v not reachable from %v; want open", addr, from)
	}
}

// waitHidden polls until addr stops answering or limit passes.
func waitHidden(t *testing.T, b *netns.Bench, addr netip.AddrPort, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < limit {
		if !b.Reachable(context.Background(), b.Client, addr, 200*time.Millisecond) {
			return time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%v still reachable after %v", addr, limit)
	return 0
}

// nftList returns `nft list ...` output in the gateway namespace.
func nftList(t *testing.T, b *netns.Bench, what ...string) string {
	out, _ := run(t, b, b.GW, 10*time.Second, true, append([]string{"nft", "list"}, what...)...)
	return out
}

func execLookPath(name string) (string, error) { return exec.LookPath(name) }

// waitNewLog is waitLog over the daemon's output written after byte from
// (take from = len(g.log()) before the action): a line matching an earlier
// action cannot satisfy it.
func waitNewLog(t *testing.T, g *gateway, from int, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		out := g.log()
		if from > len(out) {
			from = len(out) // the process restarted: its output starts over
		}
		for _, l := range strings.Split(out[from:], "\n") {
			if containsAll(l, parts) {
				return l
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no new log line with %q:\n%s", parts, g.log())
	return ""
}

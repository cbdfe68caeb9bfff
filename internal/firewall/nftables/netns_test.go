//go:build linux

package nftables

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Helpers for tests against the real kernel, each in network namespaces of
// its own (created and removed by the test, named sesfw-PID-N).

// requireRoot skips tb unless it runs as root.
func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root: creates network namespaces and nftables tables (run the tests as root)")
	}
}

// requireTool skips tb when name is not installed, or fails it when
// CI=true (CI must install it).
func requireTool(tb testing.TB, name string) {
	tb.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("%s not installed (CI=true): %v", name, err)
		}
		tb.Skipf("%s not installed: %v", name, err)
	}
}

// run runs a command and fails tb with its output on error.
func run(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

var nsSeq atomic.Int32

// netNS is a network namespace created for one test.
type netNS struct {
	name string
	file *os.File // /run/netns/NAME, open for the test's lifetime
}

func (n *netNS) fd() int { return int(n.file.Fd()) }

// nft runs nft(8) inside the namespace.
func (n *netNS) nft(tb testing.TB, args ...string) string {
	tb.Helper()
	return run(tb, "ip", append([]string{"netns", "exec", n.name, "nft"}, args...)...)
}

// newNetNS creates a namespace, removed when tb ends.
func newNetNS(tb testing.TB) *netNS {
	tb.Helper()
	requireRoot(tb)
	requireTool(tb, "ip")
	name := fmt.Sprintf("sesfw-%d-%d", os.Getpid(), nsSeq.Add(1))
	run(tb, "ip", "netns", "add", name)
	tb.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			tb.Errorf("ip netns del %s: %v\n%s", name, err, out)
		}
	})
	f, err := os.Open("/run/netns/" + name)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	return &netNS{name: name, file: f}
}

// newNSFirewall returns a Firewall working in ns, logging to tb.
func newNSFirewall(tb testing.TB, ns *netNS, opts ...Option) *Firewall {
	tb.Helper()
	log := slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if _, bench := tb.(*testing.B); bench {
		log = nil
	}
	f, err := New(append([]Option{WithNetNS(ns.fd()), WithLogger(log)}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := f.Close(); err != nil {
			tb.Error(err)
		}
	})
	return f
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// inNetNS runs fn on an OS thread switched into ns; sockets fn creates stay
// in ns. If the thread cannot switch back it is left locked, so the runtime
// discards it when the goroutine ends.
func inNetNS(ns *netNS, fn func() error) error {
	res := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			res <- err
			return
		}
		defer orig.Close()
		if err := unix.Setns(ns.fd(), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			res <- fmt.Errorf("setns %s: %w", ns.name, err)
			return
		}
		err = fn()
		if rerr := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); rerr != nil {
			res <- errors.Join(err, fmt.Errorf("setns back: %w", rerr))
			return // thread stays locked and dies with the goroutine
		}
		runtime.UnlockOSThread()
		res <- err
	}()
	return <-res
}

// listenIn opens a TCP listener in ns and serves an echo on it until tb ends.
func listenIn(tb testing.TB, ns *netNS, addr string) net.Listener {
	tb.Helper()
	var ln net.Listener
	if err := inNetNS(ns, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	tb.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 512)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln
}

// dialIn connects from ns to addr, giving up after timeout.
func dialIn(ns *netNS, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := inNetNS(ns, func() (err error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		c, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		return err
	})
	return c, err
}

// reservePrefix blackholes a free 10.200.X.0/24 in the host namespace for
// tb's lifetime (so that nothing of the test's traffic can leave the host)
// and returns X.
func reservePrefix(tb testing.TB) int {
	tb.Helper()
	start := os.Getpid() % 200
	for i := range 50 {
		x := 1 + (start+i)%250
		p := fmt.Sprintf("10.200.%d.0/24", x)
		if err := exec.Command("ip", "route", "add", "blackhole", p).Run(); err != nil {
			continue // taken (another test run); try the next
		}
		tb.Cleanup(func() {
			if out, err := exec.Command("ip", "route", "del", "blackhole", p).CombinedOutput(); err != nil {
				tb.Errorf("ip route del blackhole %s: %v\n%s", p, err, out)
			}
		})
		return x
	}
	tb.Fatal("no free 10.200.X.0/24 prefix")
	return 0
}

// eventually polls cond every 50 ms until it is true or limit passes. The
// limit is generous: it only bounds a test that would otherwise hang.
func eventually(tb testing.TB, limit time.Duration, what string, cond func() bool) time.Duration {
	tb.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			tb.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

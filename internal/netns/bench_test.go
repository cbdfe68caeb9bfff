package netns_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/netns"
	"github.com/sesame-gw/sesame/internal/netns/netnstest"
)

// testCtx bounds one test.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// hostIP runs ip in the test's own (host) namespace and returns stdout.
func hostIP(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).Output()
	if err != nil {
		t.Fatalf("ip %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

// hostBlackholed reports whether the host namespace's route lookup for a
// ends in a blackhole (`ip route get` then fails with EINVAL: the same
// lookup a dial makes, policy rules included) and the bench's blackhole for
// p is installed.
func hostBlackholed(t *testing.T, a netip.Addr, p netip.Prefix) bool {
	t.Helper()
	var stderr strings.Builder
	cmd := exec.Command("ip", "route", "get", a.String())
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), "Invalid argument") {
		t.Logf("ip route get %s: %v %s", a, err, stderr.String())
		return false
	}
	fam := "-4"
	if p.Addr().Is6() {
		fam = "-6"
	}
	return strings.HasPrefix(hostIP(t, fam, "route", "show", "exact", p.String(), "proto", "83"), "blackhole "+p.String())
}

// hostHasRoute reports whether the host namespace has a route for exactly p.
func hostHasRoute(t *testing.T, p netip.Prefix) bool {
	fam := "-4"
	if p.Addr().Is6() {
		fam = "-6"
	}
	return strings.TrimSpace(hostIP(t, fam, "route", "show", "exact", p.String())) != ""
}

func nsExists(name string) bool {
	_, err := os.Lstat("/run/netns/" + name)
	return err == nil
}

// roundTrip connects from the client namespace to l with source from (zero:
// the default), echoes one byte, and checks the peer address l saw.
func roundTrip(t *testing.T, ctx context.Context, b *netns.Bench, l *net.TCPListener, from netip.Addr) {
	t.Helper()
	to := l.Addr().(*net.TCPAddr).AddrPort()
	type res struct {
		peer netip.AddrPort
		err  error
	}
	got := make(chan res, 1)
	go func() {
		c, err := l.AcceptTCP()
		if err != nil {
			got <- res{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 1)
		if _, err := io.ReadFull(c, buf); err != nil {
			got <- res{err: err}
			return
		}
		if _, err := c.Write(buf); err != nil {
			got <- res{err: err}
			return
		}
		// Wait for the client to close first, so the TIME_WAIT stays on the
		// client: a SYN hitting a server TIME_WAIT with no listener gets an
		// ACK, not a RST, and stalls the next connect for a second.
		_, err = c.Read(buf)
		if err == io.EOF {
			err = nil
		}
		got <- res{peer: c.RemoteAddr().(*net.TCPAddr).AddrPort(), err: err}
	}()
	c, err := b.DialTCP(ctx, b.Client, from, to)
	if err != nil {
		t.Fatalf("dial %s from %v: %v", to, from, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte{'x'}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if _, err := io.ReadFull(c, buf); err != nil || buf[0] != 'x' {
		t.Fatalf("echo from %s: %q %v", to, buf, err)
	}
	c.Close()
	r := <-got
	if r.err != nil {
		t.Fatalf("server side: %v", r.err)
	}
	want := from
	if !want.IsValid() { // the kernel's default source: the first client address
		want = b.Client4
		if to.Addr().Is6() {
			want = b.Client6
		}
	}
	if r.peer.Addr() != want {
		t.Errorf("server saw peer %s, want %s", r.peer, want)
	}
}

func TestBenchReachability(t *testing.T) {
	t.Parallel()
	b := netnstest.New(t, netns.Options{})
	ctx := testCtx(t)
	for _, fam := range []struct {
		gw    netip.Addr
		froms []netip.Addr
	}{
		{b.GW4, []netip.Addr{{}, b.Client4, b.Client4b}},
		{b.GW6, []netip.Addr{{}, b.Client6, b.Client6b}},
	} {
		l, err := b.ListenTCP(b.GW, netip.AddrPortFrom(fam.gw, 0))
		if err != nil {
			t.Fatal(err)
		}
		for _, from := range fam.froms {
			roundTrip(t, ctx, b, l, from)
		}
		addr := l.Addr().(*net.TCPAddr).AddrPort()
		if !b.Reachable(ctx, b.Client, addr, 2*time.Second) {
			t.Errorf("Reachable(%s) = false with a listener", addr)
		}
		if err := b.WaitReachable(ctx, b.Client, addr, 2*time.Second); err != nil {
			t.Errorf("WaitReachable(%s): %v", addr, err)
		}
		l.Close()
		// Nothing listens any more: the gateway answers with a RST.
		if _, err := b.DialTCP(ctx, b.Client, netip.Addr{}, addr); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("dial closed %s: %v, want connection refused", addr, err)
		}
		if b.Reachable(ctx, b.Client, addr, 5*time.Second) {
			t.Errorf("Reachable(%s) = true after the listener closed", addr)
		}
		err = b.WaitReachable(ctx, b.Client, addr, 300*time.Millisecond)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("WaitReachable(closed %s) = %v, want deadline exceeded", addr, err)
		}
	}
	// The host namespace has no such namespace names: sockets elsewhere are refused.
	if _, err := b.ListenTCP("init", netip.AddrPortFrom(b.GW4, 0)); !errors.Is(err, netns.ErrUnknownNS) {
		t.Errorf("ListenTCP in a foreign namespace: %v, want ErrUnknownNS", err)
	}
}

func TestServeTCPAndUDP(t *testing.T) {
	t.Parallel()
	b := netnstest.New(t, netns.Options{})
	ctx := testCtx(t)
	l, err := b.ServeTCP(b.GW, netip.AddrPortFrom(b.GW6, 0), []byte("hi\n"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := b.DialTCP(ctx, b.Client, b.Client6b, l.Addr().(*net.TCPAddr).AddrPort())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	banner, err := io.ReadAll(c)
	c.Close()
	if err != nil || string(banner) != "hi\n" {
		t.Errorf("banner %q, %v", banner, err)
	}

	for _, tc := range []struct{ gw, from netip.Addr }{{b.GW4, b.Client4b}, {b.GW6, b.Client6b}, {b.GW4, b.Client4}} {
		u, err := b.ListenUDP(b.GW, netip.AddrPortFrom(tc.gw, 0))
		if err != nil {
			t.Fatal(err)
		}
		to := u.LocalAddr().(*net.UDPAddr).AddrPort()
		if err := b.SendUDP(b.Client, tc.from, to, []byte("spa")); err != nil {
			t.Fatal(err)
		}
		u.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 16)
		n, src, err := u.ReadFromUDPAddrPort(buf)
		if err != nil || string(buf[:n]) != "spa" || src.Addr() != tc.from {
			t.Errorf("udp to %s from %s: got %q from %s, %v", to, tc.from, buf[:n], src, err)
		}
		u.Close()
	}
}

func TestHostBlackholedAndClose(t *testing.T) {
	t.Parallel()
	b := netnstest.New(t, netns.Options{})
	ctx := testCtx(t)
	l, err := b.ListenTCP(b.GW, netip.AddrPortFrom(b.GW4, 0))
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).AddrPort().Port()
	for _, tc := range []struct {
		a netip.Addr
		p netip.Prefix
	}{{b.GW4, b.Prefix4}, {b.GW6, b.Prefix6}, {b.Client4, b.Prefix4}, {b.Client6b, b.Prefix6}} {
		a := tc.a
		// Checked before dialing: without the guard a packet would follow
		// the host's default route.
		if !hostBlackholed(t, a, tc.p) {
			t.Fatalf("host route to %s is not the bench's blackhole; not dialing", a)
		}
		d := net.Dialer{Timeout: 2 * time.Second}
		c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(a, port).String())
		if err == nil {
			c.Close()
			t.Errorf("host reached %s", a)
		} else if !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENETUNREACH) {
			t.Errorf("host dial %s: %v, want a local blackhole error", a, err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{b.GW, b.Client} {
		if nsExists(ns) {
			t.Errorf("namespace %s still exists after Close", ns)
		}
	}
	for _, p := range []netip.Prefix{b.Prefix4, b.Prefix6} {
		if hostHasRoute(t, p) {
			t.Errorf("host route for %s still there after Close", p)
		}
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := b.ListenTCP(b.GW, netip.AddrPortFrom(b.GW4, 0)); !errors.Is(err, netns.ErrClosed) {
		t.Errorf("ListenTCP after Close: %v, want ErrClosed", err)
	}
	if _, err := b.Start(b.GW, "true"); !errors.Is(err, netns.ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
}

func TestLeftoversRemoved(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip(netnstest.SkipMessage)
	}
	ctx := testCtx(t)
	first, err := netns.New(ctx, netns.Options{Name: "sesamelo", Logger: netnstest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	idx, gw, p4, p6 := first.Index, first.GW, first.Prefix4, first.Prefix6
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	// What a crashed holder of idx leaves behind.
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", gw).Run()
		exec.Command("ip", "route", "del", "blackhole", p4.String(), "proto", "83").Run()
		exec.Command("ip", "-6", "route", "del", "blackhole", p6.String(), "proto", "83").Run()
	})
	hostIP(t, "netns", "add", gw)
	hostIP(t, "-n", gw, "link", "add", "leftover0", "type", "veth", "peer", "name", "leftover1")
	hostIP(t, "route", "add", "blackhole", p4.String(), "proto", "83")
	hostIP(t, "-6", "route", "add", "blackhole", p6.String(), "proto", "83")

	b, err := netns.New(ctx, netns.Options{Name: "sesamelo", Index: idx, Logger: netnstest.Logger(t)})
	if errors.Is(err, netns.ErrIndexBusy) {
		t.Skipf("index %d taken by another process meanwhile", idx)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if b.GW != gw {
		t.Fatalf("same index, different name: %s vs %s", b.GW, gw)
	}
	out, err := b.Command(ctx, b.GW, "ip", "-o", "link").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "leftover0") {
		t.Errorf("leftover namespace kept: %s", out)
	}
	if !strings.Contains(string(out), netns.GWIf) {
		t.Errorf("new namespace lacks %s: %s", netns.GWIf, out)
	}
	l, err := b.ListenTCP(b.GW, netip.AddrPortFrom(b.GW4, 0))
	if err != nil {
		t.Fatal(err)
	}
	if !b.Reachable(ctx, b.Client, l.Addr().(*net.TCPAddr).AddrPort(), 2*time.Second) {
		t.Error("bench on a cleaned index does not work")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if hostHasRoute(t, p4) || hostHasRoute(t, p6) || nsExists(gw) {
		t.Error("leftovers or bench state remain after Close")
	}
}

func TestParallelBenches(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip(netnstest.SkipMessage)
	}
	ctx := testCtx(t)
	benches := make([]*netns.Bench, 3)
	errs := make(chan error, len(benches))
	for i := range benches {
		go func() {
			b, err := netns.New(ctx, netns.Options{Logger: netnstest.Logger(t)})
			benches[i] = b
			errs <- err
		}()
	}
	for range benches {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	for _, b := range benches {
		if b != nil {
			t.Cleanup(func() {
				if err := b.Close(); err != nil {
					t.Error(err)
				}
			})
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	seen := map[string]bool{}
	for _, b := range benches {
		for _, k := range []string{fmt.Sprint(b.Index), b.GW, b.Client, b.Prefix4.String(), b.Prefix6.String()} {
			if seen[k] {
				t.Errorf("two benches share %s", k)
			}
			seen[k] = true
		}
	}
	a, o := benches[0], benches[1]
	for _, tc := range []struct{ own, other netip.Addr }{{a.GW4, o.GW4}, {a.GW6, o.GW6}} {
		l, err := a.ListenTCP(a.GW, netip.AddrPortFrom(tc.own, 0))
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).AddrPort().Port()
		if !a.Reachable(ctx, a.Client, netip.AddrPortFrom(tc.own, port), 2*time.Second) {
			t.Errorf("own gateway %s not reachable", tc.own)
		}
		// The other bench's client namespace has no route to this one.
		_, err = o.DialTCP(ctx, o.Client, netip.Addr{}, netip.AddrPortFrom(tc.own, port))
		if !errors.Is(err, syscall.ENETUNREACH) {
			t.Errorf("cross-bench dial to %s: %v, want ENETUNREACH", tc.own, err)
		}
	}
}

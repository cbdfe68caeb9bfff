package firewalltest

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/firewall"
	"github.com/sesame-gw/sesame/internal/service"
)

var (
	ssh   = service.Service{Proto: service.TCP, Port: 22}
	dns   = service.Service{Proto: service.UDP, Port: 53}
	knock = service.Service{Proto: service.UDP, Port: 62201}
	web   = service.Service{Proto: service.TCP, Port: 80}
	cl4   = netip.MustParseAddr("192.0.2.7")
	cl6   = netip.MustParseAddr("2001:db8::7")
	admin = netip.MustParseAddr("198.51.100.1")
)

// clock is a manual clock for the fake.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newFake(t *testing.T) (*Fake, *clock) {
	t.Helper()
	c := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	f := New(c.now)
	l := firewall.Layout{
		Protected:   []service.Service{ssh, dns},
		Watched:     []service.Service{knock},
		LogGroup:    7,
		AlwaysAllow: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")},
	}
	if err := f.Setup(context.Background(), l); err != nil {
		t.Fatal(err)
	}
	return f, c
}

func TestGrantExpiresByClock(t *testing.T) {
	f, c := newFake(t)
	ctx := context.Background()
	if err := f.Grant(ctx, []firewall.Grant{{Addr: cl4, Service: ssh, TTL: 10 * time.Second}}); err != nil {
		t.Fatal(err)
	}
	if !f.Granted(cl4, ssh) || f.Granted(cl4, dns) || f.Granted(cl6, ssh) {
		t.Fatalf("Granted wrong right after Grant: %v", f.Grants())
	}
	c.add(4 * time.Second)
	got, err := f.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []firewall.Grant{{Addr: cl4, Service: ssh, TTL: 6 * time.Second}}
	if len(got) != 1 || got[0] != want[0] {
		t.Fatalf("List = %v, want %v", got, want)
	}
	c.add(6 * time.Second)
	if f.Granted(cl4, ssh) {
		t.Fatal("grant still live at its expiry")
	}
	if got, _ := f.List(ctx); len(got) != 0 {
		t.Fatalf("List after expiry = %v", got)
	}
}

func TestGrantRefreshAndRounding(t *testing.T) {
	f, c := newFake(t)
	ctx := context.Background()
	mapped := netip.AddrFrom16(cl4.As16()) // ::ffff:192.0.2.7
	if err := f.Grant(ctx, []firewall.Grant{{Addr: mapped, Service: ssh, TTL: 2 * time.Second}}); err != nil {
		t.Fatal(err)
	}
	c.add(time.Second)
	if err := f.Grant(ctx, []firewall.Grant{{Addr: cl4, Service: ssh, TTL: 1500*time.Millisecond + 1}}); err != nil {
		t.Fatal(err)
	}
	got := f.Grants()
	if len(got) != 1 || got[0].Addr != cl4 || got[0].TTL != 1501*time.Millisecond {
		t.Fatalf("after refresh: %v, want one grant for %v with TTL 1.501s", got, cl4)
	}
}

func TestInvalidAndNotSetUp(t *testing.T) {
	ctx := context.Background()
	f := New(nil)
	g := []firewall.Grant{{Addr: cl4, Service: ssh, TTL: time.Second}}
	if err := f.Grant(ctx, g); !errors.Is(err, ErrNotSetUp) {
		t.Errorf("Grant before Setup: %v, want ErrNotSetUp", err)
	}
	if err := f.Grant(ctx, nil); err != nil {
		t.Errorf("empty Grant before Setup: %v", err)
	}
	if got, err := f.List(ctx); err != nil || len(got) != 0 {
		t.Errorf("List before Setup = %v, %v", got, err)
	}
	f, _ = newFake(t)
	for _, bad := range []firewall.Grant{
		{Addr: cl4, Service: ssh, TTL: 0},
		{Addr: cl4, Service: ssh, TTL: -time.Second},
		{Service: ssh, TTL: time.Second},
		{Addr: cl4, Service: service.Service{Proto: 1, Port: 22}, TTL: time.Second},
		{Addr: cl4, Service: service.Service{Proto: service.TCP}, TTL: time.Second},
	} {
		if err := f.Grant(ctx, []firewall.Grant{g[0], bad}); !errors.Is(err, ErrInvalid) {
			t.Errorf("Grant(%v) = %v, want ErrInvalid", bad, err)
		}
	}
	if len(f.Grants()) != 0 {
		t.Errorf("a rejected Grant installed something: %v", f.Grants())
	}
	if err := f.Setup(ctx, firewall.Layout{Protected: []service.Service{{}}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Setup with a zero service: %v", err)
	}
	if _, ok := f.Layout(); !ok {
		t.Error("a rejected Setup removed the table")
	}
}

func TestSetupKeepsProtectedGrants(t *testing.T) {
	f, _ := newFake(t)
	ctx := context.Background()
	if err := f.Grant(ctx, []firewall.Grant{
		{Addr: cl4, Service: ssh, TTL: time.Minute},
		{Addr: cl6, Service: dns, TTL: time.Minute},
	}); err != nil {
		t.Fatal(err)
	}
	if err := f.Setup(ctx, firewall.Layout{Protected: []service.Service{ssh, web}}); err != nil {
		t.Fatal(err)
	}
	if !f.Granted(cl4, ssh) || f.Granted(cl6, dns) {
		t.Fatalf("after re-Setup: %v, want only the ssh grant", f.Grants())
	}
	l, ok := f.Layout()
	if !ok || len(l.Protected) != 2 || l.Protected[1] != web {
		t.Fatalf("Layout() = %v, %v", l, ok)
	}
}

func TestRevokeTeardown(t *testing.T) {
	f, _ := newFake(t)
	ctx := context.Background()
	g := firewall.Grant{Addr: cl4, Service: ssh, TTL: time.Minute}
	if err := f.Grant(ctx, []firewall.Grant{g}); err != nil {
		t.Fatal(err)
	}
	absent := firewall.Grant{Addr: cl6, Service: dns}
	if err := f.Revoke(ctx, []firewall.Grant{g, absent}); err != nil {
		t.Fatal(err)
	}
	if f.Granted(cl4, ssh) {
		t.Fatal("revoked grant still live")
	}
	if err := f.Grant(ctx, []firewall.Grant{g}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := f.Teardown(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := f.Layout(); ok || len(f.Grants()) != 0 {
		t.Fatal("Teardown left state behind")
	}
}

func TestAdmits(t *testing.T) {
	f, _ := newFake(t)
	ctx := context.Background()
	if err := f.Grant(ctx, []firewall.Grant{{Addr: cl4, Service: ssh, TTL: time.Minute}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr netip.Addr
		svc  service.Service
		want bool
	}{
		{cl4, ssh, true},     // granted
		{cl4, dns, false},    // protected, not granted
		{cl6, ssh, false},    // protected, not granted
		{cl4, web, true},     // not protected
		{cl4, knock, false},  // watched: logged and dropped
		{admin, ssh, true},   // always allowed
		{admin, knock, true}, // always allowed comes first
	} {
		if got := f.Admits(tc.addr, tc.svc); got != tc.want {
			t.Errorf("Admits(%v, %v) = %v, want %v", tc.addr, tc.svc, got, tc.want)
		}
	}
}

func TestFailNextAndCalls(t *testing.T) {
	f, _ := newFake(t)
	ctx := context.Background()
	boom := errors.New("boom")
	f.FailNext(OpGrant, boom)
	g := []firewall.Grant{{Addr: cl4, Service: ssh, TTL: time.Minute}}
	if err := f.Grant(ctx, g); !errors.Is(err, boom) {
		t.Fatalf("Grant = %v, want injected error", err)
	}
	if f.Granted(cl4, ssh) {
		t.Fatal("failed Grant changed state")
	}
	if err := f.Grant(ctx, g); err != nil {
		t.Fatalf("second Grant: %v (FailNext must be one-shot)", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := f.Revoke(cctx, g); !errors.Is(err, context.Canceled) {
		t.Fatalf("Revoke with canceled ctx = %v", err)
	}
	calls := f.CallsOf(OpGrant)
	if len(calls) != 2 || !errors.Is(calls[0].Err, boom) || calls[1].Err != nil || calls[1].Grants[0] != g[0] {
		t.Fatalf("Grant calls = %+v", calls)
	}
	g[0].TTL = time.Hour // the recorded call holds a copy
	if f.CallsOf(OpGrant)[1].Grants[0].TTL != time.Minute {
		t.Fatal("recorded call aliases the caller's slice")
	}
	all := f.Calls()
	if len(all) != 4 || all[0].Op != OpSetup || all[3].Op != OpRevoke {
		t.Fatalf("Calls = %+v", all)
	}
}

func TestConcurrentUse(t *testing.T) {
	f, _ := newFake(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			a := netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})
			for range 50 {
				_ = f.Grant(ctx, []firewall.Grant{{Addr: a, Service: ssh, TTL: time.Minute}})
				_, _ = f.List(ctx)
				_ = f.Admits(a, ssh)
			}
		})
	}
	wg.Wait()
	if n := len(f.Grants()); n != 8 {
		t.Fatalf("%d grants, want 8", n)
	}
}

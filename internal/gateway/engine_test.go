package gateway

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/capture"
	"github.com/sesame-gw/sesame/internal/capture/capturetest"
	"github.com/sesame-gw/sesame/internal/firewall"
	"github.com/sesame-gw/sesame/internal/firewall/firewalltest"
	"github.com/sesame-gw/sesame/internal/knock"
	"github.com/sesame-gw/sesame/internal/packet"
	"github.com/sesame-gw/sesame/internal/service"
)

var (
	gw    = netip.MustParseAddr("192.0.2.1")
	alice = netip.MustParseAddr("192.0.2.10")
	bob   = netip.MustParseAddr("2001:db8::10")
	ssh   = service.Service{Proto: service.TCP, Port: 22}
	spaP  = service.Service{Proto: service.UDP, Port: 62201}
)

func tcp(p uint16) service.Service { return service.Service{Proto: service.TCP, Port: p} }
func udp(p uint16) service.Service { return service.Service{Proto: service.UDP, Port: p} }

// syncBuffer is a log sink safe for the engine's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type harness struct {
	t      *testing.T
	eng    *Engine
	fw     *firewalltest.Fake
	src    *capturetest.Source
	log    *syncBuffer
	cancel context.CancelFunc
	done   chan error
	now    atomic.Pointer[time.Time]
}

func (h *harness) clock() time.Time { return *h.now.Load() }

func newHarness(t *testing.T, cfg Config, fw *firewalltest.Fake) *harness {
	h := &harness{t: t, src: capturetest.New(0), log: &syncBuffer{}, done: make(chan error, 1)}
	start := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	h.now.Store(&start)
	if fw == nil {
		fw = firewalltest.New(h.clock)
	}
	h.fw = fw
	cfg.Now = h.clock
	cfg.Logger = slog.New(slog.NewTextHandler(h.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if len(cfg.Doors) == 0 {
		cfg.Doors = []Door{{
			Door:     knock.Door{Name: "ssh", Sequence: []service.Service{tcp(7000), udp(8000), tcp(9000)}, Timeout: 10 * time.Second},
			Open:     []service.Service{ssh},
			Duration: 30 * time.Second,
		}}
	}
	cfg.Layout.Protected = []service.Service{ssh}
	cfg.Layout.Watched = []service.Service{tcp(7000), udp(8000), tcp(9000)}
	cfg.Layout.LogGroup = 7
	h.eng = New(cfg, fw, h.src)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- h.eng.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-h.done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return h
}

func (h *harness) send(src netip.Addr, s service.Service, flags packet.TCPFlags, payload []byte) {
	p := capture.Packet{Packet: packet.Packet{Src: src, Dst: gw, Proto: s.Proto, SrcPort: 40000, DstPort: s.Port, Flags: flags, Payload: payload}}
	if !h.src.Inject(p) {
		h.t.Fatal("inject refused")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.src.WaitIdle(ctx); err != nil {
		h.t.Fatal(err)
	}
}

// eventually polls cond (the writer commits asynchronously).
func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	for i := 0; i < 500; i++ {
		if cond() {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	h.t.Fatalf("never happened: %s\nlog:\n%s", what, h.log)
}

func TestKnockGrantsThroughFirewall(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	h.eventually("setup", func() bool { _, ok := h.fw.Layout(); return ok })
	// The kernel marks knocking sources for the longest sequence timeout.
	if l, _ := h.fw.Layout(); l.WatchTimeout != 10*time.Second {
		t.Fatalf("layout watch timeout %v, want the door's 10s", l.WatchTimeout)
	}
	h.send(alice, tcp(7000), packet.SYN, nil)
	h.send(alice, udp(8000), 0, nil)
	h.send(alice, tcp(9000), packet.SYN, nil)
	h.eventually("grant", func() bool { return h.fw.Granted(alice, ssh) })
	if h.fw.Granted(bob, ssh) {
		t.Fatal("granted to another source")
	}
	for _, g := range h.fw.Grants() {
		if g.TTL != 30*time.Second {
			t.Fatalf("grant TTL %v", g.TTL)
		}
	}
	for _, want := range []string{"msg=knock", "stage=2", "msg=grant", "door=ssh"} {
		if !strings.Contains(h.log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, h.log)
		}
	}
	if h.eng.Stats().Grants.Load() != 1 {
		t.Fatalf("stats %d grants", h.eng.Stats().Grants.Load())
	}
}

func TestWrongOrderNoGrantAndResetLogged(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	h.send(bob, tcp(7000), packet.SYN, nil)
	h.send(bob, tcp(9000), packet.SYN, nil)
	h.send(bob, udp(8000), 0, nil)
	h.eventually("reset logged", func() bool { return strings.Contains(h.log.String(), `reason="wrong port"`) })
	time.Sleep(20 * time.Millisecond)
	if len(h.fw.CallsOf(firewalltest.OpGrant)) != 0 {
		t.Fatalf("grant calls: %v", h.fw.CallsOf(firewalltest.OpGrant))
	}
}

func TestTimeoutSweepResets(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	h.send(alice, tcp(7000), packet.SYN, nil)
	h.eventually("knock", func() bool { return h.eng.Stats().Knocks.Load() == 1 })
	later := h.clock().Add(11 * time.Second)
	h.now.Store(&later)
	// A stray packet from another source wakes the loop; alice's attempt
	// is swept by the timer or on her next packet.
	h.send(alice, udp(8000), 0, nil)
	h.eventually("timeout reset", func() bool { return strings.Contains(h.log.String(), "reason=timeout") })
}

func TestAdoptsLiveGrants(t *testing.T) {
	start := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	fw := firewalltest.New(func() time.Time { return start })
	ctx := context.Background()
	if err := fw.Setup(ctx, firewall.Layout{Protected: []service.Service{ssh}, LogGroup: 7}); err != nil {
		t.Fatal(err)
	}
	if err := fw.Grant(ctx, []firewall.Grant{{Addr: alice, Service: ssh, TTL: time.Minute}}); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, Config{}, fw)
	h.eventually("adopted", func() bool { return strings.Contains(h.log.String(), "adopted grant") })
	if n := len(fw.Grants()); n != 1 {
		t.Fatalf("%d grants after restart", n)
	}
}

func TestSetupFailureStopsRun(t *testing.T) {
	fw := firewalltest.New(time.Now)
	fw.FailNext(firewalltest.OpSetup, errors.New("boom"))
	eng := New(Config{}, fw, capturetest.New(0))
	if err := eng.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("Run = %v", err)
	}
}

func TestSourceFailureStopsRun(t *testing.T) {
	src := capturetest.New(0)
	eng := New(Config{}, firewalltest.New(time.Now), src)
	done := make(chan error, 1)
	go func() { done <- eng.Run(context.Background()) }()
	time.Sleep(10 * time.Millisecond)
	src.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Run returned nil after its source failed")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the source closed")
	}
}

type recordAction struct {
	mu     sync.Mutex
	opened []netip.Addr
}

func (r *recordAction) Opened(src netip.Addr, door string, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.opened = append(r.opened, src)
}

func TestActionWithoutFirewall(t *testing.T) {
	act := &recordAction{}
	src := capturetest.New(0)
	cfg := Config{Doors: []Door{{Door: knock.Door{Name: "cmd", Sequence: []service.Service{tcp(1000), tcp(2000)}, Timeout: time.Second}, Action: act}}}
	eng := New(cfg, nil, src)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	for _, s := range []service.Service{tcp(1000), tcp(2000)} {
		src.Inject(capture.Packet{Packet: packet.Packet{Src: bob, Dst: gw, Proto: s.Proto, DstPort: s.Port, Flags: packet.SYN}})
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer wcancel()
	src.WaitIdle(wctx)
	opened := func() []netip.Addr {
		act.mu.Lock()
		defer act.mu.Unlock()
		return append([]netip.Addr(nil), act.opened...)
	}
	for i := 0; i < 500 && len(opened()) == 0; i++ {
		time.Sleep(2 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := opened(); len(got) != 1 || got[0] != bob {
		t.Fatalf("action calls %v", got)
	}
}

// fakeHandler accepts payloads starting with "ok:" and grants 22/tcp.
type fakeHandler struct{ calls atomic.Int64 }

func (f *fakeHandler) Name() string { return "fake" }
func (f *fakeHandler) Match(payload []byte) bool {
	return bytes.HasPrefix(payload, []byte("ok:")) || bytes.HasPrefix(payload, []byte("no:"))
}
func (f *fakeHandler) Precheck(payload []byte) string {
	if bytes.HasPrefix(payload, []byte("no:junk")) {
		return "prefilter"
	}
	return ""
}
func (f *fakeHandler) Handle(now time.Time, src, dst netip.Addr, payload []byte) Verdict {
	f.calls.Add(1)
	if bytes.HasPrefix(payload, []byte("no:")) {
		return Verdict{Client: "mallory", Reason: "service-not-allowed"}
	}
	return Verdict{Client: "laptop", Grants: []firewall.Grant{{Addr: src, Service: ssh, TTL: time.Minute}}}
}

func TestDatagramPath(t *testing.T) {
	fh := &fakeHandler{}
	h := newHarness(t, Config{SPAPorts: []service.Service{spaP}, Handlers: []DatagramHandler{fh}, SourceRate: 1, SourceBurst: 3}, nil)
	h.send(bob, spaP, 0, []byte("ok:1"))
	h.eventually("SPA grant", func() bool { return h.fw.Granted(bob, ssh) })
	if !strings.Contains(h.log.String(), "proto=fake client=laptop") {
		t.Fatalf("grant log:\n%s", h.log)
	}
	h.send(alice, spaP, 0, []byte("no:1"))
	h.eventually("reject logged", func() bool { return strings.Contains(h.log.String(), "reason=service-not-allowed") })
	h.send(alice, spaP, 0, []byte("garbage"))
	h.eventually("unknown format", func() bool { return strings.Contains(h.log.String(), "reason=unknown-format") })
	// Rate limit: alice has used 2 of 3 tokens; the clock is frozen.
	for i := 0; i < 5; i++ {
		h.send(alice, spaP, 0, []byte("no:x"))
	}
	h.eventually("rate limited", func() bool { return h.eng.Stats().RateLimited.Load() == 3 })
	// bob's grant, alice's reject, and alice's first two "no:x" (her second
	// and third tokens; "garbage" matched no handler and took none).
	if c := fh.calls.Load(); c != 4 {
		t.Fatalf("handler called %d times, want 4", c)
	}
	// Garbage failing the precheck costs no tokens: alice is out of
	// tokens, and junk is still rejected as junk, not rate-limited.
	h.send(alice, spaP, 0, []byte("no:junk"))
	h.eventually("precheck reject", func() bool { return strings.Contains(h.log.String(), "reason=prefilter") })
	if n := h.eng.Stats().RateLimited.Load(); n != 3 {
		t.Fatalf("precheck failure consumed a token (rate limited %d)", n)
	}
	// A datagram to a non-SPA port is not handed to the handlers.
	h.send(bob, udp(9999), 0, []byte("ok:2"))
	time.Sleep(10 * time.Millisecond)
	if c := fh.calls.Load(); c != 4 {
		t.Fatalf("non-SPA port reached the handler")
	}
}

func TestSourceLimiter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newSourceLimiter(10, 2, 3)
	a := netip.MustParseAddr("2001:db8::1")
	a2 := netip.MustParseAddr("2001:db8::2") // same /64
	if !l.allow(a, now) || !l.allow(a2, now) || l.allow(a, now) {
		t.Fatal("a /64 must share one bucket of 2")
	}
	if !l.allow(a, now.Add(100*time.Millisecond)) {
		t.Fatal("bucket did not refill")
	}
	for i := 0; i < 10; i++ {
		l.allow(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), now)
	}
	if len(l.buckets) != 3 {
		t.Fatalf("%d buckets, cap 3", len(l.buckets))
	}
}

func TestReloadKeepsProgressAndGrants(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	h.send(alice, tcp(7000), packet.SYN, nil)
	h.send(alice, udp(8000), 0, nil)
	h.send(bob, tcp(7000), packet.SYN, nil)
	h.send(bob, udp(8000), 0, nil)
	h.send(bob, tcp(9000), packet.SYN, nil)
	h.eventually("bob granted", func() bool { return h.fw.Granted(bob, ssh) })

	// Reload with the same ssh door plus a new one.
	cfg := h.eng.cfg
	web := Door{Door: knock.Door{Name: "web", Sequence: []service.Service{tcp(1000), tcp(2000)}, Timeout: time.Second},
		Open: []service.Service{tcp(443)}, Duration: time.Minute}
	cfg.Doors = append(append([]Door(nil), cfg.Doors...), web)
	cfg.Layout.Protected = []service.Service{ssh, tcp(443)}
	cfg.Layout.Watched = append(cfg.Layout.Watched, tcp(1000), tcp(2000))
	ctx := context.Background()
	if err := h.eng.Reload(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if !h.fw.Granted(bob, ssh) {
		t.Fatal("reload dropped a live grant")
	}
	h.send(alice, tcp(9000), packet.SYN, nil) // alice's progress survived
	h.eventually("alice granted after reload", func() bool { return h.fw.Granted(alice, ssh) })
	h.send(alice, tcp(1000), packet.SYN, nil)
	h.send(alice, tcp(2000), packet.SYN, nil)
	h.eventually("new door works", func() bool { return h.fw.Granted(alice, tcp(443)) })

	// A firewall that refuses the layout leaves the old config running.
	h.fw.FailNext(firewalltest.OpSetup, errors.New("refused"))
	bad := cfg
	bad.Doors = cfg.Doors[:1]
	if err := h.eng.Reload(ctx, bad); err == nil {
		t.Fatal("Reload succeeded although Setup failed")
	}
	st, err := h.eng.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Doors) != 2 {
		t.Fatalf("failed reload changed the doors: %+v", st.Doors)
	}
	if len(st.Grants) != 3 || st.Counters["grants"] != 3 {
		t.Fatalf("status grants %+v counters %v", st.Grants, st.Counters)
	}
	kinds := map[string]int{}
	for _, d := range st.Recent {
		kinds[d.Kind]++
	}
	if kinds["grant"] != 3 {
		t.Fatalf("recent decisions %+v", st.Recent)
	}
	gone, err := h.eng.Revoke(ctx, alice, tcp(443))
	if err != nil || len(gone) != 1 || h.fw.Granted(alice, tcp(443)) || !h.fw.Granted(alice, ssh) {
		t.Fatalf("Revoke = %v, %v", gone, err)
	}
}

func TestControlAfterStop(t *testing.T) {
	eng := New(Config{}, firewalltest.New(time.Now), capturetest.New(0))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	if _, err := eng.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
	if _, err := eng.Status(context.Background()); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Status after stop = %v", err)
	}
}

package spagw

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/firewall"
	"github.com/sesame-gw/sesame/internal/gateway"
	"github.com/sesame-gw/sesame/internal/policy"
	"github.com/sesame-gw/sesame/internal/replay"
	"github.com/sesame-gw/sesame/internal/service"
	"github.com/sesame-gw/sesame/internal/spa"
)

func svc(p service.Proto, port uint16) service.Service { return service.Service{Proto: p, Port: port} }

func TestGrant(t *testing.T) {
	f := newFixture(t)
	h := f.handler(t, f.store(t, replay.Options{}, t0))
	if h.Name() != "spa" {
		t.Errorf("Name = %q", h.Name())
	}
	for _, tc := range []struct {
		name string
		id   ed25519.PrivateKey
		req  policy.Request
		src  netip.Addr
		want []firewall.Grant
	}{
		{"one service v4", f.alice, req(t, 30*time.Second, "22/tcp"), src4,
			[]firewall.Grant{{Addr: src4, Service: svc(service.TCP, 22), TTL: 30 * time.Second}}},
		{"one service v6", f.alice, req(t, 5*time.Minute, "22/tcp"), src6,
			[]firewall.Grant{{Addr: src6, Service: svc(service.TCP, 22), TTL: 5 * time.Minute}}},
		{"range and repeats once each", f.alice, req(t, time.Second, "60001-60002/udp", "22/tcp", "60002/udp"), src4,
			[]firewall.Grant{
				{Addr: src4, Service: svc(service.UDP, 60001), TTL: time.Second},
				{Addr: src4, Service: svc(service.UDP, 60002), TTL: time.Second},
				{Addr: src4, Service: svc(service.TCP, 22), TTL: time.Second},
			}},
		{"other address", f.carol, func() policy.Request {
			r := req(t, 10*time.Second, "22/tcp")
			r.Addr = netip.MustParseAddr("198.51.100.99")
			return r
		}(), src4,
			[]firewall.Grant{{Addr: netip.MustParseAddr("198.51.100.99"), Service: svc(service.TCP, 22), TTL: 10 * time.Second}}},
		{"mapped source", f.alice, req(t, time.Minute, "22/tcp"), netip.MustParseAddr("::ffff:198.51.100.7"),
			[]firewall.Grant{{Addr: src4, Service: svc(service.TCP, 22), TTL: time.Minute}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkt := seal(t, tc.id, f.gw.PublicKey(), tc.req, t0)
			if !h.Match(pkt) {
				t.Fatal("Match refused a native packet")
			}
			v := h.Handle(t0.Add(2*time.Second), tc.src, gwIP, pkt)
			if v.Reason != "" {
				t.Fatalf("refused: %+v", v)
			}
			if v.Quiet || v.Client == "" || !slices.Equal(v.Grants, tc.want) {
				t.Fatalf("verdict %+v, want grants %v", v, tc.want)
			}
		})
	}
}

func TestMatchIsCheap(t *testing.T) {
	h := newFixture(t).handler(t, replay.New(0))
	for _, b := range [][]byte{nil, {}, []byte("AAAA+/base64 fwknop"), {0xD2, 1}} {
		if h.Match(b) {
			t.Errorf("Match(%q) = true", b)
		}
	}
	if !h.Match([]byte{spa.Magic}) {
		t.Error("Match refuses the magic byte")
	}
}

// Every refusal, with its stable reason; garbage is quiet, everything from
// the credential lookup on is logged, and from the signature on names the
// client when the step that refused knows it.
func TestRejectReasons(t *testing.T) {
	f := newFixture(t)
	gw := f.gw.PublicKey()
	now := t0.Add(time.Second)
	good := seal(t, f.alice, gw, req(t, 30*time.Second, "22/tcp"), t0)
	flip := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i] ^= 1; return b }
	withAddr := func(a string) policy.Request {
		r := req(t, 30*time.Second, "22/tcp")
		r.Addr = netip.MustParseAddr(a)
		return r
	}
	mallory := idKey(99)
	x509 := spa.Identity{Credential: spa.Credential{Kind: spa.CredX509, Data: []byte("not a certificate")}, Signer: f.alice}
	x509pkt, err := spa.Seal(x509, gw, req(t, 30*time.Second, "22/tcp"), t0)
	if err != nil {
		t.Fatal(err)
	}
	alicePub := f.alice.Public().(ed25519.PublicKey)

	cases := []struct {
		name   string
		pkt    []byte
		src    netip.Addr
		reason string
		quiet  bool
		client string
		detail string
	}{
		{"short", good[:60], src4, "short", true, "", ""},
		{"too long", append(bytes.Clone(good), make([]byte, 1300)...), src4, "too-long", true, "", ""},
		{"magic", flip(good, 0), src4, "magic", true, "", ""},
		{"version", flip(good, 1), src4, "version", true, "", ""},
		{"prefilter: another gateway", seal(t, f.alice, gwKey(t, 2).PublicKey(), req(t, 30*time.Second, "22/tcp"), t0), src4, "prefilter", true, "", ""},
		{"prefilter: tampered", flip(good, 100), src4, "prefilter", true, "", ""},
		{"decrypt: tampered and re-maced", remac(t, gw, flip(good, 100)[:len(good)-16]), src4, "decrypt", true, "", ""},
		{"malformed", handBuild(t, gw, plaintext(alicePub, t0, make([]byte, 63))), src4, "malformed", true, "", ""},
		{"credential: x509 not accepted", x509pkt, src4, "credential", false, "", "x509"},
		{"unknown key", seal(t, mallory, gw, req(t, 30*time.Second, "22/tcp"), t0), src4, "unknown-key", false, "", "sesame-id1:"},
		{"signature", handBuild(t, gw, plaintext(alicePub, t0, make([]byte, 64))), src4, "signature", false, "", ""},
		{"stale past", seal(t, f.alice, gw, req(t, 30*time.Second, "22/tcp"), now.Add(-61*time.Second)), src4, "stale", false, "alice", "in the past"},
		{"stale future", seal(t, f.alice, gw, req(t, 30*time.Second, "22/tcp"), now.Add(61*time.Second)), src4, "stale", false, "alice", "in the future"},
		{"client expired", seal(t, f.bob, gw, req(t, 30*time.Second, "22/tcp"), t0), src4, "client-expired", false, "bob", "expired 2026-11-22T12:00:00Z"},
		{"bad source", seal(t, f.alice, gw, req(t, 30*time.Second, "22/tcp"), t0), netip.MustParseAddr("127.0.0.1"), "bad-source", false, "alice", "127.0.0.1"},
		{"source not allowed", seal(t, f.carol, gw, req(t, 30*time.Second, "22/tcp"), t0), other, "source-not-allowed", false, "carol", "203.0.113.9"},
		{"service not allowed", seal(t, f.alice, gw, req(t, 30*time.Second, "22/tcp", "23/tcp"), t0), src4, "service-not-allowed", false, "alice", "23/tcp"},
		{"range partly allowed", seal(t, f.alice, gw, req(t, 30*time.Second, "60010-60011/udp"), t0), src4, "service-not-allowed", false, "alice", "60010-60011/udp"},
		{"duration too long", seal(t, f.alice, gw, req(t, 5*time.Minute+time.Second, "22/tcp"), t0), src4, "duration-too-long", false, "alice", "5m1s > 5m0s"},
		{"default max duration", seal(t, f.carol, gw, req(t, 61*time.Second, "22/tcp"), t0), src4, "duration-too-long", false, "carol", "1m1s > 1m0s"},
		{"other address not allowed", seal(t, f.alice, gw, withAddr("203.0.113.9"), t0), src4, "other-address-not-allowed", false, "alice", "203.0.113.9"},
		{"bad address", seal(t, f.carol, gw, withAddr("ff02::1"), t0), src4, "bad-address", false, "carol", "ff02::1"},
		{"address not allowed", seal(t, f.carol, gw, withAddr("203.0.113.9"), t0), src4, "address-not-allowed", false, "carol", "203.0.113.9"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := f.handler(t, replay.New(0)) // fresh cache: no case is a replay of another
			v := h.Handle(now, c.src, gwIP, c.pkt)
			if v.Reason != c.reason || v.Quiet != c.quiet || v.Client != c.client || v.Grants != nil {
				t.Fatalf("verdict %+v; want reason %q quiet %v client %q", v, c.reason, c.quiet, c.client)
			}
			if !strings.Contains(v.Detail, c.detail) || strings.HasPrefix(v.Detail, c.reason) {
				t.Fatalf("detail %q; want it to contain %q without the reason", v.Detail, c.detail)
			}
		})
	}
}

// The same packet again is refused: from the same source, from another,
// and after the handler is re-created from the same state directory (a
// daemon restart), until it is stale anyway.
func TestReplay(t *testing.T) {
	f := newFixture(t)
	pkt := seal(t, f.alice, f.gw.PublicKey(), req(t, 30*time.Second, "22/tcp"), t0)
	h := f.handler(t, f.store(t, replay.Options{}, t0))
	if v := h.Handle(t0, src4, gwIP, pkt); v.Reason != "" {
		t.Fatalf("first: %+v", v)
	}
	for _, src := range []netip.Addr{src4, src6, other} {
		v := h.Handle(t0.Add(time.Second), src, gwIP, pkt)
		if v.Reason != "replay" || v.Client != "alice" || v.Quiet || v.Grants != nil {
			t.Fatalf("replay from %v: %+v", src, v)
		}
	}
	// A fresh packet with the same request is not a replay.
	if v := h.Handle(t0.Add(time.Second), src4, gwIP, seal(t, f.alice, f.gw.PublicKey(), req(t, 30*time.Second, "22/tcp"), t0)); v.Reason != "" {
		t.Fatalf("fresh packet: %+v", v)
	}

	// Restart: a new store over the same file, a new handler.
	restart := t0.Add(20 * time.Second)
	h2 := f.handler(t, f.store(t, replay.Options{}, restart))
	if v := h2.Handle(restart, other, gwIP, pkt); v.Reason != "replay" {
		t.Fatalf("after restart: %+v", v)
	}
	// Past its window the packet is stale, whatever the cache holds.
	if v := h2.Handle(t0.Add(61*time.Second), src4, gwIP, pkt); v.Reason != "stale" {
		t.Fatalf("after the window: %+v", v)
	}
}

// A refused request is recorded before the policy check (§6 step 11), so
// its replay is logged as a replay.
func TestReplayOfRefused(t *testing.T) {
	f := newFixture(t)
	h := f.handler(t, replay.New(0))
	pkt := seal(t, f.alice, f.gw.PublicKey(), req(t, 30*time.Second, "23/tcp"), t0)
	if v := h.Handle(t0, src4, gwIP, pkt); v.Reason != "service-not-allowed" {
		t.Fatalf("first: %+v", v)
	}
	if v := h.Handle(t0, src4, gwIP, pkt); v.Reason != "replay" {
		t.Fatalf("second: %+v", v)
	}
}

func TestReplayCacheFull(t *testing.T) {
	f := newFixture(t)
	h := f.handler(t, f.store(t, replay.Options{Capacity: 1}, t0))
	a := seal(t, f.alice, f.gw.PublicKey(), req(t, 30*time.Second, "22/tcp"), t0)
	b := seal(t, f.alice, f.gw.PublicKey(), req(t, 30*time.Second, "22/tcp"), t0)
	if v := h.Handle(t0, src4, gwIP, a); v.Reason != "" {
		t.Fatalf("first: %+v", v)
	}
	if v := h.Handle(t0, src4, gwIP, b); v.Reason != "replay-cache-full" || v.Client != "alice" {
		t.Fatalf("second: %+v", v)
	}
	// Once the first entry expires there is room again.
	c := seal(t, f.alice, f.gw.PublicKey(), req(t, 30*time.Second, "22/tcp"), t0.Add(61*time.Second))
	if v := h.Handle(t0.Add(62*time.Second), src4, gwIP, c); v.Reason != "" {
		t.Fatalf("after expiry: %+v", v)
	}
}

type failingReplay struct{}

func (failingReplay) Add(replay.Key, time.Time, time.Time) error {
	return errors.Join(replay.ErrPersist, errors.New("disk full"))
}

// A replay cache that cannot be written fails closed, loudly.
func TestReplayPersistFailsClosed(t *testing.T) {
	f := newFixture(t)
	var log bytes.Buffer
	h, err := New(f.settings(), failingReplay{}, slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	v := h.Handle(t0, src4, gwIP, seal(t, f.alice, f.gw.PublicKey(), req(t, 30*time.Second, "22/tcp"), t0))
	if v.Reason != "replay-persist" || v.Grants != nil || v.Client != "alice" {
		t.Fatalf("verdict %+v", v)
	}
	if !strings.Contains(log.String(), "level=ERROR") || !strings.Contains(log.String(), "disk full") {
		t.Fatalf("log: %s", log.String())
	}
}

// Update swaps clients and keys; the replay cache survives it.
func TestUpdate(t *testing.T) {
	f := newFixture(t)
	h := f.handler(t, replay.New(0))
	gw := f.gw.PublicKey()
	pkt := seal(t, f.alice, gw, req(t, 30*time.Second, "22/tcp"), t0)
	if v := h.Handle(t0, src4, gwIP, pkt); v.Reason != "" {
		t.Fatalf("%+v", v)
	}
	// Remove alice (a revoked key): her next packet is refused at once.
	carol, _ := f.set.ByName("carol")
	set, err := policy.NewSet([]policy.Client{*carol})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Update(Settings{Key: f.gw, Clients: set}); err != nil {
		t.Fatal(err)
	}
	if v := h.Handle(t0, src4, gwIP, seal(t, f.alice, gw, req(t, 30*time.Second, "22/tcp"), t0)); v.Reason != "unknown-key" {
		t.Fatalf("removed client: %+v", v)
	}
	// Restore alice: the old packet is still a replay.
	if err := h.Update(f.settings()); err != nil {
		t.Fatal(err)
	}
	if v := h.Handle(t0, src4, gwIP, pkt); v.Reason != "replay" {
		t.Fatalf("replay after reload: %+v", v)
	}
	// A new gateway key: packets for the old one fail the pre-filter.
	if err := h.Update(Settings{Key: gwKey(t, 7), Clients: f.set}); err != nil {
		t.Fatal(err)
	}
	if v := h.Handle(t0, src4, gwIP, seal(t, f.alice, gw, req(t, 30*time.Second, "22/tcp"), t0)); v.Reason != "prefilter" {
		t.Fatalf("old gateway key: %+v", v)
	}
	// A bad update keeps the old settings.
	if err := h.Update(Settings{Clients: f.set}); err == nil {
		t.Fatal("Update without a key succeeded")
	}
	if err := h.Update(Settings{Key: f.gw, Clients: f.set, Window: -time.Second}); err == nil {
		t.Fatal("Update with a negative window succeeded")
	}
	if v := h.Handle(t0, src4, gwIP, seal(t, f.alice, gw, req(t, 30*time.Second, "22/tcp"), t0)); v.Reason != "prefilter" {
		t.Fatalf("after failed updates: %+v", v)
	}
}

func TestWindowSetting(t *testing.T) {
	f := newFixture(t)
	s := f.settings()
	s.Window = 5 * time.Second
	h, err := New(s, replay.New(0), nil)
	if err != nil {
		t.Fatal(err)
	}
	pkt := seal(t, f.alice, f.gw.PublicKey(), req(t, 30*time.Second, "22/tcp"), t0)
	if v := h.Handle(t0.Add(6*time.Second), src4, gwIP, pkt); v.Reason != "stale" {
		t.Fatalf("%+v", v)
	}
	if v := h.Handle(t0.Add(5*time.Second), src4, gwIP, pkt); v.Reason != "" {
		t.Fatalf("%+v", v)
	}
}

func TestNewRejects(t *testing.T) {
	f := newFixture(t)
	if _, err := New(f.settings(), nil, nil); err == nil {
		t.Error("nil replay accepted")
	}
	if _, err := New(Settings{}, replay.New(0), nil); err == nil {
		t.Error("no key accepted")
	}
	// No clients: valid, and every packet is an unknown key.
	h, err := New(Settings{Key: f.gw}, replay.New(0), nil)
	if err != nil {
		t.Fatal(err)
	}
	if v := h.Handle(t0, src4, gwIP, seal(t, f.alice, f.gw.PublicKey(), req(t, 30*time.Second, "22/tcp"), t0)); v.Reason != "unknown-key" {
		t.Fatalf("%+v", v)
	}
}

// The engine runs handlers on several workers: one packet delivered many
// times at once is granted exactly once.
func TestConcurrentReplay(t *testing.T) {
	f := newFixture(t)
	h := f.handler(t, f.store(t, replay.Options{}, t0))
	pkt := seal(t, f.alice, f.gw.PublicKey(), req(t, 30*time.Second, "22/tcp"), t0)
	var granted, replays atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			switch v := h.Handle(t0, src4, gwIP, bytes.Clone(pkt)); v.Reason {
			case "":
				granted.Add(1)
			case "replay":
				replays.Add(1)
			default:
				t.Errorf("verdict %+v", v)
			}
		})
	}
	wg.Wait()
	if granted.Load() != 1 || replays.Load() != 15 {
		t.Fatalf("granted %d, replays %d", granted.Load(), replays.Load())
	}
}

var _ gateway.DatagramHandler = (*Handler)(nil)

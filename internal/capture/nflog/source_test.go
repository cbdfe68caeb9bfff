package nflog

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	nflog "github.com/florianl/go-nflog/v2"

	"github.com/sesame-gw/sesame/internal/capture"
	"github.com/sesame-gw/sesame/internal/packet"
	"github.com/sesame-gw/sesame/internal/service"
)

var (
	cli4 = netip.MustParseAddr("192.0.2.7")
	gw4  = netip.MustParseAddr("192.0.2.1")
	t0   = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
)

// testSource is a Source without a socket: the tests drive its hook the way
// go-nflog's receive loop does.
func testSource(t *testing.T, cfg Config) *Source {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return t0 }
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	s := newSource(cfg)
	s.names.lookup = func(i int) (string, error) {
		if i == 3 {
			return "veth-gw", nil
		}
		return "", errors.New("no such interface")
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func attr(l3 []byte) nflog.Attribute { return nflog.Attribute{Payload: &l3} }

func read(t *testing.T, s *Source) capture.Packet {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	p, err := s.ReadPacket(ctx)
	if err != nil {
		t.Fatalf("ReadPacket: %v", err)
	}
	return p
}

func TestHookDeliversParsedPacket(t *testing.T) {
	s := testSource(t, Config{})
	l3 := packet.BuildUDP(cli4, gw4, 40000, 62201, []byte("spa"))
	ts := t0.Add(-time.Second)
	idx := uint32(3)
	a := attr(l3)
	a.Timestamp, a.InDev = &ts, &idx
	if s.hook(a) != 0 {
		t.Fatal("hook returned non-zero: the receive loop would stop")
	}
	l3[len(l3)-1] = 'X' // the source must have copied the payload
	p := read(t, s)
	if p.Src != cli4 || p.Dst != gw4 || p.Proto != service.UDP || p.SrcPort != 40000 ||
		p.DstPort != 62201 || string(p.Payload) != "spa" || !p.Time.Equal(ts) || p.Iface != "veth-gw" {
		t.Errorf("got %+v", p)
	}

	// No kernel timestamp and an unknown interface: Now and "".
	idx = 9
	a = attr(packet.BuildIPv4TCP(cli4, gw4, 1, 22, packet.SYN))
	a.InDev = &idx
	s.hook(a)
	p = read(t, s)
	if p.Flags != packet.SYN || p.Proto != service.TCP || !p.Time.Equal(t0) || p.Iface != "" {
		t.Errorf("got %+v", p)
	}
	if st := s.Stats(); st != (capture.Stats{Received: 2}) {
		t.Errorf("stats %+v", st)
	}
}

func TestHookCountsMalformed(t *testing.T) {
	s := testSource(t, Config{})
	s.hook(nflog.Attribute{}) // no payload (copy mode meta)
	s.hook(attr([]byte{0x45, 0, 0}))
	icmp := packet.BuildUDP(cli4, gw4, 1, 2, nil)
	icmp[9] = 1
	s.hook(attr(icmp))
	if st := s.Stats(); st != (capture.Stats{Malformed: 3}) {
		t.Errorf("stats %+v", st)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.ReadPacket(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("ReadPacket with nothing queued and ctx cancelled: %v", err)
	}
}

func TestQueueFullDropsWithoutBlocking(t *testing.T) {
	s := testSource(t, Config{QueueLen: 2})
	for i := range 5 {
		s.hook(attr(packet.BuildUDP(cli4, gw4, uint16(1000+i), 2, []byte{byte(i)})))
	}
	if st := s.Stats(); st.Dropped != 3 {
		t.Fatalf("stats %+v, want 3 dropped", st)
	}
	for i := range 2 {
		if p := read(t, s); p.SrcPort != uint16(1000+i) {
			t.Errorf("packet %d: sport %d (order)", i, p.SrcPort)
		}
	}
}

// TestPayloadValidUntilNextRead checks the aliasing contract: while the
// reader holds a packet, the producer can fill every other slot without
// touching it.
func TestPayloadValidUntilNextRead(t *testing.T) {
	s := testSource(t, Config{QueueLen: 3})
	s.hook(attr(packet.BuildUDP(cli4, gw4, 1, 2, []byte("first"))))
	p := read(t, s)
	for range 10 {
		s.hook(attr(packet.BuildUDP(cli4, gw4, 1, 2, []byte("later"))))
	}
	if string(p.Payload) != "first" {
		t.Fatalf("held payload overwritten: %q", p.Payload)
	}
	if st := s.Stats(); st.Dropped != 8 {
		t.Errorf("stats %+v: 2 free slots while one is held, want 8 dropped", st)
	}
	if p := read(t, s); string(p.Payload) != "later" {
		t.Errorf("next payload %q", p.Payload)
	}
}

func TestLargePayloadNotKept(t *testing.T) {
	s := testSource(t, Config{QueueLen: 2})
	big := bytes.Repeat([]byte("j"), 9000)
	s.hook(attr(packet.BuildUDP(cli4, gw4, 1, 2, big)))
	if p := read(t, s); !bytes.Equal(p.Payload, big) {
		t.Fatal("jumbo payload")
	}
	s.hook(attr(packet.BuildUDP(cli4, gw4, 1, 2, []byte("small"))))
	if p := read(t, s); string(p.Payload) != "small" {
		t.Fatalf("payload %q", p.Payload)
	}
	for i, sl := range s.q.slots {
		if cap(sl.buf) > maxKeptPayload {
			t.Errorf("slot %d keeps a %d-byte buffer after its jumbo packet was released", i, cap(sl.buf))
		}
	}
}

func TestReadPacketBlocksUntilPacket(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := testSource(t, Config{})
		got := make(chan capture.Packet, 1)
		go func() {
			p, err := s.ReadPacket(t.Context())
			if err != nil {
				t.Errorf("ReadPacket: %v", err)
			}
			got <- p
		}()
		synctest.Wait()
		select {
		case p := <-got:
			t.Fatalf("ReadPacket returned %+v before any packet", p)
		default:
		}
		s.hook(attr(packet.BuildUDP(cli4, gw4, 5, 6, nil)))
		synctest.Wait()
		select {
		case p := <-got:
			if p.DstPort != 6 {
				t.Errorf("got %+v", p)
			}
		default:
			t.Fatal("ReadPacket still blocked after a packet")
		}
	})
}

func TestCloseUnblocksAndIsIdempotent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := testSource(t, Config{})
		stops := 0
		s.stop = func() error { stops++; return nil }
		errc := make(chan error, 1)
		go func() {
			_, err := s.ReadPacket(context.Background())
			errc <- err
		}()
		synctest.Wait()
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
		}
		wg.Wait()
		if err := <-errc; !errors.Is(err, capture.ErrClosed) {
			t.Errorf("blocked ReadPacket: %v, want ErrClosed", err)
		}
		if stops != 1 {
			t.Errorf("socket closed %d times", stops)
		}
		// Closed wins over queued packets, and the hook stays harmless.
		s.hook(attr(packet.BuildUDP(cli4, gw4, 5, 6, nil)))
		if _, err := s.ReadPacket(context.Background()); !errors.Is(err, capture.ErrClosed) {
			t.Errorf("ReadPacket after Close: %v", err)
		}
	})
}

func TestCloseReturnsStopError(t *testing.T) {
	s := testSource(t, Config{})
	boom := errors.New("boom")
	s.stop = func() error { return boom }
	if err := s.Close(); !errors.Is(err, boom) {
		t.Errorf("first Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestFailedLoopDrainsThenErrors(t *testing.T) {
	s := testSource(t, Config{})
	s.hook(attr(packet.BuildUDP(cli4, gw4, 1, 2, nil)))
	dead := errors.New("socket gone")
	s.fail(dead)
	read(t, s)
	if _, err := s.ReadPacket(t.Context()); !errors.Is(err, dead) {
		t.Errorf("ReadPacket after failure: %v, want wrapped %v", err, dead)
	}
}

// TestConcurrentHookReadClose runs the producer, the reader and Close at
// once, for the race detector.
func TestConcurrentHookReadClose(t *testing.T) {
	s := testSource(t, Config{QueueLen: 4})
	l3 := packet.BuildUDP(cli4, gw4, 1, 2, []byte("race"))
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 2000 {
			s.hook(attr(l3))
		}
	})
	wg.Go(func() {
		for {
			p, err := s.ReadPacket(t.Context())
			if err != nil {
				if !errors.Is(err, capture.ErrClosed) {
					t.Errorf("ReadPacket: %v", err)
				}
				return
			}
			if string(p.Payload) != "race" {
				t.Errorf("payload %q", p.Payload)
			}
		}
	})
	time.Sleep(time.Millisecond)
	s.Close()
	wg.Wait()
	st := s.Stats()
	if st.Received+st.Dropped > 2000 || st.Malformed != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestIfNamesCache(t *testing.T) {
	calls := 0
	c := newIfNames()
	c.lookup = func(i int) (string, error) { calls++; return "eth0", nil }
	for range 3 {
		if c.name(2, t0) != "eth0" {
			t.Fatal("name")
		}
	}
	if calls != 1 {
		t.Errorf("%d lookups for one index, want 1 (cached)", calls)
	}
	c.name(2, t0.Add(ifNameTTL))
	c.name(2, t0.Add(-time.Second)) // clock stepped back: refresh too
	if calls != 3 {
		t.Errorf("%d lookups, want a refresh after the TTL and after a clock step", calls)
	}
	for i := range 2 * maxIfNames {
		c.name(uint32(100+i), t0)
	}
	if len(c.m) > maxIfNames {
		t.Errorf("cache holds %d entries, bound %d", len(c.m), maxIfNames)
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.QThresh != 1 || c.ReadBuffer != DefaultReadBuffer || c.QueueLen != DefaultQueueLen ||
		c.timeoutCentis() != 1 || c.Logger == nil || c.Now == nil {
		t.Errorf("defaults %+v", c)
	}
	if c, _ := (Config{Timeout: 15 * time.Millisecond}).withDefaults(); c.timeoutCentis() != 2 {
		t.Errorf("15 ms → %d centiseconds, want 2 (rounded up)", c.timeoutCentis())
	}
	for _, bad := range []Config{{ReadBuffer: -1}, {QueueLen: 1 << 21}, {Timeout: -time.Second}} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// TryReadPacket and Notify (capture.Poller): no packet, then a wake-up and
// the packet; the payload stays valid until the next read; after a
// failure, queued packets first, then the error.
func TestPoller(t *testing.T) {
	s := testSource(t, Config{})
	wake := make(chan struct{}, 1)
	s.Notify(wake)
	if _, ok, err := s.TryReadPacket(); ok || err != nil {
		t.Fatalf("empty source: ok %v, err %v", ok, err)
	}
	s.hook(attr(packet.BuildUDP(cli4, gw4, 1, 62201, []byte("one"))))
	s.hook(attr(packet.BuildUDP(cli4, gw4, 1, 62201, []byte("two"))))
	select {
	case <-wake:
	default:
		t.Fatal("no wake-up after a packet")
	}
	p, ok, err := s.TryReadPacket()
	if !ok || err != nil || string(p.Payload) != "one" {
		t.Fatalf("got %q, %v, %v", p.Payload, ok, err)
	}
	s.fail(errors.New("boom"))
	select {
	case <-wake:
	default:
		t.Fatal("no wake-up after a failure")
	}
	if string(p.Payload) != "one" {
		t.Fatal("payload changed before the next read")
	}
	if p, ok, err := s.TryReadPacket(); !ok || err != nil || string(p.Payload) != "two" {
		t.Fatalf("queued packet after failure: %q, %v, %v", p.Payload, ok, err)
	}
	if _, ok, err := s.TryReadPacket(); ok || err == nil {
		t.Fatalf("after the queue: ok %v, err %v", ok, err)
	}
}

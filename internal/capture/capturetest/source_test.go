package capturetest

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sesame-gw/sesame/internal/capture"
	"github.com/sesame-gw/sesame/internal/packet"
	"github.com/sesame-gw/sesame/internal/service"
)

var (
	cli = netip.MustParseAddr("2001:db8::7")
	gw  = netip.MustParseAddr("2001:db8::1")
	t0  = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
)

func udp(sport uint16, payload string) capture.Packet {
	return capture.Packet{Packet: packet.Packet{Src: cli, Dst: gw, Proto: service.UDP,
		SrcPort: sport, DstPort: 62201, Payload: []byte(payload)}, Time: t0, Iface: "eth0"}
}

func TestInjectThenRead(t *testing.T) {
	s := New(0)
	buf := []byte("one")
	p := udp(1, "")
	p.Payload = buf
	s.Inject(p)
	buf[0] = 'X' // Inject copied it
	if !s.InjectL3(packet.BuildIPv4TCP(netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("192.0.2.1"), 2, 22, packet.SYN), t0, "eth1") {
		t.Fatal("InjectL3 of a good packet")
	}
	if s.InjectL3([]byte{0x45}, t0, "") {
		t.Error("InjectL3 of garbage accepted")
	}
	if s.Len() != 2 {
		t.Errorf("Len %d", s.Len())
	}
	got, err := s.ReadPacket(t.Context())
	if err != nil || string(got.Payload) != "one" || got.SrcPort != 1 || got.Iface != "eth0" || !got.Time.Equal(t0) {
		t.Fatalf("first: %+v, %v", got, err)
	}
	got, err = s.ReadPacket(t.Context())
	if err != nil || got.Proto != service.TCP || got.Flags != packet.SYN || got.Iface != "eth1" || !got.Src.Is4() {
		t.Fatalf("second: %+v, %v", got, err)
	}
	if st := s.Stats(); st != (capture.Stats{Received: 2, Malformed: 1}) {
		t.Errorf("stats %+v", st)
	}
}

func TestBoundedQueueDrops(t *testing.T) {
	s := New(2)
	for i := range 4 {
		ok := s.Inject(udp(uint16(i), "x"))
		if ok != (i < 2) {
			t.Errorf("Inject %d = %v", i, ok)
		}
	}
	if st := s.Stats(); st.Dropped != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestPreviousPayloadIsPoisoned(t *testing.T) {
	s := New(0)
	s.Inject(udp(1, "secret"))
	s.Inject(udp(2, "ab"))
	first, _ := s.ReadPacket(t.Context())
	kept := first.Payload // a contract breach: not copied
	second, _ := s.ReadPacket(t.Context())
	if string(second.Payload) != "ab" {
		t.Fatalf("second payload %q", second.Payload)
	}
	for i, b := range kept[len(second.Payload):] {
		if b != Poison {
			t.Fatalf("byte %d of the retained payload is %q, want poison", i+len(second.Payload), b)
		}
	}
}

func TestReadPacketBlocksAndCancels(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New(0)
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() {
			_, err := s.ReadPacket(ctx)
			errc <- err
		}()
		synctest.Wait()
		select {
		case err := <-errc:
			t.Fatalf("ReadPacket returned %v on an empty queue", err)
		default:
		}
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("err %v, want context.Canceled", err)
		}

		go func() {
			p, err := s.ReadPacket(t.Context())
			if err != nil || p.SrcPort != 9 {
				t.Errorf("ReadPacket %+v, %v", p, err)
			}
			errc <- err
		}()
		synctest.Wait()
		s.Inject(udp(9, ""))
		<-errc
	})
}

func TestCloseContract(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New(0)
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
			t.Errorf("blocked ReadPacket: %v", err)
		}
		if s.Inject(udp(1, "")) {
			t.Error("Inject after Close accepted")
		}
		if _, err := s.ReadPacket(context.Background()); !errors.Is(err, capture.ErrClosed) {
			t.Errorf("ReadPacket after Close: %v", err)
		}
		if err := s.WaitIdle(context.Background()); !errors.Is(err, capture.ErrClosed) {
			t.Errorf("WaitIdle after Close: %v", err)
		}
	})
}

// TestWaitIdle drives a consumer the way the gateway engine would and checks
// that WaitIdle returns only after it finished the last injected packet.
func TestWaitIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New(0)
		var mu sync.Mutex
		var seen []uint16
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				p, err := s.ReadPacket(context.Background())
				if err != nil {
					return
				}
				time.Sleep(time.Second) // slow work (fake clock in the bubble)
				mu.Lock()
				seen = append(seen, p.SrcPort)
				mu.Unlock()
			}
		}()
		for i := range 5 {
			s.Inject(udp(uint16(i), ""))
		}
		if err := s.WaitIdle(t.Context()); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		if len(seen) != 5 {
			t.Errorf("WaitIdle returned after %d of 5 packets were handled", len(seen))
		}
		mu.Unlock()
		s.Close()
		<-done
	})
}

// TestConcurrentUse is for the race detector: injectors, one reader and
// Close together.
func TestConcurrentUse(t *testing.T) {
	s := New(16)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for i := range 500 {
				s.Inject(udp(uint16(i), "payload"))
			}
		})
	}
	wg.Go(func() {
		for {
			p, err := s.ReadPacket(t.Context())
			if err != nil {
				if !errors.Is(err, capture.ErrClosed) {
					t.Errorf("ReadPacket: %v", err)
				}
				return
			}
			if string(p.Payload) != "payload" {
				t.Errorf("payload %q", p.Payload)
			}
		}
	})
	wg.Go(func() { _ = s.Stats(); _ = s.Len() })
	time.Sleep(time.Millisecond)
	s.Close()
	wg.Wait()
	if st := s.Stats(); st.Received+st.Dropped > 1000 {
		t.Errorf("stats %+v", st)
	}
}

package capture_test

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/capture"
	"github.com/sesame-gw/sesame/internal/capture/capturetest"
	"github.com/sesame-gw/sesame/internal/packet"
	"github.com/sesame-gw/sesame/internal/service"
)

func pkt(port uint16, payload string) capture.Packet {
	return capture.Packet{Packet: packet.Packet{Src: netip.MustParseAddr("10.0.0.1"), Proto: service.UDP, DstPort: port, Payload: []byte(payload)}}
}

func TestMerge(t *testing.T) {
	a, b := capturetest.New(0), capturetest.New(0)
	m := capture.Merge(a, b)
	a.Inject(pkt(1, "a1"))
	a.Inject(pkt(2, "a2"))
	b.Inject(pkt(3, "b1"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := map[uint16]string{}
	var order []uint16
	for range 3 {
		p, err := m.ReadPacket(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got[p.DstPort] = string(p.Payload) // valid until the next read
		order = append(order, p.DstPort)
	}
	if got[1] != "a1" || got[2] != "a2" || got[3] != "b1" {
		t.Fatalf("payloads %v", got)
	}
	for i, p := range order {
		if p == 2 {
			for _, q := range order[i:] {
				if q == 1 {
					t.Fatalf("source a reordered: %v", order)
				}
			}
		}
	}
	if st := m.Stats(); st.Received != 3 {
		t.Fatalf("stats %+v", st)
	}
	short, c2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer c2()
	if _, err := m.ReadPacket(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("idle read = %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := m.ReadPacket(context.Background()); done <- err }()
	time.Sleep(10 * time.Millisecond)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, capture.ErrClosed) {
		t.Fatalf("read after close = %v", err)
	}
	m.Close() // idempotent
}

func TestMergeOneIsIdentity(t *testing.T) {
	a := capturetest.New(0)
	if capture.Merge(a) != capture.Source(a) {
		t.Fatal("Merge of one source wraps it")
	}
}

// The first source has priority: while it has packets ready, the second
// source's are not returned, even when they were ready first.
func TestMergePriority(t *testing.T) {
	fast, bulk := capturetest.New(0), capturetest.New(0)
	for i := range 50 {
		bulk.Inject(pkt(uint16(1000+i), "bulk"))
	}
	m := capture.Merge(fast, bulk)
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Let the bulk pump hand its first packet over before fast has any.
	if p, err := m.ReadPacket(ctx); err != nil || p.DstPort != 1000 {
		t.Fatalf("first read = %v, %v", p.DstPort, err)
	}
	const n = 200
	for i := range n {
		fast.Inject(pkt(uint16(i+1), "fast"))
	}
	// Whatever the bulk pump held (at most one packet) may come first;
	// after that, all of fast's packets, in order, before any more bulk,
	// except that one bulk packet may slip in before fast's last: while
	// fast's pump carries its last packet over, fast has none queued.
	next := uint16(1)
	first, last := 0, 0
	for next <= n {
		p, err := m.ReadPacket(ctx)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case p.DstPort == next:
			next++
		case p.DstPort >= 1000 && next == 1 && first == 0:
			first++
		case p.DstPort >= 1000 && next == n && last == 0:
			last++
		default:
			t.Fatalf("got port %d, want fast packet %d", p.DstPort, next)
		}
	}
	p, err := m.ReadPacket(ctx)
	if err != nil || p.DstPort < 1000 {
		t.Fatalf("after fast drained: %v, %v", p.DstPort, err)
	}
}

// fakePoller is a capture.Poller over a slice of packets; more can be
// added while it is read.
type fakePoller struct {
	mu     sync.Mutex
	q      []capture.Packet
	notify chan<- struct{}
	closed bool
}

func (f *fakePoller) add(p capture.Packet) {
	f.mu.Lock()
	f.q = append(f.q, p)
	ch := f.notify
	f.mu.Unlock()
	if ch != nil {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (f *fakePoller) TryReadPacket() (capture.Packet, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return capture.Packet{}, false, capture.ErrClosed
	}
	if len(f.q) == 0 {
		return capture.Packet{}, false, nil
	}
	p := f.q[0]
	f.q = f.q[1:]
	return p, true, nil
}

func (f *fakePoller) ReadPacket(context.Context) (capture.Packet, error) {
	panic("Merge of Pollers must not block in a source")
}
func (f *fakePoller) Notify(ch chan<- struct{}) { f.mu.Lock(); f.notify = ch; f.mu.Unlock() }
func (f *fakePoller) Stats() capture.Stats      { return capture.Stats{} }
func (f *fakePoller) Close() error              { f.mu.Lock(); f.closed = true; f.mu.Unlock(); return nil }

// Pollers are merged in strict priority order, and a packet added while the
// reader waits wakes it.
func TestMergePollers(t *testing.T) {
	fast, bulk := &fakePoller{}, &fakePoller{}
	m := capture.Merge(fast, bulk)
	for i := range 3 {
		bulk.add(pkt(uint16(100+i), "b"))
		fast.add(pkt(uint16(1+i), "f"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var got []uint16
	for range 6 {
		p, err := m.ReadPacket(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p.DstPort)
	}
	if want := []uint16{1, 2, 3, 100, 101, 102}; !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
	done := make(chan uint16, 1)
	go func() {
		p, err := m.ReadPacket(ctx)
		if err != nil {
			t.Error(err)
		}
		done <- p.DstPort
	}()
	bulk.add(pkt(7, "late"))
	if port := <-done; port != 7 {
		t.Fatalf("woken with port %d", port)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.ReadPacket(ctx); !errors.Is(err, capture.ErrClosed) {
		t.Fatalf("read after close = %v", err)
	}
}

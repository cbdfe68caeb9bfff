// Package capturetest provides an in-memory capture.Source, so code that
// reads packets (the gateway engine) runs in-process in tests, in the manner
// of wireguard-go's tun/tuntest.
package capturetest

import (
	"context"
	"sync"
	"time"

	"github.com/sesame-gw/sesame/internal/capture"
	"github.com/sesame-gw/sesame/internal/packet"
)

// DefaultLimit is the queue bound of New(0).
const DefaultLimit = 1024

// Poison is written over the payload of the previous ReadPacket before the
// next one returns, so a reader that keeps a Payload without copying it (a
// breach of the capture.Source contract) sees garbage in tests instead of
// data that happens to still be there.
const Poison = 0xEE

// Source is a capture.Source fed by Inject. It honours the whole contract:
// ReadPacket blocks until a packet, ctx or Close; the queue is bounded and
// overflow is counted as Dropped; Payload aliases a buffer reused (and
// poisoned) by the next ReadPacket; Close is idempotent and safe
// concurrently with everything. All methods are safe for concurrent use
// (ReadPacket for one reader at a time, as the contract says).
type Source struct {
	mu      sync.Mutex
	queue   []capture.Packet
	limit   int
	stats   capture.Stats
	waiting bool          // a reader is blocked in ReadPacket on an empty queue
	wake    chan struct{} // capacity 1: a packet was injected
	changed chan struct{} // closed and replaced on every state change (WaitIdle)
	done    chan struct{} // closed by Close
	closed  bool
	buf     []byte // the payload the last ReadPacket returned
}

var _ capture.Source = (*Source)(nil)

// New returns an open Source that queues at most limit packets (limit <= 0
// means DefaultLimit).
func New(limit int) *Source {
	if limit <= 0 {
		limit = DefaultLimit
	}
	return &Source{
		limit:   limit,
		wake:    make(chan struct{}, 1),
		changed: make(chan struct{}),
		done:    make(chan struct{}),
	}
}

// Inject queues p for ReadPacket, copying its payload (the caller may reuse
// its buffer). It reports false when the source is closed, or when the queue
// is full, which is then counted in Stats.Dropped as a real source would.
func (s *Source) Inject(p capture.Packet) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if len(s.queue) >= s.limit {
		s.stats.Dropped++
		return false
	}
	p.Payload = append([]byte(nil), p.Payload...)
	s.queue = append(s.queue, p)
	s.notifyLocked()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return true
}

// InjectL3 parses an IP packet (from packet.Build and friends, or raw
// bytes) the way a real source does and injects it with the given time and
// interface. A packet that does not parse is counted in Stats.Malformed and
// reported false, like a full queue or a closed source.
func (s *Source) InjectL3(l3 []byte, t time.Time, iface string) bool {
	p, err := packet.Parse(l3)
	if err != nil {
		s.mu.Lock()
		s.stats.Malformed++
		s.mu.Unlock()
		return false
	}
	return s.Inject(capture.Packet{Packet: p, Time: t, Iface: iface})
}

// ReadPacket returns the oldest injected packet, blocking until there is
// one, ctx is done (ctx.Err()) or the source is closed (capture.ErrClosed;
// closing wins over queued packets).
func (s *Source) ReadPacket(ctx context.Context) (capture.Packet, error) {
	s.mu.Lock()
	for i := range s.buf {
		s.buf[i] = Poison
	}
	for {
		if s.closed {
			s.mu.Unlock()
			return capture.Packet{}, capture.ErrClosed
		}
		if len(s.queue) > 0 {
			p := s.queue[0]
			s.queue[0] = capture.Packet{}
			s.queue = s.queue[1:]
			s.buf = append(s.buf[:0], p.Payload...)
			p.Payload = s.buf[:len(s.buf):len(s.buf)]
			s.stats.Received++
			s.waiting = false
			s.notifyLocked()
			s.mu.Unlock()
			return p, nil
		}
		s.waiting = true
		s.notifyLocked()
		s.mu.Unlock()
		select {
		case <-s.wake:
		case <-ctx.Done():
			s.mu.Lock()
			s.waiting = false
			s.notifyLocked()
			s.mu.Unlock()
			return capture.Packet{}, ctx.Err()
		case <-s.done:
		}
		s.mu.Lock()
	}
}

// WaitIdle returns once every injected packet has been read and the reader
// is blocked in ReadPacket again — that is, it has finished with the last
// packet — or with ctx.Err() or capture.ErrClosed. Tests use it to assert
// the effects of injected packets without sleeping.
func (s *Source) WaitIdle(ctx context.Context) error {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return capture.ErrClosed
		}
		if len(s.queue) == 0 && s.waiting {
			s.mu.Unlock()
			return nil
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
		}
	}
}

// Len is the number of packets queued and not yet read.
func (s *Source) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// Stats returns the counters.
func (s *Source) Stats() capture.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Close makes pending and later ReadPacket calls return capture.ErrClosed
// and later Injects report false. It always returns nil.
func (s *Source) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.done)
		s.notifyLocked()
	}
	return nil
}

func (s *Source) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

package nflog

import (
	"sync/atomic"

	"github.com/sesame-gw/sesame/internal/capture"
)

// maxKeptPayload bounds the payload buffer a slot keeps between packets: a
// rare jumbo (reassembled) datagram gets a buffer of its own that is dropped
// after use instead of pinning 64 KiB in every slot.
const maxKeptPayload = 4096

// slot holds one packet between the NFLOG hook and ReadPacket, with the
// buffer its Payload points into.
type slot struct {
	pkt capture.Packet
	buf []byte
}

// queue hands packets from the hook goroutine (one producer) to ReadPacket
// (one consumer at a time) without allocating and without ever blocking the
// producer. Slot indices circulate between two channels of capacity
// len(slots): free (owned by nobody, ready to fill) and ready (filled,
// waiting for the reader). The reader keeps the slot of the packet it got
// until it calls release (at its next read), which is what makes the
// aliasing contract of capture.Source hold: the producer cannot refill that
// slot meanwhile.
type queue struct {
	slots []slot
	free  chan int32
	ready chan int32
	cur   int32 // slot held by the reader, or -1; reader side only

	received, malformed, dropped atomic.Uint64
}

func newQueue(n int) *queue {
	q := &queue{
		slots: make([]slot, n),
		free:  make(chan int32, n),
		ready: make(chan int32, n),
		cur:   -1,
	}
	for i := range n {
		q.free <- int32(i)
	}
	return q
}

// put copies p (and its payload) into a free slot and publishes it. It
// reports false, counting a drop, when every slot is in use. Producer side
// only; never blocks.
func (q *queue) put(p capture.Packet) bool {
	var i int32
	select {
	case i = <-q.free:
	default:
		q.dropped.Add(1)
		return false
	}
	s := &q.slots[i]
	s.buf = append(s.buf[:0], p.Payload...)
	p.Payload = s.buf[:len(p.Payload):len(p.Payload)]
	s.pkt = p
	q.ready <- i // cannot block: at most len(slots) indices exist
	return true
}

// got accepts index i received from ready: the reader now holds slot i.
// Consumer side only.
func (q *queue) got(i int32) capture.Packet {
	q.cur = i
	q.received.Add(1)
	return q.slots[i].pkt
}

// release returns the reader's current slot to the free list.
func (q *queue) release() {
	if q.cur < 0 {
		return
	}
	s := &q.slots[q.cur]
	s.pkt = capture.Packet{}
	if cap(s.buf) > maxKeptPayload {
		s.buf = nil
	}
	q.free <- q.cur // cannot block, as in put
	q.cur = -1
}

func (q *queue) stats() capture.Stats {
	return capture.Stats{
		Received:  q.received.Load(),
		Malformed: q.malformed.Load(),
		Dropped:   q.dropped.Load(),
	}
}

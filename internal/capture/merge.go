package capture

import (
	"context"
	"errors"
	"sync"
)

// Backlogger is implemented by sources that can tell how many packets they
// hold ready for ReadPacket (nflog.Source, capturetest.Source). Merge uses
// it to keep its priority order while a source's reader is between two
// packets.
type Backlogger interface {
	Len() int
}

// Poller is a Source that can be read without blocking and says when it
// may have packets (nflog.Source). Merge reads sources that are all
// Pollers from the caller's goroutine, without a goroutine and two
// hand-overs per packet.
type Poller interface {
	Source
	// TryReadPacket is ReadPacket without waiting: ok is false when no
	// packet is ready (err nil), or with ReadPacket's error. A returned
	// payload stays valid until the next TryReadPacket or ReadPacket.
	TryReadPacket() (p Packet, ok bool, err error)
	// Notify makes the source do a non-blocking send on ch after each
	// packet it makes ready, and when it fails.
	Notify(ch chan<- struct{})
}

// Merge returns a Source that delivers the packets of all srcs, in
// priority order: srcs[0] first. ReadPacket returns a packet of a later
// source only when every earlier source has none ready (nothing handed
// over, and Len() == 0 for a Backlogger). Each source's own packets keep
// their order.
//
// The priority is what keeps a client's packets in order across the two
// NFLOG groups (docs/firewall.md): an earlier knock logged one at a time
// (srcs[0]) is read before a later one that went to the batched group
// (srcs[1]), even when the daemon has fallen behind, because the batched
// group is read only when the immediate one is empty. The kernel keeps the
// other order (a source that went to the batched group stays there).
//
// It honours the Source contract. Pollers are read from the caller's
// goroutine. Otherwise each underlying source is read by its own goroutine, which hands one packet over and waits until the caller
// asks for the next before reading again, so payloads stay valid until the
// next ReadPacket without copying. Closing the merged source closes every
// source. The first error of any source (other than ErrClosed after Close)
// is returned by ReadPacket.
func Merge(srcs ...Source) Source {
	if len(srcs) == 1 {
		return srcs[0]
	}
	if ps, ok := pollers(srcs); ok {
		m := &polled{srcs: ps, wake: make(chan struct{}, 1), done: make(chan struct{})}
		for _, p := range ps {
			p.Notify(m.wake)
		}
		return m
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &merged{
		srcs:    srcs,
		slots:   make([]slot, len(srcs)),
		wake:    make(chan struct{}, 1),
		cancel:  cancel,
		done:    make(chan struct{}),
		pending: -1,
	}
	for i, s := range srcs {
		m.slots[i].ack = make(chan struct{})
		m.wg.Add(1)
		go m.pump(ctx, i, s)
	}
	return m
}

// slot is one source's hand-over place: at most one packet (or error).
type slot struct {
	full bool // p/err are set; guarded by merged.mu
	p    Packet
	err  error
	ack  chan struct{} // the caller is done with p: read the next
}

type merged struct {
	srcs   []Source
	slots  []slot
	mu     sync.Mutex    // guards slots[*].full, p, err
	wake   chan struct{} // capacity 1: a slot was filled
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	done   chan struct{}

	rmu     sync.Mutex // serializes ReadPacket (one reader at a time)
	pending int        // source whose packet the caller holds, -1 none
}

func (m *merged) pump(ctx context.Context, i int, s Source) {
	defer m.wg.Done()
	sl := &m.slots[i]
	for {
		p, err := s.ReadPacket(ctx)
		m.mu.Lock()
		sl.full, sl.p, sl.err = true, p, err
		m.mu.Unlock()
		select {
		case m.wake <- struct{}{}:
		default: // a wake-up is already pending
		}
		if err != nil {
			return
		}
		select {
		case <-sl.ack:
		case <-ctx.Done():
			return
		}
	}
}

// next takes the packet of the first source, in priority order, that has
// one, unless an earlier source has packets ready that its pump has not
// handed over yet (then it waits for them). ok is false when there is
// nothing to take now.
func (m *merged) next() (i int, p Packet, err error, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.slots {
		sl := &m.slots[i]
		if sl.full {
			sl.full = false
			p, err = sl.p, sl.err
			sl.p, sl.err = Packet{}, nil
			return i, p, err, true
		}
		if b, isB := m.srcs[i].(Backlogger); isB && b.Len() > 0 {
			return 0, Packet{}, nil, false // its pump is about to hand one over
		}
	}
	return 0, Packet{}, nil, false
}

func (m *merged) ReadPacket(ctx context.Context) (Packet, error) {
	m.rmu.Lock()
	defer m.rmu.Unlock()
	if m.pending >= 0 {
		select {
		case m.slots[m.pending].ack <- struct{}{}:
		case <-m.done:
		}
		m.pending = -1
	}
	for {
		select {
		case <-m.done:
			return Packet{}, ErrClosed
		default:
		}
		if i, p, err, ok := m.next(); ok {
			if err != nil {
				if errors.Is(err, context.Canceled) {
					return Packet{}, ErrClosed
				}
				return Packet{}, err
			}
			m.pending = i
			return p, nil
		}
		select {
		case <-m.wake:
		case <-ctx.Done():
			return Packet{}, ctx.Err()
		case <-m.done:
			return Packet{}, ErrClosed
		}
	}
}

func (m *merged) Stats() Stats { return sumStats(m.srcs) }

// sumStats adds up the counters of srcs.
func sumStats[S Source](srcs []S) Stats {
	var st Stats
	for _, s := range srcs {
		x := s.Stats()
		st.Received += x.Received
		st.Malformed += x.Malformed
		st.Dropped += x.Dropped
	}
	return st
}

func (m *merged) Close() error {
	var errs []error
	m.once.Do(func() {
		close(m.done)
		m.cancel()
		for _, s := range m.srcs {
			errs = append(errs, s.Close())
		}
		m.wg.Wait()
	})
	return errors.Join(errs...)
}

func pollers(srcs []Source) ([]Poller, bool) {
	ps := make([]Poller, len(srcs))
	for i, s := range srcs {
		p, ok := s.(Poller)
		if !ok {
			return nil, false
		}
		ps[i] = p
	}
	return ps, true
}

// polled is Merge over Pollers: ReadPacket tries each source in priority
// order and sleeps on the shared wake-up channel when none has a packet.
// A packet made ready after a source was tried leaves a wake-up in the
// channel (capacity 1), so none is missed.
type polled struct {
	srcs []Poller
	wake chan struct{}
	mu   sync.Mutex // serializes ReadPacket (one reader at a time)
	once sync.Once
	done chan struct{}
}

func (m *polled) ReadPacket(ctx context.Context) (Packet, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for {
		select {
		case <-m.done:
			return Packet{}, ErrClosed
		default:
		}
		for _, s := range m.srcs {
			p, ok, err := s.TryReadPacket()
			if err != nil {
				return Packet{}, err
			}
			if ok {
				return p, nil
			}
		}
		select {
		case <-m.wake:
		case <-ctx.Done():
			return Packet{}, ctx.Err()
		case <-m.done:
			return Packet{}, ErrClosed
		}
	}
}

func (m *polled) Stats() Stats { return sumStats(m.srcs) }

func (m *polled) Close() error {
	var errs []error
	m.once.Do(func() {
		close(m.done)
		for _, s := range m.srcs {
			errs = append(errs, s.Close())
		}
	})
	return errors.Join(errs...)
}

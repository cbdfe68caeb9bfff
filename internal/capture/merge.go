package capture

import (
	"context"
	"errors"
	"sync"
)

// Merge returns a Source that delivers the packets of all srcs (for
// example the one-at-a-time and the bulk NFLOG groups) in arrival order per
// source. It honours the Source contract: each underlying source is read
// by its own goroutine, which hands one packet over and waits until the
// caller asks for the next before reading again, so payloads stay valid
// until the next ReadPacket without copying. Closing the merged source
// closes every source. The first error of any source (other than
// ErrClosed after Close) is returned by ReadPacket.
func Merge(srcs ...Source) Source {
	if len(srcs) == 1 {
		return srcs[0]
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &merged{srcs: srcs, out: make(chan item), cancel: cancel, done: make(chan struct{})}
	for i, s := range srcs {
		ack := make(chan struct{})
		m.acks = append(m.acks, ack)
		m.wg.Add(1)
		go m.pump(ctx, i, s, ack)
	}
	return m
}

type item struct {
	p   Packet
	err error
	src int
}

type merged struct {
	srcs   []Source
	acks   []chan struct{}
	out    chan item
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	done   chan struct{}

	mu      sync.Mutex // serializes ReadPacket (one reader at a time)
	pending int        // source whose packet the caller holds, -1 none
	held    bool
}

func (m *merged) pump(ctx context.Context, i int, s Source, ack chan struct{}) {
	defer m.wg.Done()
	for {
		p, err := s.ReadPacket(ctx)
		select {
		case m.out <- item{p: p, err: err, src: i}:
		case <-ctx.Done():
			return
		}
		if err != nil {
			return
		}
		select {
		case <-ack:
		case <-ctx.Done():
			return
		}
	}
}

func (m *merged) ReadPacket(ctx context.Context) (Packet, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.held {
		m.held = false
		select {
		case m.acks[m.pending] <- struct{}{}:
		case <-m.done:
		}
	}
	select {
	case it := <-m.out:
		if it.err != nil {
			if errors.Is(it.err, context.Canceled) {
				return Packet{}, ErrClosed
			}
			return Packet{}, it.err
		}
		m.pending, m.held = it.src, true
		return it.p, nil
	case <-ctx.Done():
		return Packet{}, ctx.Err()
	case <-m.done:
		return Packet{}, ErrClosed
	}
}

func (m *merged) Stats() Stats {
	var st Stats
	for _, s := range m.srcs {
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

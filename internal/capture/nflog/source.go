// Package nflog is the default capture.Source: packets that Sesame's own
// nftables rules send to an NFLOG group ("log group N ... drop") and the
// kernel then drops, read over netfilter netlink with
// github.com/florianl/go-nflog/v2 (NFULNL, linux/netfilter/nfnetlink_log.h).
//
// Settings that matter (measured on this project's bench): a queue
// threshold of 1 (the kernel default batches for up to 1 s), a receive
// buffer of MiBs (the default holds ≈256 knocks), and a receive loop that
// survives ENOBUFS (go-nflog's deprecated Register stops silently on it).
// Packets lost to a full socket buffer (the kernel's exact count) or a full
// hand-off queue are counted in Stats.Dropped; the hook never blocks.
//
// Interface names are looked up in the caller's network namespace: run the
// daemon inside the namespace it guards (as `ip netns exec` does), or leave
// Iface empty by setting Config.NetNS.
package nflog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	nflog "github.com/florianl/go-nflog/v2"

	"github.com/sesame-gw/sesame/internal/capture"
	"github.com/sesame-gw/sesame/internal/packet"
)

// ErrGroupBusy is wrapped by Open when another socket in the same network
// namespace already holds the NFLOG group (the kernel answers the bind with
// EPERM): another Sesame, ulogd2, or a stale process.
var ErrGroupBusy = errors.New("nflog: group already bound by another socket")

// Source is a capture.Source over one NFLOG group. Create it with Open.
//
// ReadPacket follows the capture.Source contract, with one addition: if the
// receive loop stops on a socket error other than ENOBUFS (the socket is
// unusable), ReadPacket returns the packets still queued and then that
// error, wrapped, on every call; the caller should treat it as fatal. All
// methods are safe to call concurrently with Close; ReadPacket is for one
// goroutine at a time.
type Source struct {
	cfg   Config
	log   *slog.Logger
	q     *queue
	names *ifNames // nil when names are not resolved

	done      chan struct{} // closed by Close
	closeOnce sync.Once
	closeErr  error
	stop      func() error // ends the receive loop and closes the socket

	failed   chan struct{} // closed when the receive loop stops on an error
	failOnce sync.Once
	failErr  error // written before failed is closed

	overflows atomic.Uint64 // ENOBUFS events

	// sockDrops reads the kernel's count of messages dropped on the socket
	// (SO_MEMINFO); nil when unavailable, and then each ENOBUFS counts one.
	sockDrops     func() (uint64, error)
	lastSockDrops atomic.Uint64 // highest value sockDrops returned

	notify atomic.Pointer[chan<- struct{}] // see Notify
}

var _ capture.Poller = (*Source)(nil)

func newSource(cfg Config) *Source {
	s := &Source{
		cfg:    cfg,
		log:    cfg.Logger.With("capture", "nflog", "group", cfg.Group),
		q:      newQueue(cfg.QueueLen),
		done:   make(chan struct{}),
		failed: make(chan struct{}),
	}
	if cfg.NetNS == 0 {
		s.names = newIfNames()
	}
	return s
}

// ReadPacket returns the next packet; see capture.Source and Source. The
// Payload stays valid until the next ReadPacket call.
func (s *Source) ReadPacket(ctx context.Context) (capture.Packet, error) {
	s.q.release()
	select {
	case <-s.done:
		return capture.Packet{}, capture.ErrClosed
	default:
	}
	select {
	case i := <-s.q.ready:
		return s.q.got(i), nil
	case <-ctx.Done():
		return capture.Packet{}, ctx.Err()
	case <-s.done:
		return capture.Packet{}, capture.ErrClosed
	case <-s.failed:
		select {
		case i := <-s.q.ready: // drain what arrived before the failure
			return s.q.got(i), nil
		default:
		}
		return capture.Packet{}, fmt.Errorf("nflog: group %d: receive loop stopped: %w", s.cfg.Group, s.failErr)
	}
}

// Len returns how many packets wait for ReadPacket in the hand-off queue
// (capture.Backlogger: capture.Merge reads this group first while it has
// some).
func (s *Source) Len() int { return len(s.q.ready) }

// Stats returns the counters. Dropped counts packets the hand-off queue had
// no room for plus the messages the kernel dropped because the socket's
// receive buffer was full (its SO_MEMINFO drop count, exact); where that
// count is unavailable, one per ENOBUFS error instead (a lower bound).
// Stats makes one getsockopt call.
func (s *Source) Stats() capture.Stats {
	st := s.q.stats()
	st.Dropped += s.socketDrops()
	return st
}

// socketDrops returns the kernel's drop count, remembering the highest value
// read so that it stays available after Close.
func (s *Source) socketDrops() uint64 {
	if s.sockDrops == nil {
		return 0
	}
	if d, err := s.sockDrops(); err == nil {
		for {
			old := s.lastSockDrops.Load()
			if d <= old || s.lastSockDrops.CompareAndSwap(old, d) {
				break
			}
		}
	}
	return s.lastSockDrops.Load()
}

// Close stops the receive loop and closes the socket (the kernel unbinds
// the group with it). Pending and later ReadPacket calls return
// capture.ErrClosed. Safe to call concurrently and more than once; later
// calls return nil.
func (s *Source) Close() error {
	first := false
	s.closeOnce.Do(func() {
		first = true
		close(s.done)
		s.socketDrops() // last read while the socket is open
		if s.stop != nil {
			s.closeErr = s.stop()
		}
		st := s.Stats()
		s.log.Info("nflog source closed", "received", st.Received,
			"malformed", st.Malformed, "dropped", st.Dropped, "overflows", s.overflows.Load())
	})
	if first {
		return s.closeErr
	}
	return nil
}

// hook is go-nflog's HookFunc: parse, copy into a free slot, publish. It
// never blocks, never logs per packet, and always returns 0 (a non-zero
// return would stop the receive loop).
func (s *Source) hook(a nflog.Attribute) int {
	if a.Payload == nil {
		s.q.malformed.Add(1)
		return 0
	}
	var t time.Time
	if a.Timestamp != nil {
		t = *a.Timestamp
	}
	var dev uint32
	if a.InDev != nil {
		dev = *a.InDev
	}
	s.deliver(*a.Payload, t, dev, a.InDev != nil)
	return 0
}

// deliver parses one logged packet (the L3 payload of an NFLOG message) and
// hands it to the reader; t is the kernel's timestamp (zero when none),
// inDev the input interface index when hasDev. It never blocks.
func (s *Source) deliver(payload []byte, t time.Time, inDev uint32, hasDev bool) {
	p, err := packet.Parse(payload)
	if err != nil {
		s.q.malformed.Add(1)
		return
	}
	if t.IsZero() {
		t = s.cfg.Now()
	}
	var iface string
	if s.names != nil && hasDev {
		iface = s.names.name(inDev, t)
	}
	if s.q.put(capture.Packet{Packet: p, Time: t, Iface: iface}) {
		s.wakeReader()
	}
}

// Notify implements capture.Poller: after each packet queued for reading,
// and when the receive loop fails, a non-blocking send on ch.
func (s *Source) Notify(ch chan<- struct{}) { s.notify.Store(&ch) }

func (s *Source) wakeReader() {
	if ch := s.notify.Load(); ch != nil {
		select {
		case *ch <- struct{}{}:
		default:
		}
	}
}

// TryReadPacket implements capture.Poller: ReadPacket without waiting. ok
// is false when no packet is queued (err nil), and after Close or a
// receive failure (err as ReadPacket's, once the queue is drained).
func (s *Source) TryReadPacket() (p capture.Packet, ok bool, err error) {
	s.q.release()
	select {
	case <-s.done:
		return capture.Packet{}, false, capture.ErrClosed
	default:
	}
	select {
	case i := <-s.q.ready:
		return s.q.got(i), true, nil
	default:
	}
	select {
	case <-s.failed:
		return capture.Packet{}, false, fmt.Errorf("nflog: group %d: receive loop stopped: %w", s.cfg.Group, s.failErr)
	default:
	}
	return capture.Packet{}, false, nil
}

// fail records the error that stopped the receive loop and wakes readers.
func (s *Source) fail(err error) {
	s.failOnce.Do(func() {
		s.failErr = err
		close(s.failed)
		s.wakeReader()
		s.log.Error("nflog receive loop stopped; no more packets will arrive", "err", err)
	})
}

// overflow handles a receive-buffer overflow (ENOBUFS): the kernel dropped
// one or more messages. Without an exact kernel count it counts one drop.
// The first overflow is logged as a warning, later ones every 1024th.
func (s *Source) overflow() {
	if s.sockDrops == nil {
		s.q.dropped.Add(1)
	}
	if n := s.overflows.Add(1); n == 1 || n%1024 == 0 {
		s.log.Warn("nflog receive buffer overflowed; packets were dropped (raise ReadBuffer, or the daemon is too slow)",
			"overflows", n, "kernel_drops", s.socketDrops(), "read_buffer", s.cfg.ReadBuffer)
	}
}

// nflogLogger routes go-nflog's internal messages to slog at debug level.
// Its Errorf is used for expected events in Sesame's use (the loop ending on
// Close, the unbind after the socket is closed), so nothing is louder than
// debug; real receive errors reach Source through the error func instead.
type nflogLogger struct{ l *slog.Logger }

func (n nflogLogger) Debugf(format string, args ...any) { n.logf(format, args...) }
func (n nflogLogger) Errorf(format string, args ...any) { n.logf(format, args...) }

func (n nflogLogger) logf(format string, args ...any) {
	if !n.l.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	n.l.Debug("go-nflog: " + strings.TrimSpace(fmt.Sprintf(format, args...)))
}

//go:build linux

package afpacket

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/socket"
	"golang.org/x/sys/unix"

	"github.com/sesame-gw/sesame/internal/capture"
	"github.com/sesame-gw/sesame/internal/packet"
)

// Config configures Open.
type Config struct {
	// Interfaces are the interface names to watch; empty means every
	// interface except loopback.
	Interfaces []string
	// Filter selects the packets the kernel delivers.
	Filter Filter
	// ReadBuffer is the socket receive buffer in bytes; default 4 MiB.
	ReadBuffer int
	// Logger gets a warning for each named interface missing at Open; nil
	// discards.
	Logger *slog.Logger
	// Now is the clock for packet times; nil means time.Now.
	Now func() time.Time
}

// Source reads packets from an AF_PACKET socket. Create it with Open.
// ReadPacket must be called from one goroutine at a time; Stats, SetFilter
// and Close are safe for concurrent use.
type Source struct {
	conn    *socket.Conn
	want    map[string]bool
	now     func() time.Time
	buf     []byte
	names   map[int]string // ifindex → name cache, owned by the reader
	dedup   dedup
	closed  atomic.Bool
	mu      sync.Mutex // guards drops and the socket's statistics reads
	drops   uint64
	recv    atomic.Uint64
	invalid atomic.Uint64
}

// Open creates the socket (root or CAP_NET_RAW), attaches the filter before
// binding so that no unfiltered packet is ever queued, and binds to every
// interface.
func Open(cfg Config) (*Source, error) {
	prog, err := cfg.Filter.Program()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Protocol 0 until bind: nothing is captured before the filter is on.
	conn, err := socket.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, 0, "afpacket", nil)
	if err != nil {
		return nil, fmt.Errorf("afpacket: socket: %w", err)
	}
	want := map[string]bool{}
	for _, name := range cfg.Interfaces {
		want[name] = true
		if _, err := ifindex(conn, name); err != nil {
			log.Warn("interface not present yet; watching for it", "iface", name, "err", err)
		}
	}
	if err := conn.SetBPF(prog); err != nil {
		conn.Close()
		return nil, fmt.Errorf("afpacket: attach filter: %w", err)
	}
	rb := cfg.ReadBuffer
	if rb <= 0 {
		rb = 4 << 20
	}
	if err := conn.SetsockoptInt(unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rb); err != nil {
		_ = conn.SetReadBuffer(rb) // without CAP_NET_ADMIN: up to rmem_max
	}
	if err := conn.Bind(&unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: 0}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("afpacket: bind: %w", err)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Source{conn: conn, want: want, now: now, buf: make([]byte, snapLen), names: map[int]string{}}, nil
}

// SetFilter replaces the kernel filter (knockd mode after a one-time
// sequence was used, or a reload).
func (s *Source) SetFilter(f Filter) error {
	prog, err := f.Program()
	if err != nil {
		return err
	}
	if err := s.conn.SetBPF(prog); err != nil {
		return fmt.Errorf("afpacket: replace filter: %w", err)
	}
	return nil
}

// ReadPacket implements capture.Source.
func (s *Source) ReadPacket(ctx context.Context) (capture.Packet, error) {
	for {
		n, sa, err := s.conn.Recvfrom(ctx, s.buf, 0)
		if err != nil {
			if ctx.Err() != nil {
				return capture.Packet{}, ctx.Err()
			}
			if s.closed.Load() || errors.Is(err, net.ErrClosed) {
				return capture.Packet{}, capture.ErrClosed
			}
			if errors.Is(err, unix.EINTR) || errors.Is(err, unix.ENETDOWN) || errors.Is(err, unix.EAGAIN) {
				continue // an interface went down: keep watching the others
			}
			return capture.Packet{}, fmt.Errorf("afpacket: recvfrom: %w", err)
		}
		ll, ok := sa.(*unix.SockaddrLinklayer)
		if !ok || ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		name := s.ifname(ll.Ifindex)
		if len(s.want) > 0 {
			if !s.want[name] {
				continue
			}
		} else if ll.Hatype == unix.ARPHRD_LOOPBACK {
			continue
		}
		data, ok := network(s.buf[:n], ntohs(ll.Protocol))
		if !ok {
			s.invalid.Add(1)
			continue
		}
		at := s.now()
		if s.dedup.seen(data, at) {
			continue
		}
		p, err := packet.Parse(data)
		if err != nil {
			s.invalid.Add(1)
			continue
		}
		s.recv.Add(1)
		return capture.Packet{Packet: p, Time: at, Iface: name}, nil
	}
}

// ifname resolves an interface index, caching the answer; an index that
// does not resolve is looked up again next time. The lookup is an ioctl on
// the capture socket itself, so it answers for the socket's network
// namespace whatever thread runs it.
func (s *Source) ifname(idx int) string {
	if name, ok := s.names[idx]; ok {
		return name
	}
	var name string
	err := s.control(func(fd int) error {
		ifr, err := unix.NewIfreq("")
		if err != nil {
			return err
		}
		ifr.SetUint32(uint32(idx))
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFNAME, ifr); err != nil {
			return err
		}
		name = ifr.Name()
		return nil
	})
	if err != nil {
		return ""
	}
	if len(s.names) > 4096 {
		clear(s.names)
	}
	s.names[idx] = name
	return name
}

func (s *Source) control(fn func(fd int) error) error { return control(s.conn, fn) }

func control(c *socket.Conn, fn func(fd int) error) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// ifindex resolves an interface name in the socket's namespace.
func ifindex(c *socket.Conn, name string) (int, error) {
	var idx int
	err := control(c, func(fd int) error {
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return err
		}
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
			return err
		}
		idx = int(ifr.Uint32())
		return nil
	})
	return idx, err
}

// Stats implements capture.Source. Dropped counts the packets the kernel
// discarded because the socket buffer was full.
func (s *Source) Stats() capture.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed.Load() {
		// The kernel resets its counters on each read: accumulate.
		if st, err := s.conn.GetsockoptTpacketStats(unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
			s.drops += uint64(st.Drops)
		}
	}
	return capture.Stats{Received: s.recv.Load(), Malformed: s.invalid.Load(), Dropped: s.drops}
}

// Close implements capture.Source.
func (s *Source) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	return s.conn.Close()
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
func ntohs(v uint16) uint16 { return htons(v) }

var _ capture.Source = (*Source)(nil)

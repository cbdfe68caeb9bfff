//go:build linux

package nftables

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	nft "github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/sesame-gw/sesame/internal/firewall"
)

// Sentinel errors callers can branch on (with errors.Is).
var (
	// ErrNotSetUp is wrapped when a Grant or Revoke finds
	// no table or set: Setup has not run, or Teardown has.
	ErrNotSetUp = errors.New("nftables: table not set up")
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("nftables: firewall closed")
	// ErrInvalid is wrapped when an argument is rejected before anything
	// is sent (invalid address or service, TTL <= 0, bad layout).
	ErrInvalid = errors.New("nftables: invalid argument")
)

var _ firewall.Firewall = (*Firewall)(nil)

// Firewall implements firewall.Firewall on one inet table through netlink
// (google/nftables, no nft binary).
//
// It keeps one lasting netlink socket. The library's Conn queues messages
// from every goroutine until the next Flush, so every method holds a mutex
// from the first queued message to the Flush: the methods are safe for
// concurrent use and each call is one transaction (or a read). Methods do not
// stop once a transaction is sent: ctx is only checked before.
type Firewall struct {
	mu     sync.Mutex
	conn   *nft.Conn
	table  *nft.Table
	log    *slog.Logger
	prio   int32
	chunk  int
	closed bool
	copts  []nft.ConnOption // to reopen conn after a failed batch build
	sock   *sockRef         // the current netlink socket, for deadlines
	tmo    time.Duration
}

// sockRef is filled by the socket option each time the library dials.
type sockRef struct{ c *netlink.Conn }

// New opens a lasting netlink socket. It does not touch the ruleset: call
// Setup for that.
func New(opts ...Option) (*Firewall, error) {
	c := config{table: DefaultTable, priority: DefaultPriority, chunk: DefaultChunk,
		sndbuf: DefaultSendBuffer, rcvbuf: DefaultReceiveBuffer, timeout: DefaultTimeout}
	for _, o := range opts {
		o(&c)
	}
	if c.table == "" || len(c.table) > 255 {
		return nil, fmt.Errorf("%w: table name %q", ErrInvalid, c.table)
	}
	if c.chunk < 1 || c.chunk > MaxChunk {
		return nil, fmt.Errorf("%w: chunk size %d (want 1..%d)", ErrInvalid, c.chunk, MaxChunk)
	}
	if c.timeout <= 0 {
		return nil, fmt.Errorf("%w: timeout %v", ErrInvalid, c.timeout)
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	sock := &sockRef{}
	copts := []nft.ConnOption{nft.AsLasting()}
	if c.netns != 0 {
		copts = append(copts, nft.WithNetNSFd(c.netns))
	}
	if c.dial != nil {
		copts = append(copts, nft.WithTestDial(c.dial))
	} else {
		copts = append(copts, nft.WithSockOptions(sockSetup(sock, c.sndbuf, c.rcvbuf, c.log)))
	}
	conn, err := nft.New(copts...)
	if err != nil {
		return nil, fmt.Errorf("nftables: open netlink socket: %w", err)
	}
	return &Firewall{
		conn:  conn,
		table: &nft.Table{Name: c.table, Family: nft.TableFamilyINet},
		log:   c.log,
		prio:  c.priority,
		chunk: c.chunk,
		copts: copts,
		sock:  sock,
		tmo:   c.timeout,
	}, nil
}

// sockSetup raises the buffers (a transaction is one sendmsg; the kernel
// queues one ack per message, each charged a full skb against the receive
// buffer, before we read any), asks for extended acks so that kernel error
// strings reach the errors, and records the socket for deadlines.
func sockSetup(ref *sockRef, sndbuf, rcvbuf int, log *slog.Logger) nft.SockOption {
	return func(c *netlink.Conn) error {
		ref.c = c
		if err := c.SetOption(netlink.ExtendedAcknowledge, true); err != nil {
			log.Debug("nftables: extended acks unavailable", "err", err)
		}
		setBuf(c, unix.SO_SNDBUFFORCE, sndbuf, c.SetWriteBuffer, log)
		setBuf(c, unix.SO_RCVBUFFORCE, rcvbuf, c.SetReadBuffer, log)
		return nil
	}
}

// setBuf sets a socket buffer with the *FORCE option (needs CAP_NET_ADMIN),
// falling back to the plain one, capped by net.core.[rw]mem_max.
func setBuf(c *netlink.Conn, force, n int, plain func(int) error, log *slog.Logger) {
	if n <= 0 {
		return
	}
	forced := false
	if rc, err := c.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			forced = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, force, n) == nil
		})
	}
	if !forced {
		if err := plain(n); err != nil {
			log.Warn("nftables: cannot raise netlink socket buffer; large transactions may fail", "bytes", n, "err", err)
		}
	}
}

// Close closes the netlink socket. The ruleset stays as it is (grants keep
// expiring in the kernel). Close is idempotent.
func (f *Firewall) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	if err := f.conn.CloseLasting(); err != nil {
		return fmt.Errorf("nftables: close: %w", err)
	}
	return nil
}

// Table returns the name of the table the firewall manages.
func (f *Firewall) Table() string { return f.table.Name }

// lock takes the mutex after checking ctx; it fails after Close.
func (f *Firewall) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		f.mu.Unlock()
		return err
	}
	return nil
}

// deadline bounds the next netlink exchange, so that a kernel that never
// answers (or replies lost to a full buffer) cannot hold the mutex forever.
func (f *Firewall) deadline() {
	if f.sock.c != nil {
		_ = f.sock.c.SetDeadline(time.Now().Add(f.tmo))
	}
}

// flush sends the queued batch. An ENOENT means the table or a set is
// missing when the batch only adds to existing objects: wrap ErrNotSetUp.
// After any error the socket is replaced: the library returns early on some
// errors (ENOBUFS, EPERM, timeouts) and leaves replies unread, which the
// next call would take for its own.
func (f *Firewall) flush(op string, needsTable bool) error {
	f.deadline()
	err := f.conn.Flush()
	if err == nil {
		return nil
	}
	if needsTable && errors.Is(err, unix.ENOENT) {
		err = fmt.Errorf("%w (%s): %w", ErrNotSetUp, op, err)
	} else {
		err = fmt.Errorf("nftables: %s: %w", op, err)
	}
	return f.reset(err)
}

// reset replaces the Conn and its socket, returning cause. It is used after
// a failed exchange (see flush) and after a failed queueing step: the
// library has no way to drop queued messages, a half-built batch must never
// be sent with the next call's Flush, and a marshalling error is sticky.
func (f *Firewall) reset(cause error) error {
	_ = f.conn.CloseLasting()
	conn, err := nft.New(f.copts...)
	if err != nil {
		f.closed = true
		return fmt.Errorf("%w; reopening netlink socket: %w", cause, err)
	}
	f.conn = conn
	return cause
}

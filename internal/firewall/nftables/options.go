//go:build linux

package nftables

import (
	"log/slog"
	"time"

	"github.com/mdlayher/netlink/nltest"
)

// Defaults of the options.
const (
	DefaultTable    = "sesame"
	DefaultPriority = -10 // before the usual filter chains (priority 0)
	// DefaultChunk is how many set elements go into one netlink message. An
	// element list is one netlink attribute, whose length is 16 bits: about
	// 1,800 IPv4 grants (36 bytes each) or 1,350 IPv6 grants (48 bytes) fit.
	// Past that, the library silently wraps the length.
	DefaultChunk = 1024
	// MaxChunk is the largest chunk WithChunkSize accepts.
	MaxChunk = 1300
	// DefaultSendBuffer is the socket send buffer asked for. A transaction
	// must fit in one sendmsg; the kernel's default (≈ 208 KiB) holds about
	// 2,000 refreshed grants. 64 MiB holds ≈ 600,000; memory is only used
	// by transactions that large.
	DefaultSendBuffer = 64 << 20
	// DefaultReceiveBuffer is the socket receive buffer asked for. The
	// kernel queues every ack of a transaction before we read one, and each
	// is charged ≈ 1 KiB: the kernel default (≈ 208 KiB) overflows (ENOBUFS)
	// at about 200 messages, i.e. 70,000 refreshed grants.
	DefaultReceiveBuffer = 8 << 20
	// DefaultTimeout bounds one netlink exchange (a transaction or a dump).
	DefaultTimeout = 30 * time.Second
)

// Option configures New.
type Option func(*config)

type config struct {
	table    string
	log      *slog.Logger
	netns    int
	dial     nltest.Func
	priority int32
	chunk    int
	sndbuf   int
	rcvbuf   int
	timeout  time.Duration
}

// WithTable names the inet table Sesame owns (default "sesame").
func WithTable(name string) Option { return func(c *config) { c.table = name } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithNetNS makes the firewall work in the network namespace referred to by
// fd (an open /run/netns/NAME or /proc/PID/ns/net). The caller keeps fd open
// for the Firewall's lifetime and closes it.
func WithNetNS(fd int) Option { return func(c *config) { c.netns = fd } }

// WithTestDial replaces the netlink socket by f (google/nftables'
// WithTestDial), for tests that inspect the messages sent.
func WithTestDial(f nltest.Func) Option { return func(c *config) { c.dial = f } }

// WithPriority sets the input chain's priority (default -10, i.e. before
// filter chains at priority 0 so that knocks are seen even when the host's
// firewall would drop them).
func WithPriority(p int32) Option { return func(c *config) { c.priority = p } }

// WithChunkSize sets how many set elements go into one netlink message
// (1..MaxChunk; default DefaultChunk). All chunks of one call still go in
// one transaction.
func WithChunkSize(n int) Option { return func(c *config) { c.chunk = n } }

// WithSendBuffer sets the netlink socket's send buffer in bytes, which
// bounds the size of one transaction (default DefaultSendBuffer; 0 keeps the
// kernel default). It is set with SO_SNDBUFFORCE, falling back to SO_SNDBUF
// (capped by net.core.wmem_max) without CAP_NET_ADMIN.
func WithSendBuffer(n int) Option { return func(c *config) { c.sndbuf = n } }

// WithReceiveBuffer sets the netlink socket's receive buffer in bytes
// (default DefaultReceiveBuffer; 0 keeps the kernel default), with
// SO_RCVBUFFORCE falling back to SO_RCVBUF.
func WithReceiveBuffer(n int) Option { return func(c *config) { c.rcvbuf = n } }

// WithTimeout bounds each netlink exchange (default DefaultTimeout). On
// expiry the call fails and the socket is replaced.
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

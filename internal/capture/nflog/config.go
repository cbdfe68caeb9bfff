package nflog

import (
	"fmt"
	"log/slog"
	"time"
)

// Defaults applied by Open to zero Config fields.
const (
	DefaultReadBuffer = 4 << 20 // bytes: ≈10 000 queued knocks (floor.md §d)
	DefaultQueueLen   = 1024    // packets between the hook and ReadPacket
	DefaultQThresh    = 1       // flush every packet to userspace at once
	DefaultTimeout    = 10 * time.Millisecond
)

// Config configures an NFLOG Source. The zero value listens on group 0 with
// the defaults above.
type Config struct {
	// Group is the NFLOG group, the N of nft's "log group N" (0-65535).
	Group uint16

	// ReadBuffer is the netlink socket's receive buffer in bytes: how many
	// packets the kernel holds while the daemon is busy (≈ 400 bytes each
	// for a small knock). Open raises it with SO_RCVBUFFORCE, which ignores
	// net.core.rmem_max (Sesame has CAP_NET_ADMIN anyway to bind a group),
	// and falls back to SO_RCVBUF. 0 means DefaultReadBuffer.
	ReadBuffer int

	// QueueLen is how many parsed packets wait between the receive loop and
	// ReadPacket; beyond it packets are dropped and counted. 0 means
	// DefaultQueueLen.
	QueueLen int

	// QThresh is the kernel's batch size (NFULA_CFG_QTHRESH): packets are
	// pushed to userspace once this many are queued. 0 means 1, for latency:
	// the kernel default of 100 makes a lone knock wait for Timeout.
	// Above 1, the group is read by a batched receive loop of this package
	// (a whole kernel batch per read, parsed in place) instead of
	// go-nflog's one-message-at-a-time loop: the flood path.
	QThresh uint32

	// Timeout bounds how long the kernel holds a partial batch
	// (NFULA_CFG_TIMEOUT, in 1/100 s, rounded up). It only matters when
	// QThresh > 1. 0 means DefaultTimeout; the kernel default is 1 s.
	Timeout time.Duration

	// CopyRange is how many bytes of each packet the kernel copies
	// (NFULA_CFG_MODE copy_range); 0 means the whole packet (up to 65535).
	// A packet cut short by it fails to parse and counts as Malformed.
	CopyRange uint32

	// NetNS is an open file descriptor of a network namespace to bind the
	// socket in; 0 means the caller's namespace. With NetNS set, interface
	// names are not resolved (Iface stays ""), because the lookup would run
	// in the caller's namespace, not the packets'.
	NetNS int

	// Logger receives open/close and error events; nil discards them.
	Logger *slog.Logger

	// Now stamps packets the kernel gives no timestamp for (the usual case:
	// the kernel only timestamps input packets when some socket asked for
	// timestamps). nil means time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() (Config, error) {
	if c.ReadBuffer == 0 {
		c.ReadBuffer = DefaultReadBuffer
	}
	if c.ReadBuffer < 0 || c.ReadBuffer > 1<<30 {
		return c, fmt.Errorf("nflog: ReadBuffer %d out of range (0 to 1 GiB)", c.ReadBuffer)
	}
	if c.QueueLen == 0 {
		c.QueueLen = DefaultQueueLen
	}
	if c.QueueLen < 0 || c.QueueLen > 1<<20 {
		return c, fmt.Errorf("nflog: QueueLen %d out of range (0 to 1048576)", c.QueueLen)
	}
	if c.QThresh == 0 {
		c.QThresh = DefaultQThresh
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Timeout < 0 || c.Timeout > time.Hour {
		return c, fmt.Errorf("nflog: Timeout %v out of range (0 to 1h)", c.Timeout)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// timeoutCentis converts Timeout to the kernel's 1/100 s units, rounding up.
func (c Config) timeoutCentis() uint32 {
	const unit = 10 * time.Millisecond
	return uint32((c.Timeout + unit - 1) / unit)
}

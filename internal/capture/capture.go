// Package capture defines the packet source the gateway reads knocks and SPA
// packets from. Implementations live in subpackages: nflog (packets the
// kernel logs from Sesame's own nftables table and drops), afpacket (a raw
// socket with a BPF filter, knockd-style), and capturetest (an in-memory fake).
package capture

import (
	"context"
	"errors"
	"time"

	"github.com/sesame-gw/sesame/internal/packet"
)

// ErrClosed is returned by ReadPacket after Close.
var ErrClosed = errors.New("capture: source closed")

// Packet is one captured packet with its arrival time.
type Packet struct {
	packet.Packet
	// Time is when the source received the packet (the kernel's timestamp
	// when it has one).
	Time time.Time
	// Iface is the input interface name when known ("" otherwise).
	Iface string
}

// Source delivers captured packets.
//
// Contract:
//   - ReadPacket blocks until a packet arrives, ctx is done (it returns
//     ctx.Err()) or the source is closed (it returns ErrClosed).
//   - Only IPv4/IPv6 packets carrying TCP or UDP are returned; anything
//     that does not parse is counted and skipped, never returned as an error.
//   - The returned Payload aliases an internal buffer valid only until the
//     next ReadPacket call; callers copy what they keep.
//   - ReadPacket is called from one goroutine at a time. Close may be called
//     concurrently with ReadPacket and more than once.
//   - A source never blocks the kernel: when the reader falls behind, packets
//     are dropped and counted in Stats, not queued without bound.
type Source interface {
	ReadPacket(ctx context.Context) (Packet, error)
	Stats() Stats
	Close() error
}

// Stats are the cumulative counters of a Source.
type Stats struct {
	Received  uint64 // packets returned by ReadPacket
	Malformed uint64 // packets that did not parse and were skipped
	Dropped   uint64 // packets lost because the reader fell behind (e.g. ENOBUFS)
}

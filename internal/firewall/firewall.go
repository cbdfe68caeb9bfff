// Package firewall defines how the gateway hides ports and opens them for one
// source at a time. The nftables implementation is in subpackage nftables; an
// in-memory fake for tests is in firewalltest.
//
// The model: Sesame owns one table. Protected services are dropped there
// unless the (source address, protocol, port) is an element of a grant set.
// Grant set elements carry a kernel timeout, so a grant closes on time even
// if the daemon dies. Knock and SPA ports are logged to the daemon (NFLOG)
// and dropped, so they look like every other filtered port. Sesame's table
// only ever drops: what it lets through still has to pass the host's own
// firewall (see docs/firewall.md).
package firewall

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/sesame-gw/sesame/internal/service"
)

// Layout is the static part of the ruleset, derived from the configuration.
type Layout struct {
	// Protected are the services dropped unless granted.
	Protected []service.Service
	// Watched are the services whose packets are sent to the daemon
	// (NFLOG group LogGroup) and dropped: knock ports and SPA ports.
	Watched []service.Service
	// LogGroup is the NFLOG group the watched packets go to, one packet at
	// a time (lowest latency).
	LogGroup uint16
	// BulkLogGroup, when non-zero, takes the watched packets beyond
	// LogRate per second, in batches: under a flood the daemon reads many
	// packets per system call instead of one, while a lone knock still
	// goes through LogGroup at once. A source whose packet overflowed to
	// BulkLogGroup stays there (all its logged packets) until it has been
	// quiet for BulkSourceTimeout, so that its later packets cannot
	// overtake the earlier ones through the faster group.
	BulkLogGroup uint16
	// LogRate is the packets per second LogGroup takes when BulkLogGroup
	// is set (0 means DefaultLogRate).
	LogRate uint32
	// AlwaysAllow are source prefixes never dropped by Sesame (admin
	// networks): they reach protected services without a grant.
	AlwaysAllow []netip.Prefix
	// Interfaces limits Sesame to packets arriving on these interfaces;
	// empty means every interface except loopback.
	Interfaces []string
	// WatchTimeout, when positive, makes the kernel mark the sources of
	// watched packets (knocks) itself, in watch4/watch6, for this long
	// after their last one: the longest knock sequence timeout among the
	// doors. While marked, a source's new connections to any port are
	// logged too, so that a scan resets its knock progress. At most
	// WatchSources sources per address family are marked; beyond that a
	// new source is not marked (its knocks are still logged). Zero: no
	// knock doors, nothing is marked.
	WatchTimeout time.Duration
	// Datagrams, when it has Ports and Shapes, is an in-kernel pre-filter
	// for SPA ports: a UDP datagram to one of Ports whose payload fits no
	// shape (by length and first byte) is dropped before it is logged, so
	// garbage never costs the daemon a wakeup. The zero value filters
	// nothing (every watched datagram is logged).
	Datagrams DatagramFilter
}

// DatagramFilter is the in-kernel pre-filter of Layout.Datagrams. The
// gateway engine derives it from its SPA ports and the shapes its datagram
// handlers declare.
type DatagramFilter struct {
	// Ports are the UDP ports (SPA ports) the filter applies to.
	Ports []uint16
	// Shapes are the payloads the handlers accept. A datagram passes when
	// its payload length is within the smallest MinLen and the largest
	// MaxLen of all shapes and its first byte is one of any shape's
	// FirstBytes (when every shape lists some).
	Shapes []DatagramShape
}

// DatagramShape is what one SPA format's datagrams look like, checked
// without keys: the UDP payload length, inclusive bounds, and the bytes it
// may start with (empty: any). Example: native SPA is MinLen spa.MinSize,
// MaxLen spa.MaxSize, FirstBytes {spa.Magic}; fwknop is 140..1500 bytes
// starting with one of "89+/" (fwknop.LooksLikeFwknop).
type DatagramShape struct {
	MinLen, MaxLen int
	FirstBytes     []byte
}

// Active reports whether the filter drops anything.
func (f DatagramFilter) Active() bool { return len(f.Ports) > 0 && len(f.Shapes) > 0 }

// Bounds returns the union the kernel checks: the payload length range and
// the allowed first bytes (nil: any first byte), sorted and deduplicated.
func (f DatagramFilter) Bounds() (minLen, maxLen int, first []byte) {
	anyFirst := false
	for i, s := range f.Shapes {
		if i == 0 || s.MinLen < minLen {
			minLen = s.MinLen
		}
		if i == 0 || s.MaxLen > maxLen {
			maxLen = s.MaxLen
		}
		if len(s.FirstBytes) == 0 {
			anyFirst = true
		}
		first = append(first, s.FirstBytes...)
	}
	if anyFirst {
		return minLen, maxLen, nil
	}
	slices.Sort(first)
	return minLen, maxLen, slices.Compact(first)
}

// DefaultLogRate is Layout.LogRate's default. Below it every watched
// packet goes to the one-at-a-time group; beyond it (a flood) the
// batched group takes the rest at a fraction of the cost per packet.
const DefaultLogRate = 2000

// BulkSourceTimeout is how long a source stays in the batched group
// (Layout.BulkLogGroup) after its last watched packet; BulkSources bounds
// how many sources the kernel remembers there per address family (each
// element is about a hundred bytes of kernel memory). The bound is twice a
// /16, so that a flood from a /16 fits and leaves the rate to the other
// sources. Beyond the bound, packets over the rate still go to the batched
// group, without the ordering guarantee.
const (
	BulkSourceTimeout = 5 * time.Second
	BulkSources       = 131072
)

// WatchSources bounds the sources the kernel marks as knocking
// (Layout.WatchTimeout) per address family, as BulkSources does for the
// batched group: a flood from a /16 fits.
const WatchSources = 131072

// BulkQueueThreshold is the NFLOG batch size of Layout.BulkLogGroup.
const BulkQueueThreshold = 64

// Grant opens one service for one source address until it expires.
type Grant struct {
	Addr    netip.Addr
	Service service.Service
	// TTL is how long the grant lives from the moment it is installed. When
	// read back with List, it is the time remaining.
	TTL time.Duration
}

// Firewall is the kernel side of the gateway.
//
// Contract:
//   - Setup installs (or replaces) the table with layout l in one atomic
//     transaction. Grants already in the kernel that still refer to a
//     protected service survive a Setup (restart and reload keep them).
//   - Grant installs all grants in one atomic transaction: either all are
//     in the kernel after it returns nil, or none is. Granting an existing
//     (addr, service) again refreshes its TTL. A TTL of zero or less is an
//     error (a grant without expiry is never installed).
//   - With Layout.WatchTimeout set, the kernel marks the source of every
//     watched packet for that long (refreshed by each): while marked, every
//     new connection attempt from it to any port is also logged to the
//     daemon (not dropped unless protected), so a scan resets its knock
//     progress. The daemon writes no marks; a marked source without a knock
//     in progress only costs a logged packet, which the engine ignores.
//   - Revoke removes grants; revoking an absent grant is not an error.
//   - List returns the live grants with their remaining TTL.
//   - Teardown removes everything Sesame installed. It is idempotent.
//   - Implementations are safe for concurrent use.
type Firewall interface {
	Setup(ctx context.Context, l Layout) error
	Grant(ctx context.Context, grants []Grant) error
	Revoke(ctx context.Context, grants []Grant) error
	List(ctx context.Context) ([]Grant, error)
	Teardown(ctx context.Context) error
}

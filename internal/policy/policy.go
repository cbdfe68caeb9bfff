// Package policy decides what an authenticated client may open: which
// services, for how long, for which address. It implements the per-client
// policy of docs/protocol.md §7 (sesame.toml [[client]] tables).
//
// The package is pure: values in (a Client, a Request, the packet source,
// the time), a Decision or a reason out. Client, Request and Decision are
// plain values; a Set is immutable after NewSet and safe for concurrent use.
package policy

import (
	"crypto/ed25519"
	"net/netip"
	"time"

	"github.com/sesame-gw/sesame/internal/service"
)

// DefaultMaxDuration is the longest grant for a client whose MaxDuration is
// zero.
const DefaultMaxDuration = 60 * time.Second

// Client is one [[client]] entry: who it is and what it may open.
type Client struct {
	// Name identifies the client in logs. Required, unique in a Set.
	Name string
	// Key is the client's Ed25519 public key (sesame-id1: text). Unique in a
	// Set.
	Key ed25519.PublicKey
	// Allow lists the services and port ranges the client may open.
	Allow []service.Range
	// MaxDuration caps the requested duration (longer requests are rejected,
	// not shortened). Zero means DefaultMaxDuration.
	MaxDuration time.Duration
	// Sources are the prefixes packets may come from, and that a requested
	// other address must lie in. Empty means any address.
	Sources []netip.Prefix
	// Expires, when not zero, is the instant from which the client is
	// refused.
	Expires time.Time
	// OtherAddress allows requests to open for an address other than the
	// packet's source (clients behind NAT or a proxy).
	OtherAddress bool
}

// Request is what a client asks for, whatever the door that carried it
// (native SPA, fwknop, certificate SPA).
type Request struct {
	// Services are the services and port ranges to open. A range is granted
	// only if every port in it is allowed.
	Services []service.Range
	// Duration is how long the grant should live.
	Duration time.Duration
	// Addr is the address to open for. The zero Addr means the packet's
	// source.
	Addr netip.Addr
}

// Decision is a granted request: exactly what to open.
type Decision struct {
	// Client is the Name of the client granted.
	Client string
	// Addr is the address to open for: the packet source or the requested
	// address. It is never an IPv4-mapped IPv6 address.
	Addr netip.Addr
	// Services is a copy of the requested services.
	Services []service.Range
	// Duration is the requested duration (never more than the client's
	// maximum).
	Duration time.Duration
}

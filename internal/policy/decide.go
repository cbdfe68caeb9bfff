package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/sesame-gw/sesame/internal/service"
)

// Decide checks req, received from src at now on behalf of the
// authenticated client c, against c's policy. It grants the request whole
// (Decision, nil) or refuses it whole with an error wrapping one Reason; the
// checks run in the order of docs/protocol.md §7 and the first failure is
// returned. A nil c is ErrUnknownClient. Decide does not modify its
// arguments; the Decision shares nothing with req.
func Decide(c *Client, req Request, src netip.Addr, now time.Time) (Decision, error) {
	if c == nil {
		return Decision{}, ErrUnknownClient
	}
	if !c.Expires.IsZero() && !now.Before(c.Expires) {
		return Decision{}, fmt.Errorf("%w: expired %s", ErrClientExpired, c.Expires.UTC().Format(time.RFC3339))
	}
	src = src.Unmap().WithZone("")
	if !unicast(src) {
		return Decision{}, fmt.Errorf("%w: %v", ErrBadSource, src)
	}
	if !inPrefixes(src, c.Sources) {
		return Decision{}, fmt.Errorf("%w: %v", ErrSourceNotAllowed, src)
	}
	if len(req.Services) == 0 {
		return Decision{}, ErrNoServices
	}
	for _, r := range req.Services {
		if !covered(r, c.Allow) {
			return Decision{}, fmt.Errorf("%w: %v", ErrServiceNotAllowed, r)
		}
	}
	if req.Duration <= 0 {
		return Decision{}, fmt.Errorf("%w: %v", ErrBadDuration, req.Duration)
	}
	if limit := c.maxDuration(); req.Duration > limit {
		return Decision{}, fmt.Errorf("%w: %v > %v", ErrDurationTooLong, req.Duration, limit)
	}
	addr := src
	if req.Addr.IsValid() {
		a := req.Addr.Unmap().WithZone("")
		if a != src {
			if !c.OtherAddress {
				return Decision{}, fmt.Errorf("%w: %v (source %v)", ErrOtherAddress, a, src)
			}
			if !unicast(a) {
				return Decision{}, fmt.Errorf("%w: %v", ErrBadAddress, a)
			}
			if !inPrefixes(a, c.Sources) {
				return Decision{}, fmt.Errorf("%w: %v", ErrAddressNotAllowed, a)
			}
			addr = a
		}
	}
	return Decision{
		Client:   c.Name,
		Addr:     addr,
		Services: slices.Clone(req.Services),
		Duration: req.Duration,
	}, nil
}

func (c *Client) maxDuration() time.Duration {
	if c.MaxDuration <= 0 {
		return DefaultMaxDuration
	}
	return c.MaxDuration
}

// unicast reports whether a can be granted: valid, not unspecified,
// loopback, multicast or the IPv4 limited broadcast.
func unicast(a netip.Addr) bool {
	return a.IsValid() && !a.IsUnspecified() && !a.IsLoopback() && !a.IsMulticast() &&
		a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// inPrefixes reports whether a is inside one of ps; an empty list allows any
// address. Prefixes are compared unmapped, so ::ffff:10.0.0.0/104 written by
// hand still matches 10.0.0.1.
func inPrefixes(a netip.Addr, ps []netip.Prefix) bool {
	if len(ps) == 0 {
		return true
	}
	for _, p := range ps {
		if unmapPrefix(p).Contains(a) {
			return true
		}
	}
	return false
}

func unmapPrefix(p netip.Prefix) netip.Prefix {
	a := p.Addr()
	if !a.Is4In6() {
		return p
	}
	bits := p.Bits() - 96
	if bits < 0 {
		// Covers more than the mapped space; only the mapped part matters.
		bits = 0
	}
	return netip.PrefixFrom(a.Unmap(), bits)
}

// covered reports whether every port of r is inside the union of the allowed
// ranges of the same protocol.
func covered(r service.Range, allow []service.Range) bool {
	if !validRange(r) {
		return false
	}
	next := int(r.First) // first port not yet known to be allowed
	for next <= int(r.Last) {
		progressed := false
		for _, a := range allow {
			if a.Proto == r.Proto && int(a.First) <= next && next <= int(a.Last) {
				next = int(a.Last) + 1
				progressed = true
			}
		}
		if !progressed {
			return false
		}
	}
	return true
}

// validRange reports whether r names TCP or UDP and 1 <= First <= Last.
func validRange(r service.Range) bool {
	return (r.Proto == service.TCP || r.Proto == service.UDP) && r.First != 0 && r.First <= r.Last
}

package netns

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
)

// RouteProto is the routing protocol number (`ip route ... proto 83`) that
// tags the host-namespace blackhole routes of a bench, so that a leftover
// route of a dead bench can be told from a route somebody else installed.
// 83 is unassigned in iproute2's rt_protos.
const RouteProto = 83

// minGuardBits: host routes this wide or wider (default, 10.0.0.0/8,
// fd00::/8) may overlap a bench prefix; a bench blackhole only shadows a
// sliver of them. Narrower overlapping routes and addresses mark an index as
// unusable, since something real may live there.
const minGuardBits = 9

// hostRoute is one entry of `ip -j route show table all`.
type hostRoute struct {
	Type     string `json:"type"`
	Dst      string `json:"dst"`
	Protocol string `json:"protocol"`
	Table    string `json:"table"`
}

// parseRoutes decodes `ip -j route show` output.
func parseRoutes(js []byte) ([]hostRoute, error) {
	var rs []hostRoute
	if err := json.Unmarshal(js, &rs); err != nil {
		return nil, fmt.Errorf("netns: parse ip -j route: %w", err)
	}
	return rs, nil
}

// routePrefix returns the destination of r: "default" is the whole family's
// space, a bare address is a host route.
func routePrefix(r hostRoute, v6 bool) (netip.Prefix, bool) {
	if r.Dst == "default" {
		if v6 {
			return netip.PrefixFrom(netip.IPv6Unspecified(), 0), true
		}
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0), true
	}
	if p, err := netip.ParsePrefix(r.Dst); err == nil {
		return p.Masked(), true
	}
	if a, err := netip.ParseAddr(r.Dst); err == nil {
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	return netip.Prefix{}, false
}

// isOurs reports whether r is a blackhole route for exactly p tagged with
// RouteProto: the guard route of a bench (possibly a dead one) of p's index.
func isOurs(r hostRoute, p netip.Prefix) bool {
	rp, ok := routePrefix(r, p.Addr().Is6())
	return ok && rp == p && r.Type == "blackhole" && r.Protocol == strconv.Itoa(RouteProto)
}

// conflict returns a description of the first route in routes that makes p
// unusable for a bench, or "" if there is none. Routes wider than
// minGuardBits and the bench's own tagged blackhole for p are not conflicts.
func conflict(routes []hostRoute, p netip.Prefix) string {
	for _, r := range routes {
		rp, ok := routePrefix(r, p.Addr().Is6())
		if !ok || rp.Addr().Is4() != p.Addr().Is4() || !rp.Overlaps(p) {
			continue
		}
		if rp.Bits() < minGuardBits || isOurs(r, p) {
			continue
		}
		t := r.Type
		if t == "" {
			t = "unicast"
		}
		return fmt.Sprintf("host route %s %s (table %q, proto %q) overlaps %s", t, r.Dst, r.Table, r.Protocol, p)
	}
	return ""
}

// leftover reports whether routes hold a tagged blackhole for exactly p.
func leftover(routes []hostRoute, p netip.Prefix) bool {
	for _, r := range routes {
		if isOurs(r, p) {
			return true
		}
	}
	return false
}

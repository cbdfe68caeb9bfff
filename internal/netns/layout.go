package netns

import (
	"fmt"
	"net/netip"
	"regexp"
)

// MaxIndex is the largest bench index. Indices run from 1 to MaxIndex.
const MaxIndex = 1023

// DefaultName is the namespace name prefix used when Options.Name is empty.
const DefaultName = "sesame"

// Interface names inside the namespaces. They only have to be unique inside
// their own namespace, so they are the same for every bench.
const (
	GWIf     = "veth-gw"
	ClientIf = "veth-cl"
)

// nameRE bounds Options.Name: it becomes part of a file name under /run/netns.
var nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,23}$`)

// layout is everything a bench index determines: names and addresses.
// It is pure, so it is tested without root.
type layout struct {
	Index            int
	GW, Client       string // namespace names
	Prefix4, Prefix6 netip.Prefix
	GW4, Client4     netip.Addr
	Client4b         netip.Addr
	GW6, Client6     netip.Addr
	Client6b         netip.Addr
}

// newLayout returns the names and addresses of bench idx (1..MaxIndex):
//
//	IPv4 10.(252 + idx/256).(idx%256).0/24, inside 10.252.0.0/14 (RFC 1918)
//	IPv6 fd5e:5a3e:ab00:IDX::/64, a ULA (RFC 4193) with the fixed global ID 5e5a3eab00
//	gateway .1 / ::1, client .2 / ::2, second client .3 / ::3
//	namespaces NAME<idx>-gw and NAME<idx>-cl
func newLayout(name string, idx int) (layout, error) {
	if !nameRE.MatchString(name) {
		return layout{}, fmt.Errorf("netns: invalid name prefix %q (want %s)", name, nameRE)
	}
	if idx < 1 || idx > MaxIndex {
		return layout{}, fmt.Errorf("netns: index %d out of range [1, %d]", idx, MaxIndex)
	}
	v4 := func(host byte) netip.Addr {
		return netip.AddrFrom4([4]byte{10, byte(252 + idx>>8), byte(idx), host})
	}
	v6 := func(host byte) netip.Addr {
		return netip.AddrFrom16([16]byte{
			0xfd, 0x5e, 0x5a, 0x3e, 0xab, 0x00, byte(idx >> 8), byte(idx),
			15: host,
		})
	}
	return layout{
		Index:    idx,
		GW:       fmt.Sprintf("%s%d-gw", name, idx),
		Client:   fmt.Sprintf("%s%d-cl", name, idx),
		Prefix4:  netip.PrefixFrom(v4(0), 24),
		Prefix6:  netip.PrefixFrom(v6(0), 64),
		GW4:      v4(1),
		Client4:  v4(2),
		Client4b: v4(3),
		GW6:      v6(1),
		Client6:  v6(2),
		Client6b: v6(3),
	}, nil
}

// candidates returns the order in which New tries indices: all of
// 1..MaxIndex, starting at a point derived from the PID and a per-process
// counter. The start only spreads concurrent searches (consecutive PIDs
// start 17 indices apart, a process's successive benches one apart); the
// index lock is what makes benches distinct.
func candidates(pid, counter int) []int {
	start := ((pid%MaxIndex)*17 + counter) % MaxIndex
	out := make([]int, 0, MaxIndex)
	for i := range MaxIndex {
		out = append(out, 1+(start+i)%MaxIndex)
	}
	return out
}

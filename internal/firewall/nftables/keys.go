package nftables

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
	"time"

	"github.com/sesame-gw/sesame/internal/service"
)

// Set element keys, as the kernel stores them. Every field of a concatenated
// key is padded to a multiple of 4 bytes (NFT_REG32_SIZE); a key of the wrong
// length fails the whole batch with EINVAL. Addresses and ports are in
// network byte order, the protocol is one byte followed by three zero bytes.
const (
	grantKeyLen4   = 4 + 4 + 4  // ipv4_addr . inet_proto . inet_service
	grantKeyLen6   = 16 + 4 + 4 // ipv6_addr . inet_proto . inet_service
	serviceKeyLen  = 4 + 4      // inet_proto . inet_service
	protoFieldLen  = 4
	serviceField   = 4
	maxTimeoutUnit = time.Millisecond
)

// MaxTTL is the longest TTL accepted for a grant, and the longest
// Layout.WatchTimeout (100 days).
const MaxTTL = 100 * 24 * time.Hour

// normAddr returns a without an IPv4-in-IPv6 mapping or a zone, so that
// ::ffff:192.0.2.1 and 192.0.2.1 name the same key.
func normAddr(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }

// serviceKey encodes s as an inet_proto . inet_service key (8 bytes).
func serviceKey(s service.Service) []byte {
	k := make([]byte, serviceKeyLen)
	k[0] = byte(s.Proto)
	binary.BigEndian.PutUint16(k[protoFieldLen:], s.Port)
	return k
}

// grantKey encodes addr . proto . port: 12 bytes for IPv4, 24 for IPv6.
// addr must be valid; it is normalised with normAddr.
func grantKey(addr netip.Addr, s service.Service) []byte {
	a := normAddr(addr).AsSlice()
	k := make([]byte, len(a)+protoFieldLen+serviceField)
	copy(k, a)
	k[len(a)] = byte(s.Proto)
	binary.BigEndian.PutUint16(k[len(a)+protoFieldLen:], s.Port)
	return k
}

// parseGrantKey decodes a key made by grantKey. It reports false for a key
// of any other length or with non-zero padding.
func parseGrantKey(k []byte) (netip.Addr, service.Service, bool) {
	var alen int
	switch len(k) {
	case grantKeyLen4:
		alen = 4
	case grantKeyLen6:
		alen = 16
	default:
		return netip.Addr{}, service.Service{}, false
	}
	addr, _ := netip.AddrFromSlice(k[:alen])
	p := k[alen:]
	if p[1] != 0 || p[2] != 0 || p[3] != 0 || p[6] != 0 || p[7] != 0 {
		return netip.Addr{}, service.Service{}, false
	}
	return addr, service.Service{Proto: service.Proto(p[0]), Port: binary.BigEndian.Uint16(p[4:6])}, true
}

// addrKey encodes a single address (4 or 16 bytes).
func addrKey(a netip.Addr) []byte { return normAddr(a).AsSlice() }

// intervalElem is one boundary of an interval set, as nft(8) encodes it: a
// start key, or (End) the first address after a range.
type intervalElem struct {
	Key []byte
	End bool
}

// intervalElems encodes prefixes of one family as the boundaries of an
// interval set, the way nft 1.0 does: ranges sorted, prefixes nested in
// another dropped (the kernel rejects overlapping intervals), a leading end
// marker at the zero address when the first range does not start there, and
// no end element after a range that reaches the top of the address space.
// Adjacent ranges are kept apart, as nft does without auto-merge.
func intervalElems(prefixes []netip.Prefix) []intervalElem {
	type span struct{ first, last netip.Addr }
	spans := make([]span, 0, len(prefixes))
	for _, p := range prefixes {
		p = p.Masked()
		spans = append(spans, span{p.Addr(), lastAddr(p)})
	}
	slices.SortFunc(spans, func(a, b span) int {
		if c := a.first.Compare(b.first); c != 0 {
			return c
		}
		return b.last.Compare(a.last) // wider first, so nested ones follow it
	})
	var merged []span
	for _, s := range spans {
		if n := len(merged); n > 0 && s.first.Compare(merged[n-1].last) <= 0 {
			merged[n-1].last = maxAddr(merged[n-1].last, s.last)
			continue
		}
		merged = append(merged, s)
	}
	if len(merged) == 0 {
		return nil
	}
	var out []intervalElem
	zero := zeroLike(merged[0].first)
	if merged[0].first != zero {
		out = append(out, intervalElem{Key: zero.AsSlice(), End: true})
	}
	for _, s := range merged {
		out = append(out, intervalElem{Key: s.first.AsSlice()})
		if next := s.last.Next(); next.IsValid() {
			out = append(out, intervalElem{Key: next.AsSlice(), End: true})
		}
	}
	return out
}

func maxAddr(a, b netip.Addr) netip.Addr {
	if a.Compare(b) >= 0 {
		return a
	}
	return b
}

func zeroLike(a netip.Addr) netip.Addr {
	if a.Is4() {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}

// lastAddr is the highest address inside the masked prefix p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// timeoutFor converts a TTL to what the kernel stores: whole milliseconds,
// rounded up so that a positive TTL never becomes 0 (which would mean "no
// timeout", i.e. a permanent element).
func timeoutFor(ttl time.Duration) time.Duration {
	return (ttl + maxTimeoutUnit - 1).Truncate(maxTimeoutUnit)
}

// compareAddrSvc orders grants by address, then protocol, then port.
func compareAddrSvc(a1 netip.Addr, s1 service.Service, a2 netip.Addr, s2 service.Service) int {
	if c := a1.Compare(a2); c != 0 {
		return c
	}
	if c := cmp.Compare(s1.Proto, s2.Proto); c != 0 {
		return c
	}
	return cmp.Compare(s1.Port, s2.Port)
}

package packet

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/sesame-gw/sesame/internal/service"
)

// This file builds well-formed packets for tests and demos (fake capture
// sources, fuzz round trips). The packets carry valid IPv4 header, TCP and
// UDP checksums, TTL/hop limit 64, no IP or TCP options. The builders panic
// on inputs no test should pass (mixed address families, a payload that does
// not fit in 65535 bytes): they are not for attacker-controlled data.

// BuildIPv4TCP returns an IPv4 packet holding a bare 20-byte TCP header (no
// payload) with the given flags, e.g. the SYN of a knock.
func BuildIPv4TCP(src, dst netip.Addr, sport, dport uint16, flags TCPFlags) []byte {
	if !src.Is4() {
		panic("packet: BuildIPv4TCP with a non-IPv4 source")
	}
	return BuildTCP(src, dst, sport, dport, flags, nil)
}

// BuildTCP returns an IPv4 or IPv6 packet (the family of src) holding a
// 20-byte TCP header with the given flags and payload.
func BuildTCP(src, dst netip.Addr, sport, dport uint16, flags TCPFlags, payload []byte) []byte {
	return Build(Packet{Src: src, Dst: dst, Proto: service.TCP,
		SrcPort: sport, DstPort: dport, Flags: flags, Payload: payload})
}

// BuildUDP returns an IPv4 or IPv6 packet (the family of src) holding a UDP
// datagram with the given payload.
func BuildUDP(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	return Build(Packet{Src: src, Dst: dst, Proto: service.UDP,
		SrcPort: sport, DstPort: dport, Payload: payload})
}

// Build serializes p (Src, Dst, Proto, ports, Flags for TCP, Payload) so that
// Parse(Build(p)) returns p again. Fragment is ignored. IPv4-mapped addresses
// are unmapped first, so both must then be IPv4 or both IPv6.
func Build(p Packet) []byte {
	src, dst := p.Src.Unmap(), p.Dst.Unmap()
	if !src.IsValid() || !dst.IsValid() || src.Is4() != dst.Is4() {
		panic(fmt.Sprintf("packet: Build with addresses %v and %v", p.Src, p.Dst))
	}
	thLen := 8
	switch p.Proto {
	case service.TCP:
		thLen = 20
	case service.UDP:
	default:
		panic(fmt.Sprintf("packet: Build with protocol %v", p.Proto))
	}
	ipLen := 40
	if src.Is4() {
		ipLen = 20
	}
	l4Len := thLen + len(p.Payload)
	if ipLen+l4Len > 0xffff {
		panic("packet: Build with a payload too large for one IP packet")
	}
	b := make([]byte, ipLen+l4Len)
	l4 := b[ipLen:]
	binary.BigEndian.PutUint16(l4[0:2], p.SrcPort)
	binary.BigEndian.PutUint16(l4[2:4], p.DstPort)
	copy(l4[thLen:], p.Payload)
	csumAt := 6
	if p.Proto == service.TCP {
		binary.BigEndian.PutUint32(l4[4:8], 1) // sequence number
		l4[12] = 5 << 4                        // data offset: 5 words
		l4[13] = byte(p.Flags)
		binary.BigEndian.PutUint16(l4[14:16], 64240) // window
		csumAt = 16
	} else {
		binary.BigEndian.PutUint16(l4[4:6], uint16(l4Len))
	}

	// Pseudo-header (RFC 768, RFC 9293 §3.1; RFC 8200 §8.1 for IPv6).
	s, d := src.AsSlice(), dst.AsSlice()
	sum := csumAdd(csumAdd(0, s), d) + uint32(p.Proto) + uint32(l4Len)
	c := csumFold(csumAdd(sum, l4))
	if p.Proto == service.UDP && c == 0 {
		c = 0xffff // RFC 768: a computed zero is sent as all ones
	}
	binary.BigEndian.PutUint16(l4[csumAt:csumAt+2], c)

	if src.Is4() {
		b[0] = 0x45
		binary.BigEndian.PutUint16(b[2:4], uint16(len(b)))
		binary.BigEndian.PutUint16(b[6:8], 0x4000) // DF
		b[8] = 64
		b[9] = byte(p.Proto)
		copy(b[12:16], s)
		copy(b[16:20], d)
		binary.BigEndian.PutUint16(b[10:12], csumFold(csumAdd(0, b[:20])))
	} else {
		b[0] = 0x60
		binary.BigEndian.PutUint16(b[4:6], uint16(l4Len))
		b[6] = byte(p.Proto)
		b[7] = 64
		copy(b[8:24], s)
		copy(b[24:40], d)
	}
	return b
}

// csumAdd adds b as big-endian 16-bit words to the one's-complement sum
// (RFC 1071).
func csumAdd(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

func csumFold(sum uint32) uint16 {
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

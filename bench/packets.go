package main

import (
	"encoding/binary"
	"net/netip"
)

// Raw IPv4 packets for the flood generator (sent through an IPPROTO_RAW
// socket, which implies IP_HDRINCL: we write the IPv4 header, the kernel
// fills in the header checksum and, when zero, the ID). Pure functions.

const (
	ipv4HeaderLen = 20
	udpHeaderLen  = 8
	tcpHeaderLen  = 20
	protoTCP      = 6
	protoUDP      = 17
)

// putIPv4 writes an IPv4 header for a packet of total length total.
func putIPv4(b []byte, src, dst netip.Addr, proto byte, total int) {
	b[0] = 0x45
	b[1] = 0
	binary.BigEndian.PutUint16(b[2:], uint16(total))
	binary.BigEndian.PutUint16(b[4:], 0)      // ID: filled by the kernel
	binary.BigEndian.PutUint16(b[6:], 0x4000) // DF
	b[8] = 64
	b[9] = proto
	binary.BigEndian.PutUint16(b[10:], 0)
	s, d := src.As4(), dst.As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	binary.BigEndian.PutUint16(b[10:], ^fold(sum16(b[:ipv4HeaderLen], 0)))
}

// buildUDP writes an IPv4/UDP packet carrying payload into b (which must
// hold 28+len(payload) bytes) and returns it. The UDP checksum is 0 (none),
// which IPv4 allows.
func buildUDP(b []byte, src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	total := ipv4HeaderLen + udpHeaderLen + len(payload)
	b = b[:total]
	putIPv4(b, src, dst, protoUDP, total)
	u := b[ipv4HeaderLen:]
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(udpHeaderLen+len(payload)))
	binary.BigEndian.PutUint16(u[6:], 0)
	copy(u[udpHeaderLen:], payload)
	return b
}

// buildSYN writes an IPv4/TCP SYN (no options) into b (40 bytes) and
// returns it, with a correct TCP checksum.
func buildSYN(b []byte, src, dst netip.Addr, sport, dport uint16, seq uint32) []byte {
	total := ipv4HeaderLen + tcpHeaderLen
	b = b[:total]
	putIPv4(b, src, dst, protoTCP, total)
	t := b[ipv4HeaderLen:]
	clear(t)
	binary.BigEndian.PutUint16(t[0:], sport)
	binary.BigEndian.PutUint16(t[2:], dport)
	binary.BigEndian.PutUint32(t[4:], seq)
	t[12] = 5 << 4 // data offset: 5 words
	t[13] = 0x02   // SYN
	binary.BigEndian.PutUint16(t[14:], 64240)
	binary.BigEndian.PutUint16(t[16:], ^fold(sum16(t, pseudoSum(src, dst, protoTCP, tcpHeaderLen))))
	return b
}

// pseudoSum is the one's-complement sum of the IPv4 pseudo-header.
func pseudoSum(src, dst netip.Addr, proto byte, l4len int) uint32 {
	s, d := src.As4(), dst.As4()
	var ph [12]byte
	copy(ph[0:4], s[:])
	copy(ph[4:8], d[:])
	ph[9] = proto
	binary.BigEndian.PutUint16(ph[10:], uint16(l4len))
	return sum16(ph[:], 0)
}

// sum16 adds b as big-endian 16-bit words to acc (RFC 1071).
func sum16(b []byte, acc uint32) uint32 {
	for len(b) >= 2 {
		acc += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint32(b[0]) << 8
	}
	return acc
}

// fold folds the carries of a one's-complement sum into 16 bits.
func fold(acc uint32) uint16 {
	for acc>>16 != 0 {
		acc = acc&0xffff + acc>>16
	}
	return uint16(acc)
}

// nthAddr returns the n-th address of prefix p (wrapping inside it).
func nthAddr(p netip.Prefix, n uint32) netip.Addr {
	base := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := binary.BigEndian.Uint32(base[:]) | (n & host)
	var out [4]byte
	binary.BigEndian.PutUint32(out[:], v)
	return netip.AddrFrom4(out)
}

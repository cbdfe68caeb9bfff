package packet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/sesame-gw/sesame/internal/service"
)

// Sentinel errors of Parse. Every error Parse returns wraps exactly one of
// them (errors.Is), so callers can count rejects by kind.
var (
	// ErrTruncated: a header or a length field points past the end of the
	// input (a short capture, or a lying length field).
	ErrTruncated = errors.New("packet: truncated")
	// ErrMalformed: a header field is invalid in itself (IHL < 5, TCP data
	// offset < 5, UDP length < 8, hop-by-hop options not first, an
	// IPv4-mapped address in an IPv6 header, too many extension headers).
	ErrMalformed = errors.New("packet: malformed")
	// ErrUnsupported: a well-formed packet Sesame does not decode (IP version
	// other than 4 or 6, a transport other than TCP or UDP, ESP/AH or an
	// unknown IPv6 extension header).
	ErrUnsupported = errors.New("packet: unsupported")
	// ErrFragment: a non-first fragment, which carries no transport header.
	ErrFragment = errors.New("packet: non-first fragment")
)

// Pre-built wrapped errors: Parse is on the flood path and must not allocate,
// so the context is fixed at init rather than formatted per packet.
var (
	errEmpty         = fmt.Errorf("%w: empty packet", ErrTruncated)
	errVersion       = fmt.Errorf("%w: IP version not 4 or 6", ErrUnsupported)
	errIPv4Short     = fmt.Errorf("%w: IPv4 header", ErrTruncated)
	errIPv4IHL       = fmt.Errorf("%w: IPv4 IHL < 5", ErrMalformed)
	errIPv4TotLen    = fmt.Errorf("%w: IPv4 total length past capture", ErrTruncated)
	errIPv4TotLenIHL = fmt.Errorf("%w: IPv4 total length < header length", ErrMalformed)
	errIPv6Short     = fmt.Errorf("%w: IPv6 header", ErrTruncated)
	errIPv6PayLen    = fmt.Errorf("%w: IPv6 payload length past capture", ErrTruncated)
	errIPv6Mapped    = fmt.Errorf("%w: IPv4-mapped address in IPv6 header", ErrMalformed)
	errIPv6ExtShort  = fmt.Errorf("%w: IPv6 extension header", ErrTruncated)
	errIPv6HopByHop  = fmt.Errorf("%w: IPv6 hop-by-hop options not first", ErrMalformed)
	errIPv6ExtCount  = fmt.Errorf("%w: more than %d IPv6 extension headers", ErrMalformed, maxExtHeaders)
	errIPv6NextHdr   = fmt.Errorf("%w: IPv6 next header not TCP, UDP or a walkable extension", ErrUnsupported)
	errProto         = fmt.Errorf("%w: transport not TCP or UDP", ErrUnsupported)
	errTCPShort      = fmt.Errorf("%w: TCP header", ErrTruncated)
	errTCPOffset     = fmt.Errorf("%w: TCP data offset < 5", ErrMalformed)
	errTCPOptions    = fmt.Errorf("%w: TCP data offset past packet", ErrTruncated)
	errUDPShort      = fmt.Errorf("%w: UDP header", ErrTruncated)
	errUDPLenSmall   = fmt.Errorf("%w: UDP length < 8", ErrMalformed)
	errUDPLenLong    = fmt.Errorf("%w: UDP length past packet", ErrTruncated)
)

// maxExtHeaders bounds the IPv6 extension-header walk. RFC 8200 §4.1 allows
// each header at most once (destination options twice); 8 covers every
// legitimate chain.
const maxExtHeaders = 8

// IP protocol numbers (IANA) used by the parser.
const (
	protoHopByHop = 0
	protoTCP      = 6
	protoUDP      = 17
	protoRouting  = 43
	protoFragment = 44
	protoDstOpts  = 60
)

// Parse decodes an L3 packet (the first byte is the IP version nibble: what
// NFLOG delivers and what a raw IP socket reads) into its addresses, ports,
// TCP flags and transport payload.
//
// Accepted: IPv4 (RFC 791) with options, and IPv6 (RFC 8200) after walking up
// to 8 hop-by-hop, routing, fragment and destination-options extension
// headers; then TCP (RFC 9293) or UDP (RFC 768). Lengths are bounded by the
// input, then by the IP total/payload length (bytes past it are link padding
// and ignored), then for UDP by the UDP length. A first fragment parses, with
// Fragment set and Payload holding only what this fragment carries; a
// non-first fragment returns ErrFragment. Checksums are not verified: NFLOG
// sees packets before the transport layer would check them, and the SPA
// layer authenticates its payload anyway.
//
// Src and Dst of an IPv4 packet are 4-byte addresses (Is4), never IPv4-mapped
// IPv6. An IPv6 packet whose source or destination is IPv4-mapped
// (::ffff:a.b.c.d) is rejected with ErrMalformed: RFC 4291 §2.5.5.2 keeps
// such addresses off the wire, and accepting one would invite an Unmap that
// lets an IPv6 packet speak for an IPv4 host.
//
// On success the returned Payload aliases b. On error the Packet is the zero
// value. Parse never panics, never reads outside b, does not allocate and is
// safe for concurrent use.
//
// Why hand-written rather than gopacket/layers' DecodingLayerParser: this is
// the path an attacker can flood, and Parse takes ~9-11 ns per packet (19 ns
// with three IPv6 extension headers) against ~55-65 ns for a reused
// gopacket parser on the same machine (BenchmarkParse); gopacket v1.7.7 cannot
// walk IPv6 routing or destination-options headers with DecodingLayerParser
// (they are not DecodingLayers), and it accepts short packets by flagging
// them truncated, where Sesame wants a plain reject; its parser also keeps
// per-instance state, unlike a pure function. The walk is small and fully
// specified (RFC 8200 §4), and the tests and fuzzers cross-check Parse
// against gopacket on every packet both can decode.
func Parse(b []byte) (p Packet, err error) {
	if len(b) == 0 {
		return Packet{}, errEmpty
	}
	switch b[0] >> 4 {
	case 4:
		err = parseIPv4(&p, b)
	case 6:
		err = parseIPv6(&p, b)
	default:
		err = errVersion
	}
	if err != nil {
		return Packet{}, err
	}
	return p, nil
}

func parseIPv4(p *Packet, b []byte) error {
	if len(b) < 20 {
		return errIPv4Short
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < 20 {
		return errIPv4IHL
	}
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if total < ihl {
		return errIPv4TotLenIHL
	}
	if total > len(b) {
		return errIPv4TotLen
	}
	b = b[:total]
	// Flags (3 bits: reserved, DF, MF) and the 13-bit fragment offset.
	frag := binary.BigEndian.Uint16(b[6:8])
	if frag&0x1fff != 0 {
		return ErrFragment
	}
	p.Fragment = frag&0x2000 != 0
	p.Src = netip.AddrFrom4([4]byte(b[12:16]))
	p.Dst = netip.AddrFrom4([4]byte(b[16:20]))
	return parseTransport(p, b[9], b[ihl:])
}

func parseIPv6(p *Packet, b []byte) error {
	if len(b) < 40 {
		return errIPv6Short
	}
	end := 40 + int(binary.BigEndian.Uint16(b[4:6]))
	if end > len(b) {
		return errIPv6PayLen
	}
	b = b[:end]
	p.Src = netip.AddrFrom16([16]byte(b[8:24]))
	p.Dst = netip.AddrFrom16([16]byte(b[24:40]))
	if p.Src.Is4In6() || p.Dst.Is4In6() {
		return errIPv6Mapped
	}
	next, off := b[6], 40
	for i := 0; ; i++ {
		switch next {
		case protoTCP, protoUDP:
			return parseTransport(p, next, b[off:])
		case protoHopByHop, protoRouting, protoDstOpts, protoFragment:
		default:
			return errIPv6NextHdr
		}
		if i == maxExtHeaders {
			return errIPv6ExtCount
		}
		if next == protoHopByHop && off != 40 {
			return errIPv6HopByHop // RFC 8200 §4.1
		}
		if len(b)-off < 8 { // every extension header is at least 8 bytes
			return errIPv6ExtShort
		}
		hdrLen := 8
		if next == protoFragment {
			// RFC 8200 §4.5: offset in 8-byte units in the top 13 bits,
			// M (more fragments) in the lowest bit.
			fo := binary.BigEndian.Uint16(b[off+2 : off+4])
			if fo&0xfff8 != 0 {
				return ErrFragment
			}
			if fo&1 != 0 {
				p.Fragment = true
			}
		} else {
			// Hdr Ext Len: 8-byte units, not counting the first 8 bytes.
			hdrLen = (int(b[off+1]) + 1) * 8
			if hdrLen > len(b)-off {
				return errIPv6ExtShort
			}
		}
		next = b[off]
		off += hdrLen
	}
}

// parseTransport decodes the TCP or UDP header at the start of b, which ends
// where the IP packet ends.
func parseTransport(p *Packet, proto byte, b []byte) error {
	switch proto {
	case protoTCP:
		if len(b) < 20 {
			return errTCPShort
		}
		off := int(b[12]>>4) * 4
		if off < 20 {
			return errTCPOffset
		}
		if off > len(b) {
			return errTCPOptions
		}
		p.Proto = service.TCP
		p.Flags = TCPFlags(b[13])
		p.Payload = b[off:]
	case protoUDP:
		if len(b) < 8 {
			return errUDPShort
		}
		n := int(binary.BigEndian.Uint16(b[4:6]))
		if n < 8 {
			return errUDPLenSmall
		}
		if n > len(b) {
			if !p.Fragment {
				return errUDPLenLong
			}
			n = len(b) // a first fragment carries only part of the datagram
		}
		p.Proto = service.UDP
		p.Payload = b[8:n]
	default:
		return errProto
	}
	p.SrcPort = binary.BigEndian.Uint16(b[0:2])
	p.DstPort = binary.BigEndian.Uint16(b[2:4])
	return nil
}

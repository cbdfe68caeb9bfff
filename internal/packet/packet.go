// Package packet decodes the IPv4/IPv6 + TCP/UDP headers of a captured
// packet: the only attacker-controlled bytes the knock path reads.
//
// The package is pure (no I/O). Parse is bounded by the input length and never
// panics on any input (fuzzed).
package packet

import (
	"net/netip"

	"github.com/sesame-gw/sesame/internal/service"
)

// TCPFlags is the TCP flags byte (FIN = 0x01 ... URG = 0x20, ECE, CWR).
type TCPFlags uint8

// TCP flag bits as on the wire.
const (
	FIN TCPFlags = 0x01
	SYN TCPFlags = 0x02
	RST TCPFlags = 0x04
	PSH TCPFlags = 0x08
	ACK TCPFlags = 0x10
	URG TCPFlags = 0x20
	ECE TCPFlags = 0x40 // RFC 3168
	CWR TCPFlags = 0x80 // RFC 3168
)

// Packet is the decoded header of one IP packet.
type Packet struct {
	Src, Dst         netip.Addr
	Proto            service.Proto // TCP or UDP
	SrcPort, DstPort uint16
	Flags            TCPFlags // TCP only
	// Payload is the transport payload (the UDP datagram body for SPA). It
	// aliases the buffer passed to Parse.
	Payload []byte
	// Fragment reports a first fragment (IPv4 MF set, or an IPv6 fragment
	// header with offset 0 and M set): Payload is then only the part of the
	// datagram this fragment carries.
	Fragment bool
}

// Service is the destination (protocol, port) of the packet.
func (p *Packet) Service() service.Service {
	return service.Service{Proto: p.Proto, Port: p.DstPort}
}

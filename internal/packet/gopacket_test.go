package packet

import (
	"net/netip"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/sesame-gw/sesame/internal/service"
)

// gopacketDecoder is the reference decoder the tests compare Parse with: a
// reused DecodingLayerParser over the layers Parse accepts.
type gopacketDecoder struct {
	parser4 *gopacket.DecodingLayerParser
	parser6 *gopacket.DecodingLayerParser
	ip4     layers.IPv4
	ip6     layers.IPv6
	frag    layers.IPv6Fragment
	tcp     layers.TCP
	udp     layers.UDP
	payload gopacket.Payload
	decoded []gopacket.LayerType
}

func newGopacketDecoder() *gopacketDecoder {
	d := &gopacketDecoder{}
	for _, pp := range []struct {
		p     **gopacket.DecodingLayerParser
		first gopacket.LayerType
	}{{&d.parser4, layers.LayerTypeIPv4}, {&d.parser6, layers.LayerTypeIPv6}} {
		*pp.p = gopacket.NewDecodingLayerParser(pp.first,
			&d.ip4, &d.ip6, &d.frag, &d.tcp, &d.udp, &d.payload)
		(*pp.p).IgnoreUnsupported = true
	}
	d.decoded = make([]gopacket.LayerType, 0, 16)
	return d
}

// decode returns the packet as gopacket sees it; ok is false unless gopacket
// decoded an IPv4 or IPv6 header followed by TCP or UDP.
func (d *gopacketDecoder) decode(b []byte) (p Packet, ok bool) {
	parser := d.parser4
	if len(b) > 0 && b[0]>>4 == 6 {
		parser = d.parser6
	}
	if err := parser.DecodeLayers(b, &d.decoded); err != nil && len(d.decoded) == 0 {
		return Packet{}, false
	}
	var haveIP bool
	for _, lt := range d.decoded {
		switch lt {
		case layers.LayerTypeIPv4:
			p.Src, _ = netip.AddrFromSlice(d.ip4.SrcIP.To4())
			p.Dst, _ = netip.AddrFromSlice(d.ip4.DstIP.To4())
			haveIP = true
		case layers.LayerTypeIPv6:
			p.Src, _ = netip.AddrFromSlice(d.ip6.SrcIP)
			p.Dst, _ = netip.AddrFromSlice(d.ip6.DstIP)
			haveIP = true
		case layers.LayerTypeTCP:
			p.Proto, p.SrcPort, p.DstPort = service.TCP, uint16(d.tcp.SrcPort), uint16(d.tcp.DstPort)
			p.Flags = TCPFlags(d.tcp.Contents[13])
			p.Payload = d.tcp.Payload
			return p, haveIP
		case layers.LayerTypeUDP:
			p.Proto, p.SrcPort, p.DstPort = service.UDP, uint16(d.udp.SrcPort), uint16(d.udp.DstPort)
			p.Payload = d.udp.Payload
			return p, haveIP
		}
	}
	return Packet{}, false
}

func gopacketDecode(b []byte) (Packet, bool) { return newGopacketDecoder().decode(b) }

package knockd

import (
	"net/netip"

	"github.com/sesame-gw/sesame/internal/capture"
	"github.com/sesame-gw/sesame/internal/knock"
	"github.com/sesame-gw/sesame/internal/packet"
	"github.com/sesame-gw/sesame/internal/service"
)

func capturePacket(src, dst netip.Addr, s service.Service, flags packet.TCPFlags) capture.Packet {
	p := packet.Packet{Src: src, Dst: dst, Proto: s.Proto, SrcPort: 40000, DstPort: s.Port}
	if s.Proto == service.TCP {
		p.Flags = flags
	}
	return capture.Packet{Packet: p}
}

func optionsFor(parity bool) knock.Options { return knock.Options{Knockd: parity} }

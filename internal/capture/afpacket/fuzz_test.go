package afpacket

import (
	"testing"

	"github.com/sesame-gw/sesame/internal/packet"
	"github.com/sesame-gw/sesame/internal/service"
)

// FuzzFilterAgreesWithParser: whatever user space would decode as a TCP or
// UDP packet to a watched port, the kernel filter must deliver.
func FuzzFilterAgreesWithParser(f *testing.F) {
	f.Add(tcpPkt(src4, dst4, 7000, packet.SYN), uint16(ethPIPv4))
	f.Add(vlan(ethPIPv6, udpPkt(src6, dst6, 8000)), uint16(ethPIPv4))
	f.Add(vlan(ethPIPv4, tcpPkt(src4, dst4, 9, packet.FIN)), uint16(ethP8021AD))
	flt := Filter{Rules: []Rule{
		{Proto: service.TCP, Ports: []PortRange{{1, 9}, {7000, 7000}}, Flags: []FlagCond{{Set: packet.SYN}, {Set: packet.FIN, Clear: packet.ACK}}},
		{Proto: service.UDP, Ports: []PortRange{{8000, 8000}}},
	}}
	prog, err := flt.Program()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte, proto uint16) {
		if len(data) > 1500 {
			return
		}
		l3, ok := network(data, proto)
		if !ok {
			return
		}
		p, err := packet.Parse(l3)
		if err != nil || len(l3) > 0 && l3[0]>>4 == 6 && l3[6] != 6 && l3[6] != 17 {
			return // not decoded, or IPv6 with extension headers (delivered anyway)
		}
		want := false
		for _, r := range flt.Rules {
			if r.Proto != p.Proto {
				continue
			}
			portOK := false
			for _, pr := range r.Ports {
				portOK = portOK || p.DstPort >= pr.First && p.DstPort <= pr.Last
			}
			flagsOK := len(r.Flags) == 0
			for _, c := range r.Flags {
				flagsOK = flagsOK || p.Flags&(c.Set|c.Clear) == c.Set
			}
			want = want || portOK && flagsOK
		}
		if got := run(t, prog, 0, uint32(proto), data) != 0; got != want {
			t.Fatalf("filter accepted=%v, parser says %v for %+v", got, want, p)
		}
	})
}

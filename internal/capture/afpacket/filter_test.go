package afpacket

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.org/x/net/bpf"

	"github.com/sesame-gw/sesame/internal/packet"
	"github.com/sesame-gw/sesame/internal/service"
)

// run interprets a classic BPF program the way the kernel does for an
// AF_PACKET SOCK_DGRAM socket (x/net/bpf's VM lacks the ancillary loads):
// out-of-bounds loads reject the packet.
func run(t *testing.T, prog []bpf.RawInstruction, pkttype, proto uint32, data []byte) uint32 {
	t.Helper()
	var a, x uint32
	var mem [16]uint32
	load := func(off uint32, size int) (uint32, bool) {
		if int(off)+size > len(data) || int(off) < 0 {
			return 0, false
		}
		switch size {
		case 1:
			return uint32(data[off]), true
		case 2:
			return uint32(binary.BigEndian.Uint16(data[off:])), true
		}
		return binary.BigEndian.Uint32(data[off:]), true
	}
	for pc := 0; pc < len(prog); pc++ {
		ok := true
		switch ins := prog[pc].Disassemble().(type) {
		case bpf.LoadExtension:
			switch ins.Num {
			case bpf.ExtType:
				a = pkttype
			case bpf.ExtProto:
				a = proto
			default:
				t.Fatalf("extension %v", ins.Num)
			}
		case bpf.LoadAbsolute:
			a, ok = load(ins.Off, ins.Size)
		case bpf.LoadIndirect:
			a, ok = load(x+ins.Off, ins.Size)
		case bpf.LoadMemShift:
			var b uint32
			b, ok = load(ins.Off, 1)
			x = (b & 0xf) * 4
		case bpf.LoadConstant:
			if ins.Dst == bpf.RegA {
				a = ins.Val
			} else {
				x = ins.Val
			}
		case bpf.LoadScratch:
			if ins.Dst == bpf.RegA {
				a = mem[ins.N]
			} else {
				x = mem[ins.N]
			}
		case bpf.StoreScratch:
			if ins.Src == bpf.RegA {
				mem[ins.N] = a
			} else {
				mem[ins.N] = x
			}
		case bpf.ALUOpConstant:
			switch ins.Op {
			case bpf.ALUOpAdd:
				a += ins.Val
			case bpf.ALUOpAnd:
				a &= ins.Val
			default:
				t.Fatalf("alu op %v", ins.Op)
			}
		case bpf.TAX:
			x = a
		case bpf.TXA:
			a = x
		case bpf.Jump:
			pc += int(ins.Skip)
		case bpf.JumpIf:
			var c bool
			switch ins.Cond {
			case bpf.JumpEqual:
				c = a == ins.Val
			case bpf.JumpGreaterThan:
				c = a > ins.Val
			case bpf.JumpGreaterOrEqual:
				c = a >= ins.Val
			case bpf.JumpBitsSet:
				c = a&ins.Val != 0
			case bpf.JumpNotEqual:
				c = a != ins.Val
			case bpf.JumpLessThan:
				c = a < ins.Val
			case bpf.JumpLessOrEqual:
				c = a <= ins.Val
			case bpf.JumpBitsNotSet:
				c = a&ins.Val == 0
			default:
				t.Fatalf("jump cond %v", ins.Cond)
			}
			if c {
				pc += int(ins.SkipTrue)
			} else {
				pc += int(ins.SkipFalse)
			}
		case bpf.RetConstant:
			return ins.Val
		default:
			t.Fatalf("instruction %T %v", ins, ins)
		}
		if !ok {
			return 0
		}
	}
	t.Fatal("program fell off the end")
	return 0
}

var (
	src4, dst4 = netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	src6, dst6 = netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
)

type probe struct {
	name    string
	data    []byte
	proto   uint32
	pkttype uint32
	want    bool
}

func tcpPkt(src, dst netip.Addr, port uint16, flags packet.TCPFlags) []byte {
	return packet.BuildTCP(src, dst, 40000, port, flags, nil)
}

func udpPkt(src, dst netip.Addr, port uint16) []byte {
	return packet.BuildUDP(src, dst, 40000, port, []byte("x"))
}

func vlan(inner uint16, l3 []byte) []byte {
	b := []byte{0x00, 0x64, byte(inner >> 8), byte(inner)}
	return append(b, l3...)
}

func check(t *testing.T, f Filter, probes []probe) {
	t.Helper()
	prog, err := f.Program()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probes {
		proto := p.proto
		if proto == 0 {
			proto = ethPIPv4
			if p.data[0]>>4 == 6 {
				proto = ethPIPv6
			}
		}
		got := run(t, prog, p.pkttype, proto, p.data) != 0
		if got != p.want {
			t.Errorf("%s: accepted=%v, want %v", p.name, got, p.want)
		}
	}
}

// knockdFilter is what a knockd door 7000,8000:udp,9000 with tcpflags=syn
// compiles to: knockd's own pcap filter, as rules.
func knockdFilter() Filter {
	return Filter{Rules: []Rule{
		{Proto: service.TCP, Ports: []PortRange{{7000, 7000}, {9000, 9000}}, Flags: []FlagCond{{Set: packet.SYN}}},
		{Proto: service.UDP, Ports: []PortRange{{8000, 8000}}},
	}}
}

func TestFilterPortsAndFlags(t *testing.T) {
	check(t, knockdFilter(), []probe{
		{name: "v4 syn 7000", data: tcpPkt(src4, dst4, 7000, packet.SYN), want: true},
		{name: "v4 syn+ack 9000", data: tcpPkt(src4, dst4, 9000, packet.SYN|packet.ACK), want: true},
		{name: "v4 ack 7000", data: tcpPkt(src4, dst4, 7000, packet.ACK)},
		{name: "v4 syn 8000 (udp door port)", data: tcpPkt(src4, dst4, 8000, packet.SYN)},
		{name: "v4 udp 8000", data: udpPkt(src4, dst4, 8000), want: true},
		{name: "v4 udp 7000", data: udpPkt(src4, dst4, 7000)},
		{name: "v4 syn 22", data: tcpPkt(src4, dst4, 22, packet.SYN)},
		{name: "v6 syn 7000", data: tcpPkt(src6, dst6, 7000, packet.SYN), want: true},
		{name: "v6 udp 8000", data: udpPkt(src6, dst6, 8000), want: true},
		{name: "v6 fin 9000", data: tcpPkt(src6, dst6, 9000, packet.FIN)},
		{name: "outgoing", data: tcpPkt(src4, dst4, 7000, packet.SYN), pkttype: packetOutgoing},
		{name: "802.1Q v4", data: vlan(ethPIPv4, tcpPkt(src4, dst4, 7000, packet.SYN)), proto: ethP8021Q, want: true},
		{name: "802.1ad v6", data: vlan(ethPIPv6, udpPkt(src6, dst6, 8000)), proto: ethP8021AD, want: true},
		{name: "802.1Q v4 wrong port", data: vlan(ethPIPv4, tcpPkt(src4, dst4, 7001, packet.SYN)), proto: ethP8021Q},
		{name: "802.1Q arp", data: vlan(0x0806, make([]byte, 28)), proto: ethP8021Q},
		{name: "arp", data: make([]byte, 28), proto: 0x0806},
		{name: "truncated v4", data: tcpPkt(src4, dst4, 7000, packet.SYN)[:22]},
	})
}

func TestFilterIPv4Details(t *testing.T) {
	withOptions := tcpPkt(src4, dst4, 7000, packet.SYN)
	// Grow the header with 4 bytes of options (IHL 6): the port moves.
	opt := append(append(append([]byte{}, withOptions[:20]...), 1, 1, 1, 0), withOptions[20:]...)
	opt[0] = 0x46
	later := tcpPkt(src4, dst4, 7000, packet.SYN)
	binary.BigEndian.PutUint16(later[6:], 0x0010) // fragment offset 16 (×8 bytes)
	first := tcpPkt(src4, dst4, 7000, packet.SYN)
	binary.BigEndian.PutUint16(first[6:], 0x2000) // MF, offset 0
	icmp := tcpPkt(src4, dst4, 7000, packet.SYN)
	icmp[9] = 1
	check(t, knockdFilter(), []probe{
		{name: "ip options", data: opt, want: true},
		{name: "ip options, behind a tag", data: vlan(ethPIPv4, opt), proto: ethP8021Q, want: true},
		{name: "later fragment", data: later},
		{name: "first fragment", data: first, want: true},
		{name: "icmp", data: icmp},
	})
}

func TestFilterIPv6ExtensionHeadersGoToUserSpace(t *testing.T) {
	p := tcpPkt(src6, dst6, 22, packet.SYN)
	p[6] = 0 // hop-by-hop: user space walks the chain
	q := tcpPkt(src6, dst6, 22, packet.SYN)
	q[6] = 58 // ICMPv6
	check(t, knockdFilter(), []probe{{name: "hop-by-hop", data: p, want: true}, {name: "icmpv6", data: q}})
}

func TestFilterAnyPortRules(t *testing.T) {
	// Sesame's scan-proof mode: every packet that could be a knock.
	f := Filter{Rules: []Rule{
		{Proto: service.TCP, Flags: []FlagCond{{Set: packet.SYN, Clear: packet.ACK}, {Set: packet.FIN}}},
		{Proto: service.UDP, Ports: []PortRange{{40000, 40999}, {50000, 50000}}},
	}}
	check(t, f, []probe{
		{name: "syn 1", data: tcpPkt(src4, dst4, 1, packet.SYN), want: true},
		{name: "syn+ack 1", data: tcpPkt(src4, dst4, 1, packet.SYN|packet.ACK)},
		{name: "fin 65535", data: tcpPkt(src6, dst6, 65535, packet.FIN|packet.ACK), want: true},
		{name: "ack 80", data: tcpPkt(src4, dst4, 80, packet.ACK)},
		{name: "udp 39999", data: udpPkt(src4, dst4, 39999)},
		{name: "udp 40000", data: udpPkt(src4, dst4, 40000), want: true},
		{name: "udp 40999", data: udpPkt(src6, dst6, 40999), want: true},
		{name: "udp 41000", data: udpPkt(src4, dst4, 41000)},
		{name: "udp 50000", data: udpPkt(src4, dst4, 50000), want: true},
	})
	// The zero filter delivers nothing.
	check(t, Filter{}, []probe{{name: "syn", data: tcpPkt(src4, dst4, 7000, packet.SYN)}})
	// Every port, every flag.
	check(t, Filter{Rules: []Rule{{Proto: service.TCP}}}, []probe{{name: "ack", data: tcpPkt(src4, dst4, 7, packet.ACK), want: true}})
}

func TestFilterTooLong(t *testing.T) {
	var r Rule
	r.Proto = service.TCP
	for p := 1; p <= 3000; p++ {
		r.Ports = append(r.Ports, PortRange{uint16(p), uint16(p)})
	}
	if _, err := (Filter{Rules: []Rule{r}}).Program(); err != ErrFilterTooLong {
		t.Fatalf("err %v", err)
	}
}

func TestFilterQinQReportedAsInner(t *testing.T) {
	// The kernel reports 0x0800 for a QinQ frame whose inner tag is still
	// in the data.
	tagged := vlan(ethPIPv4, udpPkt(src4, dst4, 8000))
	tagged6 := vlan(ethPIPv6, tcpPkt(src6, dst6, 7000, packet.SYN))
	check(t, knockdFilter(), []probe{
		{name: "reported v4", data: tagged, proto: ethPIPv4, want: true},
		{name: "reported v6", data: tagged6, proto: ethPIPv6, want: true},
		{name: "reported v4, tag then v6", data: tagged6, proto: ethPIPv4, want: true},
	})
	for _, c := range []struct {
		data  []byte
		proto uint16
		skip  int
		ok    bool
	}{
		{udpPkt(src4, dst4, 8000), ethPIPv4, 0, true},
		{tagged, ethPIPv4, 4, true},
		{tagged, ethP8021Q, 4, true},
		{tagged6, ethP8021AD, 4, true},
		{tagged6, ethPIPv6, 4, true},
		{udpPkt(src6, dst6, 1), ethPIPv6, 0, true},
		{[]byte{0, 1, 8, 0}, ethP8021Q, 0, false},
		{nil, ethPIPv4, 0, false},
		{make([]byte, 40), 0x0806, 0, false},
	} {
		got, ok := network(c.data, c.proto)
		if ok != c.ok || ok && len(got) != len(c.data)-c.skip {
			t.Errorf("network(% x…, %#x) = %d bytes, %v", c.data[:min(len(c.data), 6)], c.proto, len(got), ok)
		}
	}
}

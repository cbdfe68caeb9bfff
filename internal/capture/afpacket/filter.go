package afpacket

import (
	"errors"
	"fmt"

	"golang.org/x/net/bpf"

	"github.com/sesame-gw/sesame/internal/packet"
	"github.com/sesame-gw/sesame/internal/service"
)

// Filter says which packets the kernel hands to user space: an IPv4 or
// IPv6 TCP or UDP packet (possibly behind one in-band 802.1Q/802.1ad tag,
// not a later fragment, not sent by this host) that matches one of Rules.
// An in-band tag is recognised by the data (the kernel may report the
// inner protocol for a QinQ frame): a tag whose first nibble looks like the
// IP version the kernel reported (priority 2 or 3) is taken for the IP
// header, so such QinQ frames are missed.
// IPv6 packets with extension headers are always delivered (user space
// parses the chain; classic BPF cannot walk it). The zero value delivers no
// TCP/UDP packet at all.
type Filter struct {
	Rules []Rule
}

// Rule matches one protocol, some ports, some TCP flags.
type Rule struct {
	Proto service.Proto
	// Ports lists the destination ports; empty means every port.
	Ports []PortRange
	// Flags, for TCP, lists conditions of which one must hold; empty means
	// any flags.
	Flags []FlagCond
}

// PortRange is an inclusive range of ports.
type PortRange struct{ First, Last uint16 }

// FlagCond is a TCP flags condition: every flag in Set set, every flag in
// Clear clear (knockd's TCPFlags).
type FlagCond struct{ Set, Clear packet.TCPFlags }

// snapLen is what an accepted packet keeps: every header Sesame parses
// plus a full SPA payload.
const snapLen = 0xffff

// Linux constants the filter uses (linux/if_ether.h, linux/if_packet.h).
const (
	ethPIPv4       = 0x0800
	ethPIPv6       = 0x86dd
	ethP8021Q      = 0x8100
	ethP8021AD     = 0x88a8
	packetOutgoing = 4
)

// ErrFilterTooLong is returned when the program exceeds the kernel's
// BPF_MAXINSNS.
var ErrFilterTooLong = errors.New("afpacket: filter longer than 4096 instructions")

// Program assembles f into classic BPF for an AF_PACKET SOCK_DGRAM socket
// (the data starts at the network header; skb->protocol and the packet type
// are read with the kernel's ancillary loads).
func (f Filter) Program() ([]bpf.RawInstruction, error) {
	a := &asm{}
	a.emit(bpf.LoadExtension{Num: bpf.ExtType})
	a.jumpIf(bpf.JumpEqual, packetOutgoing, "reject")
	a.emit(bpf.LoadExtension{Num: bpf.ExtProto})
	a.jumpIf(bpf.JumpEqual, ethPIPv4, "is_v4")
	a.jumpIf(bpf.JumpEqual, ethPIPv6, "is_v6")
	a.jumpIf(bpf.JumpEqual, ethP8021Q, "vlan")
	a.jumpIf(bpf.JumpEqual, ethP8021AD, "vlan")
	a.jump("reject")
	// The kernel may report the inner protocol of a QinQ frame whose inner
	// tag is still in the data: trust the version nibble, not the report.
	a.label("is_v4")
	a.emit(bpf.LoadAbsolute{Off: 0, Size: 1})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf0})
	a.jumpIf(bpf.JumpEqual, 0x40, "v4_0")
	a.jump("vlan")
	a.label("is_v6")
	a.emit(bpf.LoadAbsolute{Off: 0, Size: 1})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf0})
	a.jumpIf(bpf.JumpEqual, 0x60, "v6_0")
	a.label("vlan")
	a.emit(bpf.LoadAbsolute{Off: 2, Size: 2})
	a.jumpIf(bpf.JumpEqual, ethPIPv4, "tag_v4")
	a.jumpIf(bpf.JumpEqual, ethPIPv6, "tag_v6")
	a.jump("reject")
	a.label("tag_v4")
	a.emit(bpf.LoadAbsolute{Off: 4, Size: 1})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf0})
	a.jumpIf(bpf.JumpEqual, 0x40, "v4_4")
	a.jump("reject")
	a.label("tag_v6")
	a.emit(bpf.LoadAbsolute{Off: 4, Size: 1})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf0})
	a.jumpIf(bpf.JumpEqual, 0x60, "v6_4")
	a.jump("reject")
	for _, off := range []uint32{0, 4} {
		a.label(fmt.Sprintf("v4_%d", off))
		a.emit(bpf.LoadAbsolute{Off: off + 6, Size: 2})
		a.jumpIf(bpf.JumpBitsSet, 0x1fff, "reject") // a later fragment: no ports
		a.emit(bpf.LoadAbsolute{Off: off + 9, Size: 1})
		a.emit(bpf.StoreScratch{Src: bpf.RegA, N: 0})
		a.emit(bpf.LoadMemShift{Off: off})
		if off != 0 {
			a.emit(bpf.TXA{})
			a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: off})
			a.emit(bpf.TAX{})
		}
		a.jump("l4")
		a.label(fmt.Sprintf("v6_%d", off))
		a.emit(bpf.LoadAbsolute{Off: off + 6, Size: 1})
		a.emit(bpf.StoreScratch{Src: bpf.RegA, N: 0})
		for _, ext := range []uint32{0, 43, 44, 60} { // hop-by-hop, routing, fragment, destination options
			a.jumpIf(bpf.JumpEqual, ext, "accept")
		}
		a.emit(bpf.LoadConstant{Dst: bpf.RegX, Val: off + 40})
		a.jump("l4")
	}
	a.label("l4")
	a.emit(bpf.LoadScratch{Dst: bpf.RegA, N: 0})
	a.jumpIf(bpf.JumpEqual, uint32(service.TCP), "tcp")
	a.jumpIf(bpf.JumpEqual, uint32(service.UDP), "udp")
	a.jump("reject")
	for _, proto := range []service.Proto{service.TCP, service.UDP} {
		a.label(proto.String())
		for i, r := range f.Rules {
			if r.Proto != proto {
				continue
			}
			next := fmt.Sprintf("%s_rule%d_next", proto, i)
			if len(r.Ports) > 0 {
				ok := fmt.Sprintf("%s_rule%d_port", proto, i)
				a.emit(bpf.LoadIndirect{Off: 2, Size: 2})
				for j, pr := range r.Ports {
					if pr.First == pr.Last {
						a.jumpIf(bpf.JumpEqual, uint32(pr.First), ok)
						continue
					}
					skip := fmt.Sprintf("%s_rule%d_range%d", proto, i, j)
					a.jumpIfNot(bpf.JumpGreaterOrEqual, uint32(pr.First), skip)
					a.jumpIfNot(bpf.JumpGreaterThan, uint32(pr.Last), ok)
					a.label(skip)
				}
				a.jump(next)
				a.label(ok)
			}
			if proto == service.TCP && len(r.Flags) > 0 {
				for _, c := range r.Flags {
					a.emit(bpf.LoadIndirect{Off: 13, Size: 1})
					a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: uint32(c.Set | c.Clear)})
					a.jumpIf(bpf.JumpEqual, uint32(c.Set), "accept")
				}
				a.jump(next)
			}
			a.jump("accept")
			a.label(next)
		}
		a.jump("reject")
	}
	a.label("accept")
	a.emit(bpf.RetConstant{Val: snapLen})
	a.label("reject")
	a.emit(bpf.RetConstant{Val: 0})
	insns, err := a.resolve()
	if err != nil {
		return nil, err
	}
	if len(insns) > 4096 {
		return nil, ErrFilterTooLong
	}
	return bpf.Assemble(insns)
}

// asm is a tiny assembler with labels. A conditional jump to a label is
// emitted as a conditional skip over an unconditional jump (which has a
// 32-bit offset), so targets may be arbitrarily far.
type asm struct {
	insns  []bpf.Instruction
	labels map[string]int
	fixups map[int]string // index of a bpf.Jump → target label
}

func (a *asm) emit(i bpf.Instruction) { a.insns = append(a.insns, i) }

func (a *asm) label(name string) {
	if a.labels == nil {
		a.labels = map[string]int{}
	}
	a.labels[name] = len(a.insns)
}

func (a *asm) jump(target string) {
	if a.fixups == nil {
		a.fixups = map[int]string{}
	}
	a.fixups[len(a.insns)] = target
	a.emit(bpf.Jump{})
}

// jumpIf goes to target when A <cond> val.
func (a *asm) jumpIf(cond bpf.JumpTest, val uint32, target string) {
	a.emit(bpf.JumpIf{Cond: cond, Val: val, SkipTrue: 0, SkipFalse: 1})
	a.jump(target)
}

// jumpIfNot goes to target unless A <cond> val.
func (a *asm) jumpIfNot(cond bpf.JumpTest, val uint32, target string) {
	a.emit(bpf.JumpIf{Cond: cond, Val: val, SkipTrue: 1, SkipFalse: 0})
	a.jump(target)
}

func (a *asm) resolve() ([]bpf.Instruction, error) {
	for at, name := range a.fixups {
		to, ok := a.labels[name]
		if !ok {
			return nil, fmt.Errorf("afpacket: filter: undefined label %q", name)
		}
		if to <= at {
			return nil, fmt.Errorf("afpacket: filter: backward jump to %q", name)
		}
		a.insns[at] = bpf.Jump{Skip: uint32(to - at - 1)}
	}
	return a.insns, nil
}

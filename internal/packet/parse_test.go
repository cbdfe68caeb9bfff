package packet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
	"unsafe"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/sesame-gw/sesame/internal/service"
)

var (
	src4 = netip.MustParseAddr("192.0.2.10")
	dst4 = netip.MustParseAddr("198.51.100.1")
	src6 = netip.MustParseAddr("2001:db8::10")
	dst6 = netip.MustParseAddr("2001:db8::1")
)

// ext is one IPv6 extension header for withExt: its protocol number and its
// bytes without the next-header byte (which withExt fills in).
type ext struct {
	proto byte
	body  []byte
}

// hdrExt returns an options-style extension header (hop-by-hop, routing,
// destination options) of n*8 bytes, padded with PadN.
func hdrExt(proto byte, n int) ext {
	b := make([]byte, n*8)
	b[1] = byte(n - 1) // Hdr Ext Len
	if proto == protoRouting {
		b[2] = 4 // routing type 4 (segment routing), segments left 0
		return ext{proto, b}
	}
	b[2], b[3] = 1, byte(len(b)-4) // PadN covering the rest
	return ext{proto, b}
}

func fragExt(offset uint16, more bool) ext {
	b := make([]byte, 8)
	v := offset << 3
	if more {
		v |= 1
	}
	binary.BigEndian.PutUint16(b[2:4], v)
	binary.BigEndian.PutUint32(b[4:8], 0xdecafbad)
	return ext{protoFragment, b}
}

// withExt inserts extension headers between the IPv6 header of pkt and its
// transport header, chaining next-header fields and fixing the payload
// length.
func withExt(pkt []byte, exts ...ext) []byte {
	out := append([]byte(nil), pkt[:40]...)
	transport := pkt[6]
	prev := 6 // offset of the next-header field to patch
	for _, e := range exts {
		out[prev] = e.proto
		prev = len(out)
		out = append(out, e.body...)
	}
	out[prev] = transport
	out = append(out, pkt[40:]...)
	binary.BigEndian.PutUint16(out[4:6], uint16(len(out)-40))
	return out
}

func TestParseBuilt(t *testing.T) {
	payload := []byte("knock knock")
	tests := []struct {
		name string
		pkt  []byte
		want Packet
	}{
		{"ipv4 tcp syn", BuildIPv4TCP(src4, dst4, 40000, 22, SYN),
			Packet{Src: src4, Dst: dst4, Proto: service.TCP, SrcPort: 40000, DstPort: 22, Flags: SYN}},
		{"ipv4 udp", BuildUDP(src4, dst4, 5000, 62201, payload),
			Packet{Src: src4, Dst: dst4, Proto: service.UDP, SrcPort: 5000, DstPort: 62201, Payload: payload}},
		{"ipv6 udp", BuildUDP(src6, dst6, 5000, 62201, payload),
			Packet{Src: src6, Dst: dst6, Proto: service.UDP, SrcPort: 5000, DstPort: 62201, Payload: payload}},
		{"ipv6 tcp all flags with payload", BuildTCP(src6, dst6, 1, 65535, 0xff, payload),
			Packet{Src: src6, Dst: dst6, Proto: service.TCP, SrcPort: 1, DstPort: 65535, Flags: 0xff, Payload: payload}},
		{"ipv4 udp empty", BuildUDP(src4, dst4, 1, 2, nil),
			Packet{Src: src4, Dst: dst4, Proto: service.UDP, SrcPort: 1, DstPort: 2}},
		{"ipv6 ext chain", withExt(BuildUDP(src6, dst6, 7, 8, payload),
			hdrExt(protoHopByHop, 1), hdrExt(protoDstOpts, 2), hdrExt(protoRouting, 3),
			fragExt(0, false), hdrExt(protoDstOpts, 1)),
			Packet{Src: src6, Dst: dst6, Proto: service.UDP, SrcPort: 7, DstPort: 8, Payload: payload}},
		{"ipv6 first fragment", withExt(BuildUDP(src6, dst6, 7, 8, payload), fragExt(0, true)),
			Packet{Src: src6, Dst: dst6, Proto: service.UDP, SrcPort: 7, DstPort: 8, Payload: payload, Fragment: true}},
		{"ipv4 trailing link padding", append(BuildUDP(src4, dst4, 1, 2, []byte("x")), 0, 0, 0, 0),
			Packet{Src: src4, Dst: dst4, Proto: service.UDP, SrcPort: 1, DstPort: 2, Payload: []byte("x")}},
		{"ipv6 trailing link padding", append(BuildTCP(src6, dst6, 1, 2, ACK, []byte("x")), 0, 0),
			Packet{Src: src6, Dst: dst6, Proto: service.TCP, SrcPort: 1, DstPort: 2, Flags: ACK, Payload: []byte("x")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.pkt)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			assertPacket(t, got, tt.want)
			assertWithin(t, got.Payload, tt.pkt)
		})
	}
}

func TestParseIPv4AddressesAre4Byte(t *testing.T) {
	got, err := Parse(BuildUDP(src4, dst4, 1, 2, nil))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Src.Is4() || !got.Dst.Is4() || got.Src.BitLen() != 32 {
		t.Errorf("Src %v Dst %v: want plain 4-byte addresses", got.Src, got.Dst)
	}
}

func TestParseIPv4Fragments(t *testing.T) {
	pkt := BuildUDP(src4, dst4, 1111, 2222, []byte("0123456789abcdef"))
	// First fragment: MF set, offset 0, and the IP packet cut after 8 bytes
	// of UDP payload while the UDP length still counts the whole datagram.
	first := append([]byte(nil), pkt[:20+8+8]...)
	binary.BigEndian.PutUint16(first[2:4], uint16(len(first)))
	binary.BigEndian.PutUint16(first[6:8], 0x2000)
	got, err := Parse(first)
	if err != nil {
		t.Fatalf("first fragment: %v", err)
	}
	assertPacket(t, got, Packet{Src: src4, Dst: dst4, Proto: service.UDP, SrcPort: 1111, DstPort: 2222,
		Payload: []byte("01234567"), Fragment: true})

	later := append([]byte(nil), pkt...)
	binary.BigEndian.PutUint16(later[6:8], 0x2000|3) // offset 24 bytes
	if _, err := Parse(later); !errors.Is(err, ErrFragment) {
		t.Errorf("non-first fragment: err %v, want ErrFragment", err)
	}
	last := append([]byte(nil), pkt...)
	binary.BigEndian.PutUint16(last[6:8], 1) // MF clear, offset 8 bytes
	if _, err := Parse(last); !errors.Is(err, ErrFragment) {
		t.Errorf("last fragment: err %v, want ErrFragment", err)
	}
}

func TestParseErrors(t *testing.T) {
	v4 := BuildUDP(src4, dst4, 1, 2, []byte("payload"))
	v4tcp := BuildIPv4TCP(src4, dst4, 1, 2, SYN)
	v6 := BuildUDP(src6, dst6, 1, 2, []byte("payload"))
	mod := func(b []byte, f func(b []byte)) []byte {
		b = append([]byte(nil), b...)
		f(b)
		return b
	}
	manyExt := make([]ext, maxExtHeaders+1)
	for i := range manyExt {
		manyExt[i] = hdrExt(protoDstOpts, 1)
	}
	tests := []struct {
		name string
		pkt  []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"version 5", mod(v4, func(b []byte) { b[0] = 0x55 }), ErrUnsupported},
		{"version 0", []byte{0}, ErrUnsupported},
		{"ipv4 short", v4[:19], ErrTruncated},
		{"ipv4 ihl 4", mod(v4, func(b []byte) { b[0] = 0x44 }), ErrMalformed},
		{"ipv4 ihl past total", mod(v4, func(b []byte) { b[0] = 0x4f }), ErrMalformed},
		{"ipv4 total < ihl", mod(v4, func(b []byte) { binary.BigEndian.PutUint16(b[2:4], 19) }), ErrMalformed},
		{"ipv4 total 0", mod(v4, func(b []byte) { binary.BigEndian.PutUint16(b[2:4], 0) }), ErrMalformed},
		{"ipv4 total past capture", v4[:len(v4)-1], ErrTruncated},
		{"ipv4 icmp", mod(v4, func(b []byte) { b[9] = 1 }), ErrUnsupported},
		{"ipv4 udp short", mod(v4[:27], func(b []byte) { binary.BigEndian.PutUint16(b[2:4], 27) }), ErrTruncated},
		{"udp length 7", mod(v4, func(b []byte) { binary.BigEndian.PutUint16(b[24:26], 7) }), ErrMalformed},
		{"udp length past ip", mod(v4, func(b []byte) { binary.BigEndian.PutUint16(b[24:26], 16) }), ErrTruncated},
		{"tcp short", mod(v4tcp[:39], func(b []byte) { binary.BigEndian.PutUint16(b[2:4], 39) }), ErrTruncated},
		{"tcp offset 4", mod(v4tcp, func(b []byte) { b[32] = 4 << 4 }), ErrMalformed},
		{"tcp offset past packet", mod(v4tcp, func(b []byte) { b[32] = 6 << 4 }), ErrTruncated},
		{"ipv6 short", v6[:39], ErrTruncated},
		{"ipv6 payload length past capture", v6[:len(v6)-1], ErrTruncated},
		{"ipv6 no next header", mod(v6, func(b []byte) { b[6] = 59 }), ErrUnsupported},
		{"ipv6 esp", mod(v6, func(b []byte) { b[6] = 50 }), ErrUnsupported},
		{"ipv6 mapped source", mod(v6, func(b []byte) { copy(b[8:24], netip.MustParseAddr("::ffff:192.0.2.1").AsSlice()) }), ErrMalformed},
		{"ipv6 mapped destination", mod(v6, func(b []byte) { copy(b[24:40], netip.MustParseAddr("::ffff:192.0.2.1").AsSlice()) }), ErrMalformed},
		{"ipv6 hop-by-hop not first", withExt(v6, hdrExt(protoDstOpts, 1), hdrExt(protoHopByHop, 1)), ErrMalformed},
		{"ipv6 too many ext", withExt(v6, manyExt...), ErrMalformed},
		{"ipv6 ext past packet", mod(withExt(v6, hdrExt(protoDstOpts, 1)), func(b []byte) { b[41] = 200 }), ErrTruncated},
		{"ipv6 ext short", withExt(BuildUDP(src6, dst6, 1, 2, nil)[:40], ext{protoDstOpts, []byte{0, 0, 0, 0}}), ErrTruncated},
		{"ipv6 later fragment", withExt(v6, fragExt(1, true)), ErrFragment},
		{"ipv6 last fragment", withExt(v6, fragExt(100, false)), ErrFragment},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(tt.pkt)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if p.Src.IsValid() || p.Payload != nil || p.Proto != 0 {
				t.Errorf("error with non-zero packet %+v", p)
			}
		})
	}
}

// TestParseMatchesGopacket parses packets serialized by gopacket (IP and TCP
// options, which the builders do not produce) and compares with gopacket's
// own decoding.
func TestParseMatchesGopacket(t *testing.T) {
	payload := gopacket.Payload("spa datagram body")
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	serialize := func(ls ...gopacket.SerializableLayer) []byte {
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	ip4 := func(proto layers.IPProtocol) *layers.IPv4 {
		return &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, Flags: layers.IPv4DontFragment,
			SrcIP: net.IP(src4.AsSlice()), DstIP: net.IP(dst4.AsSlice()),
			Options: []layers.IPv4Option{{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}}}} // router alert
	}
	ip6 := func(proto layers.IPProtocol) *layers.IPv6 {
		return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto,
			SrcIP: net.IP(src6.AsSlice()), DstIP: net.IP(dst6.AsSlice())}
	}
	tcp := func() *layers.TCP {
		return &layers.TCP{SrcPort: 43210, DstPort: 7000, SYN: true, ECE: true, CWR: true, Seq: 77, Window: 1000,
			Options: []layers.TCPOption{
				{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{5, 0xb4}},
				{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
				{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
			}}
	}
	udp := &layers.UDP{SrcPort: 5353, DstPort: 62201}

	var pkts [][]byte
	t4, u4, t6, u6 := tcp(), *udp, tcp(), *udp
	i4 := ip4(layers.IPProtocolTCP)
	_ = t4.SetNetworkLayerForChecksum(i4)
	pkts = append(pkts, serialize(i4, t4, payload))
	i4u := ip4(layers.IPProtocolUDP)
	_ = u4.SetNetworkLayerForChecksum(i4u)
	pkts = append(pkts, serialize(i4u, &u4, payload))
	i6 := ip6(layers.IPProtocolTCP)
	_ = t6.SetNetworkLayerForChecksum(i6)
	pkts = append(pkts, serialize(i6, t6, payload))
	i6u := ip6(layers.IPProtocolUDP)
	_ = u6.SetNetworkLayerForChecksum(i6u)
	u6pkt := serialize(i6u, &u6, payload)
	pkts = append(pkts, u6pkt,
		withExt(u6pkt, hdrExt(protoHopByHop, 2)), withExt(u6pkt, fragExt(0, false)))

	for i, pkt := range pkts {
		got, err := Parse(pkt)
		if err != nil {
			t.Fatalf("packet %d: Parse: %v", i, err)
		}
		want, ok := gopacketDecode(pkt)
		if !ok {
			t.Fatalf("packet %d: gopacket did not decode it", i)
		}
		assertPacket(t, got, want)
		if !bytes.Equal(got.Payload, payload) {
			t.Errorf("packet %d: payload %q", i, got.Payload)
		}
	}
	if got, _ := Parse(pkts[0]); got.Flags != SYN|ECE|CWR {
		t.Errorf("flags %v, want SYN|ECE|CWR", got.Flags)
	}
}

func TestParseDoesNotAllocate(t *testing.T) {
	pkts := [][]byte{
		BuildIPv4TCP(src4, dst4, 1, 2, SYN),
		withExt(BuildUDP(src6, dst6, 1, 2, []byte("x")), hdrExt(protoHopByHop, 1), fragExt(0, true)),
		BuildUDP(src4, dst4, 1, 2, nil)[:10], // an error path
	}
	for _, pkt := range pkts {
		if n := testing.AllocsPerRun(100, func() { _, _ = Parse(pkt) }); n != 0 {
			t.Errorf("Parse allocates %v times per call", n)
		}
	}
}

func TestTCPFlagsString(t *testing.T) {
	for f, want := range map[TCPFlags]string{0: "0", SYN: "SYN", SYN | ACK: "SYN|ACK", 0xff: "FIN|SYN|RST|PSH|ACK|URG|ECE|CWR"} {
		if got := f.String(); got != want {
			t.Errorf("%#x.String() = %q, want %q", uint8(f), got, want)
		}
	}
	if !(SYN | ACK).Has(SYN) || SYN.Has(SYN|ACK) {
		t.Error("Has")
	}
}

func BenchmarkParse(b *testing.B) {
	cases := []struct {
		name string
		pkt  []byte
	}{
		{"ipv4-tcp-syn", BuildIPv4TCP(src4, dst4, 40000, 22, SYN)},
		{"ipv4-udp-200B", BuildUDP(src4, dst4, 40000, 62201, make([]byte, 200))},
		{"ipv6-udp-200B", BuildUDP(src6, dst6, 40000, 62201, make([]byte, 200))},
		{"ipv6-3ext-udp", withExt(BuildUDP(src6, dst6, 40000, 62201, make([]byte, 200)),
			hdrExt(protoHopByHop, 1), hdrExt(protoRouting, 3), hdrExt(protoDstOpts, 1))},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.pkt)))
			for b.Loop() {
				if _, err := Parse(c.pkt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// The alternative considered: gopacket's DecodingLayerParser, reused. It
	// cannot walk routing or destination-options headers, so the last case
	// is left out.
	for _, c := range cases[:len(cases)-1] {
		b.Run("gopacket-"+c.name, func(b *testing.B) {
			b.ReportAllocs()
			d := newGopacketDecoder()
			for b.Loop() {
				if _, ok := d.decode(c.pkt); !ok {
					b.Fatal("gopacket failed")
				}
			}
		})
	}
}

func assertPacket(t *testing.T, got, want Packet) {
	t.Helper()
	if got.Src != want.Src || got.Dst != want.Dst || got.Proto != want.Proto ||
		got.SrcPort != want.SrcPort || got.DstPort != want.DstPort ||
		got.Flags != want.Flags || got.Fragment != want.Fragment ||
		!bytes.Equal(got.Payload, want.Payload) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

// assertWithin checks that sub lies inside b's bytes (Payload aliases the
// input, never anything else).
func assertWithin(t *testing.T, sub, b []byte) {
	t.Helper()
	if len(sub) == 0 {
		return
	}
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	s := uintptr(unsafe.Pointer(unsafe.SliceData(sub)))
	if s < lo || s+uintptr(len(sub)) > lo+uintptr(len(b)) {
		t.Fatalf("payload [%#x,+%d) outside input [%#x,+%d)", s, len(sub), lo, len(b))
	}
}

//go:build linux

package nftables

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables/expr"

	"github.com/sesame-gw/sesame/internal/capture/nflog"
	"github.com/sesame-gw/sesame/internal/firewall"
	"github.com/sesame-gw/sesame/internal/service"
)

// The two shapes sesame serve installs: native SPA and fwknop.
var spaShapes = firewall.DatagramFilter{
	Ports: []uint16{62201},
	Shapes: []firewall.DatagramShape{
		{MinLen: 89, MaxLen: 1232, FirstBytes: []byte{0xD3}},
		{MinLen: 140, MaxLen: 1500, FirstBytes: []byte("89+/")},
	},
}

func TestDatagramFilterBounds(t *testing.T) {
	lo, hi, first := spaShapes.Bounds()
	if lo != 89 || hi != 1500 || string(first) != "+/89\xd3" {
		t.Errorf("Bounds = %d %d %q", lo, hi, first)
	}
	anyFirst := firewall.DatagramFilter{Ports: []uint16{1}, Shapes: append(spaShapes.Shapes, firewall.DatagramShape{MinLen: 10, MaxLen: 20})}
	if lo, _, first := anyFirst.Bounds(); lo != 10 || first != nil {
		t.Errorf("a shape without first bytes: %d %q", lo, first)
	}
	if (firewall.DatagramFilter{Ports: []uint16{1}}).Active() || (firewall.DatagramFilter{Shapes: spaShapes.Shapes}).Active() {
		t.Error("a filter without ports or shapes is active")
	}
	for _, bad := range []firewall.DatagramFilter{
		{Ports: []uint16{0}, Shapes: spaShapes.Shapes},
		{Ports: []uint16{1}, Shapes: []firewall.DatagramShape{{MinLen: 0, MaxLen: 10}}},
		{Ports: []uint16{1}, Shapes: []firewall.DatagramShape{{MinLen: 20, MaxLen: 10}}},
		{Ports: []uint16{1}, Shapes: []firewall.DatagramShape{{MinLen: 1, MaxLen: 70000}}},
		{Ports: []uint16{1}, Shapes: []firewall.DatagramShape{{MinLen: 1, MaxLen: 10, FirstBytes: []byte("0123456789abcdefg")}}},
	} {
		l := goldenLayout
		l.Datagrams = bad
		if _, err := layoutElems(l); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", bad, err)
		}
	}
}

func TestDatagramRules(t *testing.T) {
	dg, err := datagramFilter(firewall.DatagramFilter{Ports: []uint16{62201, 62201, 5000}, Shapes: spaShapes.Shapes})
	if err != nil {
		t.Fatal(err)
	}
	rs := datagramRules(dg, 7, 0, 0)
	if len(rs) != 4 {
		t.Fatalf("%d rules, want 2 per port", len(rs))
	}
	if n := len(datagramRules(dg, 7, 8, 5000)); n != 6 {
		t.Fatalf("with a bulk group: %d rules, want 3 per port", n)
	}
	r := rs[0] // port 5000 (sorted), length rule
	if c := r[3].(*expr.Cmp); c.Data[0] != 0x13 || c.Data[1] != 0x88 {
		t.Errorf("port bytes % x", c.Data)
	}
	if rg := r[5].(*expr.Range); rg.Op != expr.CmpOpNeq || string(rg.FromData) != "\x00\x61" || string(rg.ToData) != "\x05\xe4" {
		t.Errorf("length range %+v (want udp length 97..1508)", rg)
	}
	if v := r[len(r)-1].(*expr.Verdict); v.Kind != expr.VerdictDrop {
		t.Errorf("verdict %v", v.Kind)
	}
	if first := rs[1]; len(first) != 4+1+5+1 {
		t.Errorf("first-byte rule has %d expressions", len(first))
	}
	// No filter, no rules; any first byte, one rule per port.
	if rs := datagramRules(dgramFilter{}, 7, 8, 100); len(rs) != 0 {
		t.Errorf("empty filter: %d rules", len(rs))
	}
	anyFirst, _ := datagramFilter(firewall.DatagramFilter{Ports: []uint16{1}, Shapes: []firewall.DatagramShape{{MinLen: 1, MaxLen: 9}}})
	if rs := datagramRules(anyFirst, 7, 0, 0); len(rs) != 1 {
		t.Errorf("any first byte: %d rules", len(rs))
	}
}

// In the kernel: datagrams to the SPA port that fit a shape reach the
// NFLOG group, the others are dropped before it; the listing shows the
// rules, and a Setup without the filter removes them.
func TestKernelDatagramFilter(t *testing.T) {
	ns := newNetNS(t)
	requireTool(t, "nft")
	run(t, "ip", "-n", ns.name, "link", "set", "lo", "up")
	f := newNSFirewall(t, ns)
	l := firewall.Layout{
		Protected: []service.Service{ssh},
		Watched:   []service.Service{{Proto: service.UDP, Port: 62201}, {Proto: service.UDP, Port: 9000}},
		LogGroup:  7,
		// With a bulk group: the shaped datagrams' own share of group 7.
		BulkLogGroup: 8,
		LogRate:      5000,
		Interfaces:   []string{"lo"}, // the test sends on loopback
		Datagrams:    spaShapes,
	}
	setup(t, f, l)
	out := ns.nft(t, "list", "chain", "inet", "sesame", "input")
	for _, want := range []string{
		"udp dport 62201 udp length != 97-1508 drop",
		"@th,64,8 != 0x2b @th,64,8 != 0x2f @th,64,8 != 0x38 @th,64,8 != 0x39 @th,64,8 != 0xd3 drop",
		"udp dport 62201 limit rate 5000/second burst 5000 packets log group 7 queue-threshold 1 drop",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("chain lacks %q:\n%s", want, out)
		}
	}

	src, err := nflog.Open(context.Background(), nflog.Config{Group: 7, NetNS: ns.fd()})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	send := func(port int, payload []byte) {
		t.Helper()
		err := inNetNS(ns, func() error {
			c, err := net.Dial("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write(payload)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	pad := func(first byte, n int) []byte {
		b := []byte(strings.Repeat("A", n))
		b[0] = first
		return b
	}
	// Dropped by the filter: wrong first byte, too short, too long.
	send(62201, pad('A', 200))
	send(62201, pad(0xD3, 40))
	send(62201, pad('+', 1600))
	// Logged: each shape, and anything to a watched port without a filter.
	want := []int{len(pad(0xD3, 100)), len(pad('+', 300)), 5}
	send(62201, pad(0xD3, 100))
	send(62201, pad('+', 300))
	send(9000, []byte("knock"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i, n := range want {
		p, err := src.ReadPacket(ctx)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if len(p.Payload) != n {
			t.Errorf("packet %d: %d-byte payload logged, want %d (a filtered datagram got through?)", i, len(p.Payload), n)
		}
	}
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if p, err := src.ReadPacket(short); err == nil {
		t.Errorf("unexpected packet logged: %d bytes to %d", len(p.Payload), p.DstPort)
	}

	l.Datagrams = firewall.DatagramFilter{}
	setup(t, f, l)
	if out := ns.nft(t, "list", "chain", "inet", "sesame", "input"); strings.Contains(out, "udp length") {
		t.Errorf("filter rules survive a Setup without a filter:\n%s", out)
	}
}

//go:build linux

package afpacket

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sesame-gw/sesame/internal/capture"
	"github.com/sesame-gw/sesame/internal/netns"
	"github.com/sesame-gw/sesame/internal/netns/netnstest"
	"github.com/sesame-gw/sesame/internal/packet"
	"github.com/sesame-gw/sesame/internal/service"
)

// openIn opens a Source inside namespace ns: the socket keeps the
// namespace it was created in (see package netns).
func openIn(t *testing.T, ns string, cfg Config) *Source {
	t.Helper()
	var s *Source
	inNS(t, ns, func() (err error) {
		s, err = Open(cfg)
		return err
	})
	t.Cleanup(func() { s.Close() })
	return s
}

// knockFilter delivers SYNs to 7000/tcp and datagrams to 8000/udp.
var knockFilter = Filter{Rules: []Rule{
	{Proto: service.TCP, Ports: []PortRange{{7000, 7000}}, Flags: []FlagCond{{Set: packet.SYN, Clear: packet.ACK}}},
	{Proto: service.UDP, Ports: []PortRange{{8000, 8000}}},
}}

// collect reads packets until none arrived for quiet.
func collect(t *testing.T, s *Source, quiet time.Duration) []capture.Packet {
	t.Helper()
	var out []capture.Packet
	for {
		ctx, cancel := context.WithTimeout(context.Background(), quiet)
		p, err := s.ReadPacket(ctx)
		cancel()
		if err != nil {
			if err == context.DeadlineExceeded {
				return out
			}
			t.Fatal(err)
		}
		out = append(out, p)
		if len(out) > 100 {
			t.Fatal("too many packets")
		}
	}
}

func knockFromClient(t *testing.T, b *netns.Bench, from, to netip.Addr) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	// A SYN to 7000 (refused: nothing listens), one to 22 (filtered out),
	// and a datagram to 8000.
	for _, port := range []uint16{7000, 22} {
		if c, err := b.DialTCP(ctx, b.Client, from, netip.AddrPortFrom(to, port)); err == nil {
			c.Close()
		}
	}
	if err := b.SendUDP(b.Client, from, netip.AddrPortFrom(to, 8000), []byte("k")); err != nil {
		t.Fatal(err)
	}
}

func services(ps []capture.Packet) string {
	s := ""
	for _, p := range ps {
		s += fmt.Sprintf("%v>%v %v %s; ", p.Src, p.Dst, p.Service(), p.Iface)
	}
	return s
}

func TestSourceInNamespace(t *testing.T) {
	b := netnstest.New(t, netns.Options{Name: "afp"})
	src := openIn(t, b.GW, Config{Interfaces: []string{netns.GWIf}, Filter: knockFilter})
	for _, f := range []struct{ from, to netip.Addr }{{b.Client4, b.GW4}, {b.Client6, b.GW6}} {
		knockFromClient(t, b, f.from, f.to)
		got := collect(t, src, 300*time.Millisecond)
		// Exactly the SYN to 7000 and the datagram to 8000: no SYN/ACK or
		// RST the gateway sent back, nothing to port 22.
		if len(got) != 2 || got[0].Service() != (service.Service{Proto: service.TCP, Port: 7000}) ||
			got[1].Service() != (service.Service{Proto: service.UDP, Port: 8000}) ||
			got[0].Src != f.from || got[0].Dst != f.to || got[0].Iface != netns.GWIf || got[0].Flags != packet.SYN {
			t.Fatalf("%v: got %s", f.from, services(got))
		}
	}
	if st := src.Stats(); st.Received != 4 {
		t.Fatalf("stats %+v", st)
	}
	// Another interface only: nothing.
	lo := openIn(t, b.GW, Config{Interfaces: []string{"lo"}, Filter: knockFilter})
	knockFromClient(t, b, b.Client4, b.GW4)
	if got := collect(t, lo, 300*time.Millisecond); len(got) != 0 {
		t.Fatalf("lo saw %s", services(got))
	}
	// SetFilter narrows to UDP.
	if err := src.SetFilter(Filter{Rules: []Rule{{Proto: service.UDP}}}); err != nil {
		t.Fatal(err)
	}
	collect(t, src, 100*time.Millisecond) // what the old filter queued
	knockFromClient(t, b, b.Client4, b.GW4)
	if got := collect(t, src, 300*time.Millisecond); len(got) != 1 || got[0].Proto != service.UDP {
		t.Fatalf("after SetFilter: %s", services(got))
	}
	src.Close()
	if _, err := src.ReadPacket(context.Background()); err != capture.ErrClosed {
		t.Fatalf("after Close: %v", err)
	}
}

// inNS runs fn on a thread in namespace ns.
func inNS(t *testing.T, ns string, fn func() error) {
	t.Helper()
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- err
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			ch <- err
			return
		}
		ch <- fn()
	}()
	if err := <-ch; err != nil {
		t.Fatal(err)
	}
}

// sendFrame sends a raw Ethernet frame out of the client's veth.
func sendFrame(t *testing.T, b *netns.Bench, frame []byte) {
	t.Helper()
	inNS(t, b.Client, func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		ifr, err := unix.NewIfreq(netns.ClientIf)
		if err != nil {
			return err
		}
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
			return err
		}
		return unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: int(ifr.Uint32()), Halen: 6})
	})
}

func gwMAC(t *testing.T, b *netns.Bench) []byte {
	t.Helper()
	var mac []byte
	inNS(t, b.GW, func() error {
		ifi, err := net.InterfaceByName(netns.GWIf)
		if err != nil {
			return err
		}
		mac = ifi.HardwareAddr
		return nil
	})
	return mac
}

// TestSourceVLANTags: frames carrying an 802.1Q tag, and an 802.1ad outer
// tag plus an 802.1Q inner one (QinQ: the kernel moves the outer tag out
// of the data and leaves the inner one in place), are delivered as the IP
// packets they carry (knockd drops them: its issue #89). The frames are
// crafted, so no VLAN driver is needed.
func TestSourceVLANTags(t *testing.T) {
	b := netnstest.New(t, netns.Options{Name: "afpv"})
	src := openIn(t, b.GW, Config{Interfaces: []string{netns.GWIf}, Filter: knockFilter})
	dst := gwMAC(t, b)
	l3 := packet.BuildUDP(b.Client4, b.GW4, 40000, 8000, []byte("k"))
	eth := func(tags ...uint16) []byte {
		f := append(append([]byte{}, dst...), 0x02, 0, 0, 0, 0, 1)
		for i := 0; i+1 < len(tags); i += 2 {
			f = append(f, byte(tags[i]>>8), byte(tags[i]), byte(tags[i+1]>>8), byte(tags[i+1]))
		}
		return append(append(f, 0x08, 0x00), l3...)
	}
	for _, c := range []struct {
		name  string
		frame []byte
	}{
		{"802.1Q", eth(ethP8021Q, 100)},
		{"QinQ", eth(ethP8021AD, 200, ethP8021Q, 300)},
		{"untagged", eth()},
	} {
		sendFrame(t, b, c.frame)
		got := collect(t, src, 300*time.Millisecond)
		if len(got) != 1 || got[0].Src != b.Client4 || got[0].Dst != b.GW4 || got[0].Service() != (service.Service{Proto: service.UDP, Port: 8000}) {
			t.Errorf("%s: got %s", c.name, services(got))
		}
	}
}

func TestDedup(t *testing.T) {
	var d dedup
	t0 := time.Unix(100, 0)
	a, b := []byte{1, 2, 3}, []byte{1, 2, 4}
	if d.seen(a, t0) || !d.seen(a, t0.Add(time.Millisecond)) || d.seen(b, t0) {
		t.Fatal("copy within the window")
	}
	if d.seen(a, t0.Add(dedupWindow+time.Millisecond)) {
		t.Fatal("a later identical packet is a new one")
	}
}

package e2e

import (
	"fmt"
	"net/netip"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sesame-gw/sesame/internal/netns"
	"github.com/sesame-gw/sesame/internal/packet"
	"github.com/sesame-gw/sesame/internal/service"
)

// rawSender sends hand-built IPv4 and IPv6 packets (any TCP flags, any
// source address of the client) from the client namespace: raw sockets
// with the IP header included, created on a thread switched into that
// namespace (sockets keep their namespace; see package netns).
type rawSender struct {
	fd4, fd6 int
}

func newRawSender(t *testing.T, b *netns.Bench) *rawSender {
	t.Helper()
	r := &rawSender{fd4: -1, fd6: -1}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		fd, err := unix.Open("/run/netns/"+b.Client, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			errc <- err
			return
		}
		if r.fd4, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW); err != nil {
			errc <- err
			return
		}
		// IPPROTO_RAW implies the IPv6 header is ours too (IPV6_HDRINCL).
		r.fd6, err = unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		errc <- err
	}()
	if err := <-errc; err != nil {
		t.Fatalf("raw sockets in %s: %v", b.Client, err)
	}
	t.Cleanup(func() { unix.Close(r.fd4); unix.Close(r.fd6) })
	return r
}

var srcPort uint16 = 40000

// send sends one packet from src to dst:svc with TCP flags (ignored for
// UDP). Every packet gets a new source port, as a client's knocks do.
func (r *rawSender) send(t *testing.T, src, dst netip.Addr, svc service.Service, flags packet.TCPFlags) {
	t.Helper()
	srcPort++
	p := packet.Packet{Src: src, Dst: dst, Proto: svc.Proto, SrcPort: srcPort, DstPort: svc.Port}
	if svc.Proto == service.TCP {
		p.Flags = flags
	} else {
		p.Payload = []byte{0}
	}
	b := packet.Build(p)
	var err error
	if dst.Is4() {
		err = unix.Sendto(r.fd4, b, 0, &unix.SockaddrInet4{Addr: dst.As4()})
	} else {
		err = unix.Sendto(r.fd6, b, 0, &unix.SockaddrInet6{Addr: dst.As16()})
	}
	if err != nil {
		t.Fatalf("send %v -> %v %v: %v", src, dst, svc, err)
	}
}

// addClientAddrs gives the client n more addresses of each family inside
// the bench's (blackholed) prefixes, from host number first on.
func addClientAddrs(t *testing.T, b *netns.Bench, first, n int) (v4, v6 []netip.Addr) {
	t.Helper()
	for i := range n {
		a4 := b.Prefix4.Addr().As4()
		a4[3] = byte(first + i)
		a6 := b.Prefix6.Addr().As16()
		a6[15] = byte(first + i)
		v4 = append(v4, netip.AddrFrom4(a4))
		v6 = append(v6, netip.AddrFrom16(a6))
	}
	for i := range n {
		for _, args := range [][]string{
			{"-n", b.Client, "addr", "add", fmt.Sprintf("%s/24", v4[i]), "dev", netns.ClientIf},
			{"-n", b.Client, "addr", "add", fmt.Sprintf("%s/64", v6[i]), "dev", netns.ClientIf, "nodad", "preferred_lft", "0"},
		} {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				t.Fatalf("ip %v: %v %s", args, err, out)
			}
		}
	}
	return v4, v6
}

// pause spaces packets so that every capture sees them in order.
func pause() { time.Sleep(15 * time.Millisecond) }

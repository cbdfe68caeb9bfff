package client

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/service"
)

func TestParseWait(t *testing.T) {
	s, d, err := ParseWait("tcp/22")
	if err != nil || s.String() != "22/tcp" || d != 10*time.Second {
		t.Fatalf("ParseWait = %v %v %v", s, d, err)
	}
	s, d, err = ParseWait("tcp/2222=3s")
	if err != nil || s.Port != 2222 || d != 3*time.Second {
		t.Fatalf("ParseWait = %v %v %v", s, d, err)
	}
	for _, bad := range []string{"udp/53", "tcp/22=x", "tcp/0", "tcp/22=-1s"} {
		if _, _, err := ParseWait(bad); err == nil {
			t.Errorf("ParseWait(%q) accepted", bad)
		}
	}
}

func TestResolveLiteral(t *testing.T) {
	ctx := context.Background()
	if a, err := Resolve(ctx, "::ffff:127.0.0.1", "ip"); err != nil || a != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("Resolve = %v %v", a, err)
	}
	if _, err := Resolve(ctx, "127.0.0.1", "ip6"); err == nil {
		t.Fatal("Resolve gave an IPv4 literal for ip6")
	}
}

// Knocks on loopback: one datagram per UDP step, one connection attempt per
// TCP step, in order.
func TestKnockLoopback(t *testing.T) {
	uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lo := netip.MustParseAddr("127.0.0.1")
	steps := []service.Service{
		{Proto: service.UDP, Port: uint16(uc.LocalAddr().(*net.UDPAddr).Port)},
		{Proto: service.TCP, Port: uint16(ln.Addr().(*net.TCPAddr).Port)},
	}
	if err := Knock(context.Background(), lo, steps, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	uc.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 16)
	n, _, err := uc.ReadFromUDP(buf)
	if err != nil || n != 1 {
		t.Fatalf("UDP knock: %d bytes, %v", n, err)
	}
	// The SYN reached the listener: the kernel completed the handshake and
	// queued the connection (reset right after by our close).
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(2 * time.Second))
	if c, err := ln.Accept(); err != nil {
		t.Fatalf("TCP knock never arrived: %v", err)
	} else {
		c.Close()
	}
}

func TestWaitTCP(t *testing.T) {
	t.Run("native", func(t *testing.T) { testWaitTCP(t, WaitTCP) })
	t.Run("portable", func(t *testing.T) { testWaitTCP(t, waitTCPPortable) })
}

func testWaitTCP(t *testing.T, wait func(context.Context, netip.AddrPort, time.Duration, time.Duration) error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dst := netip.MustParseAddrPort(ln.Addr().String())
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if err := wait(context.Background(), dst, 5*time.Millisecond, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if err := wait(context.Background(), dst, 5*time.Millisecond, 100*time.Millisecond); err == nil {
		t.Fatal("WaitTCP succeeded on a closed port")
	}
}

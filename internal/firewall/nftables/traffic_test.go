//go:build linux

package nftables

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/firewall"
	"github.com/sesame-gw/sesame/internal/service"
)

// TestKernelTraffic sends real TCP between two namespaces joined by a veth
// pair: the protected port is closed before a grant, open with it, and an
// established connection outlives the grant.
func TestKernelTraffic(t *testing.T) {
	gw, cl := newNetNS(t), newNetNS(t)
	x := reservePrefix(t)
	gwIP, clIP := fmt.Sprintf("10.200.%d.1", x), fmt.Sprintf("10.200.%d.2", x)
	id := fmt.Sprintf("%d%d", os.Getpid()%100000, nsSeq.Load())
	gwIf, clIf := "sg"+id, "sc"+id
	run(t, "ip", "link", "add", gwIf, "netns", gw.name, "type", "veth", "peer", "name", clIf, "netns", cl.name)
	for _, c := range []struct {
		ns     *netNS
		dev, a string
	}{{gw, gwIf, gwIP}, {cl, clIf, clIP}} {
		run(t, "ip", "-n", c.ns.name, "addr", "add", c.a+"/24", "dev", c.dev)
		run(t, "ip", "-n", c.ns.name, "link", "set", c.dev, "up")
		run(t, "ip", "-n", c.ns.name, "link", "set", "lo", "up")
	}

	const port, knockPort, openPort = 2222, 7000, 8080
	svc := service.Service{Proto: service.TCP, Port: port}
	f := newNSFirewall(t, gw)
	ctx := context.Background()
	setup(t, f, firewall.Layout{
		Protected: []service.Service{svc},
		Watched:   []service.Service{{Proto: service.TCP, Port: knockPort}},
		LogGroup:  7,
	})
	target := net.JoinHostPort(gwIP, fmt.Sprint(port))
	for _, p := range []int{port, knockPort, openPort} {
		listenIn(t, gw, net.JoinHostPort(gwIP, fmt.Sprint(p)))
	}

	// A dropped SYN is retransmitted after 1 s; 400 ms is one attempt.
	const attempt = 400 * time.Millisecond
	if c, err := dialIn(cl, target, attempt); err == nil {
		c.Close()
		t.Fatal("connected to the protected port without a grant")
	}
	if c, err := dialIn(cl, net.JoinHostPort(gwIP, fmt.Sprint(knockPort)), attempt); err == nil {
		c.Close()
		t.Fatal("connected to a watched (knock) port")
	}
	c, err := dialIn(cl, net.JoinHostPort(gwIP, fmt.Sprint(openPort)), 5*time.Second)
	if err != nil {
		t.Fatalf("an unprotected port is not reachable (the veth setup is broken?): %v", err)
	}
	c.Close()

	grant := firewall.Grant{Addr: netip.MustParseAddr(clIP), Service: svc, TTL: 1500 * time.Millisecond}
	if err := f.Grant(ctx, []firewall.Grant{grant}); err != nil {
		t.Fatal(err)
	}
	conn, err := dialIn(cl, target, 5*time.Second)
	if err != nil {
		t.Fatalf("connect with a grant: %v", err)
	}
	defer conn.Close()
	echo := func(msg string) {
		t.Helper()
		if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(conn, msg); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != msg {
			t.Fatalf("echo of %q: %q, %v", msg, buf, err)
		}
	}
	echo("hello")

	eventually(t, 10*time.Second, "grant expiry", func() bool {
		got, err := f.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(got) == 0
	})
	echo("still established") // ct state established,related accept

	if c, err := dialIn(cl, target, attempt); err == nil {
		c.Close()
		t.Fatal("new connection accepted after the grant expired")
	}
}

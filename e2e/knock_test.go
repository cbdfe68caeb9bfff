package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/netns"
	"github.com/sesame-gw/sesame/internal/netns/netnstest"
)

const (
	svcPort  = 2222 // the protected service
	grantTTL = 3 * time.Second
)

func knockConfig(t *testing.T) string {
	return fmt.Sprintf(`[gateway]
state_dir = %q
log_level = "debug"

[[door]]
name = "ssh"
sequence = ["7000/tcp", "8000/udp", "9000/tcp"]
seq_timeout = "10s"
open = ["%d/tcp"]
duration = "%s"
`, t.TempDir(), svcPort, grantTTL)
}

// serveService starts the protected TCP service in the gateway namespace:
// it echoes one line back, so a test can tell a live session from a dead one.
func serveService(t *testing.T, b *netns.Bench) {
	t.Helper()
	for _, a := range []netip.Addr{b.GW4, b.GW6} {
		l, err := b.ListenTCP(b.GW, netip.AddrPortFrom(a, svcPort))
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				c, err := l.AcceptTCP()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					c.SetDeadline(time.Now().Add(30 * time.Second))
					r := bufio.NewReader(c)
					for {
						line, err := r.ReadString('\n')
						if err != nil {
							return
						}
						c.Write([]byte(line))
					}
				}()
			}
		}()
	}
}

func families(b *netns.Bench) []struct {
	name           string
	gw, cl, second netip.Addr
} {
	return []struct {
		name           string
		gw, cl, second netip.Addr
	}{{"ipv4", b.GW4, b.Client4, b.Client4b}, {"ipv6", b.GW6, b.Client6, b.Client6b}}
}

// The core promise: hidden, knock, open for that source only, closed on
// time, a live session survives the close; IPv4 and IPv6.
func TestKnockOpensForThatSourceOnly(t *testing.T) {
	b := newBench(t)
	serveService(t, b)
	g := startGateway(t, b, knockConfig(t))
	for _, f := range families(b) {
		t.Run(f.name, func(t *testing.T) {
			dst := netip.AddrPortFrom(f.gw, svcPort)
			hidden(t, b, f.cl, dst)
			run(t, b, b.Client, 10*time.Second, false, sesameBin, "knock", f.gw.String(), "7000/tcp", "8000/udp", "9000/tcp", "--wait", fmt.Sprintf("tcp/%d=5s", svcPort))
			reachable(t, b, f.cl, dst)
			hidden(t, b, f.second, dst) // another source stays blocked

			// A session opened during the grant outlives it.
			c, err := b.DialTCP(context.Background(), b.Client, f.cl, dst)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			waitHidden(t, b, dst, grantTTL+3*time.Second)
			c.SetDeadline(time.Now().Add(3 * time.Second))
			if _, err := c.Write([]byte("still there?\n")); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil || line != "still there?\n" {
				t.Fatalf("established session cut at expiry: %q %v", line, err)
			}
			hidden(t, b, f.cl, dst)
		})
	}
	if !strings.Contains(g.log(), `msg=grant`) || !strings.Contains(g.log(), "door=ssh") {
		t.Fatalf("no grant logged:\n%s", g.log())
	}
}

func TestWrongKnocksStayClosed(t *testing.T) {
	b := newBench(t)
	serveService(t, b)
	g := startGateway(t, b, knockConfig(t))
	dst := netip.AddrPortFrom(b.GW4, svcPort)
	for _, seq := range [][]string{
		{"9000/tcp", "8000/udp", "7000/tcp"},
		{"7000/tcp", "9000/tcp", "8000/udp"},
		{"7000/tcp", "8000/tcp", "9000/tcp"},
		{"7000/tcp", "8000/udp", "22/tcp", "9000/tcp"},
	} {
		run(t, b, b.Client, 10*time.Second, false, append([]string{sesameBin, "knock", "--delay", "20ms", b.GW4.String()}, seq...)...)
		time.Sleep(50 * time.Millisecond)
		hidden(t, b, netip.Addr{}, dst)
	}
	if strings.Contains(g.log(), "msg=grant") {
		t.Fatalf("a wrong sequence was granted:\n%s", g.log())
	}
	if !strings.Contains(g.log(), `reason="wrong port"`) {
		t.Fatalf("resets not logged with a reason:\n%s", g.log())
	}
}

// Debian's stock knock client opens a Sesame door.
func TestStockKnockClient(t *testing.T) {
	b := newBench(t)
	netnstest.RequireBinary(t, "knock")
	serveService(t, b)
	startGateway(t, b, knockConfig(t))
	for _, f := range families(b) {
		t.Run(f.name, func(t *testing.T) {
			dst := netip.AddrPortFrom(f.gw, svcPort)
			hidden(t, b, netip.Addr{}, dst)
			args := []string{"knock"}
			if f.gw.Is6() {
				args = append(args, "-6")
			}
			args = append(args, f.gw.String(), "7000", "8000:udp", "9000")
			run(t, b, b.Client, 10*time.Second, false, args...)
			if err := b.WaitReachable(context.Background(), b.Client, dst, 3*time.Second); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// nmap scans of every TCP port, in order (-r) and in nmap's random order,
// and a TCP+UDP scan covering the door's ports, find every port filtered
// and open nothing.
func TestNmapScansOpenNothing(t *testing.T) {
	b := newBench(t)
	netnstest.RequireBinary(t, "nmap")
	hostFirewall(t, b)
	serveService(t, b)
	g := startGateway(t, b, knockConfig(t))
	dst := netip.AddrPortFrom(b.GW4, svcPort)
	scans := map[string][]string{
		"tcp all ports in order": {"-sS", "-r", "-p-"},
		"tcp all ports random":   {"-sS", "-p-"},
		"tcp+udp door ports":     {"-sS", "-sU", "-r", "-p", "T:6990-9010,U:7990-8010"},
	}
	for _, name := range []string{"tcp all ports in order", "tcp all ports random", "tcp+udp door ports"} {
		t.Run(name, func(t *testing.T) {
			args := append([]string{"nmap", "-Pn", "-n", "--max-retries", "1", "--min-rate", "6000", "--host-timeout", "120s"}, scans[name]...)
			args = append(args, b.GW4.String())
			out, _ := run(t, b, b.Client, 150*time.Second, false, args...)
			t.Logf("%s\n%s", strings.Join(args, " "), out)
			// Every port must look the same: filtered (no answer). For UDP
			// nmap calls that "open|filtered".
			for _, bad := range []string{"/tcp open", "/udp open ", "closed", "unfiltered", "/tcp filtered"} {
				if strings.Contains(out, bad) {
					t.Fatalf("nmap tells ports apart (%q):\n%s", bad, out)
				}
			}
			if !strings.Contains(out, "filtered tcp ports (no-response)") {
				t.Fatalf("nmap output does not report all ports filtered:\n%s", out)
			}
			if strings.Contains(name, "udp") && strings.Count(out, "/udp open|filtered") != 21 && !strings.Contains(out, "21 open|filtered udp ports") {
				t.Fatalf("UDP ports do not all look the same:\n%s", out)
			}
			hidden(t, b, netip.Addr{}, dst)
		})
	}
	if strings.Contains(g.log(), "msg=grant") {
		t.Fatalf("a scan opened the door:\n%s", g.log())
	}
	if !strings.Contains(g.log(), "knock reset") {
		t.Fatalf("scans never reset an attempt (were knocks seen?):\n%s", g.log())
	}
}

// The kernel owns expiry: SIGKILL while granted, the port still closes on
// time; a restart during a grant adopts it without duplicating it.
func TestKillAndRestart(t *testing.T) {
	b := newBench(t)
	serveService(t, b)
	g := startGateway(t, b, strings.Replace(knockConfig(t), `duration = "3s"`, `duration = "6s"`, 1))
	dst := netip.AddrPortFrom(b.GW4, svcPort)
	knockAndWait := func() {
		run(t, b, b.Client, 10*time.Second, false, sesameBin, "knock", b.GW4.String(), "7000/tcp", "8000/udp", "9000/tcp", "--wait", "tcp/2222=5s")
	}
	knockAndWait()
	if err := syscall.Kill(g.proc.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-g.proc.Done()
	reachable(t, b, netip.Addr{}, dst)
	// Restart while the grant lives: it is adopted, not duplicated.
	g.start()
	if !strings.Contains(g.log(), "adopted grant") {
		t.Fatalf("restart did not adopt the live grant:\n%s", g.log())
	}
	reachable(t, b, netip.Addr{}, dst)
	knockAndWait() // granting again refreshes, never duplicates
	set := nftList(t, b, "set", "inet", "sesame", "grants4")
	if n := strings.Count(set, b.Client4.String()); n != 1 {
		t.Fatalf("grant listed %d times:\n%s", n, set)
	}
	if err := syscall.Kill(g.proc.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-g.proc.Done()
	waitHidden(t, b, dst, 10*time.Second) // no daemon: the kernel closed it
}

// sesame cleanup removes everything the daemon installed.
func TestCleanupLeavesNothing(t *testing.T) {
	b := newBench(t)
	g := startGateway(t, b, knockConfig(t))
	if !strings.Contains(nftList(t, b, "tables"), "sesame") {
		t.Fatal("no sesame table while serving")
	}
	if err := b.Stop(g.proc); err != nil {
		t.Logf("stop: %v", err)
	}
	run(t, b, b.GW, 10*time.Second, false, sesameBin, "cleanup")
	if out := nftList(t, b, "tables"); strings.Contains(out, "sesame") {
		t.Fatalf("table left behind:\n%s", out)
	}
	// Idempotent.
	run(t, b, b.GW, 10*time.Second, false, sesameBin, "cleanup")
}

// `interfaces` limits Sesame to the listed interfaces; by default every
// interface but loopback is covered (a local process still reaches the
// protected service over lo).
func TestInterfaces(t *testing.T) {
	b := newBench(t)
	serveService(t, b)
	dst := netip.AddrPortFrom(b.GW4, svcPort)
	t.Run("default skips loopback", func(t *testing.T) {
		g := startGateway(t, b, knockConfig(t))
		hidden(t, b, netip.Addr{}, dst)
		// From inside the gateway namespace (over lo) the service answers.
		lo, err := b.ListenTCP(b.GW, netip.MustParseAddrPort("127.0.0.1:0"))
		if err != nil {
			t.Fatal(err)
		}
		lo.Close()
		if !b.Reachable(context.Background(), b.GW, dst, time.Second) {
			t.Fatal("local connection over lo was filtered")
		}
		b.Stop(g.proc)
	})
	t.Run("listed interface", func(t *testing.T) {
		cfg := strings.Replace(knockConfig(t), "[gateway]\n", "[gateway]\ninterfaces = [\""+netns.GWIf+"\"]\n", 1)
		g := startGateway(t, b, cfg)
		hidden(t, b, netip.Addr{}, dst)
		run(t, b, b.Client, 10*time.Second, false, sesameBin, "knock", b.GW4.String(), "7000/tcp", "8000/udp", "9000/tcp", "--wait", "tcp/2222=5s")
		b.Stop(g.proc)
	})
	t.Run("other interface only", func(t *testing.T) {
		cfg := strings.Replace(knockConfig(t), "[gateway]\n", "[gateway]\ninterfaces = [\"eth9\"]\n", 1)
		g := startGateway(t, b, cfg)
		// Traffic on veth-gw is none of Sesame's business.
		reachable(t, b, netip.Addr{}, dst)
		b.Stop(g.proc)
	})
}

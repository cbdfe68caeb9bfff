//go:build linux

package nftables

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/capture"
	"github.com/sesame-gw/sesame/internal/capture/nflog"
	"github.com/sesame-gw/sesame/internal/firewall"
	"github.com/sesame-gw/sesame/internal/nftlisting"
	"github.com/sesame-gw/sesame/internal/service"
)

// With a bulk group (and the SPA pre-filter), the table in the kernel is
// the one `sesame serve --check` prints (internal/nftlisting). The hash
// sets have one element each, so nft's element order does not matter.
func TestKernelSetupMatchesListing(t *testing.T) {
	ns := newNetNS(t)
	requireTool(t, "nft")
	f := newNSFirewall(t, ns)
	l := firewall.Layout{
		Protected:    []service.Service{ssh},
		Watched:      []service.Service{{Proto: service.UDP, Port: 62201}},
		LogGroup:     7,
		BulkLogGroup: 8,
		WatchTimeout: 90 * time.Second,
		Datagrams:    spaShapes,
	}
	want, err := nftlisting.Render(l, nftlisting.Options{Table: DefaultTable, Priority: DefaultPriority})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // a second Setup (a restart) lists the same
		setup(t, f, l)
		if got := ns.nft(t, "list", "table", "inet", "sesame"); got != want {
			t.Fatalf("nft lists something else than nftlisting\n--- nft\n%s\n--- nftlisting\n%s", got, want)
		}
	}
}

// twoGroups reads NFLOG groups 7 (one at a time) and 8 (batched) in ns
// and records, per group, the payloads of the packets from each source.
type twoGroups struct {
	mu  sync.Mutex
	got map[uint16]map[netip.Addr][]string
	n   int
}

func readTwoGroups(t *testing.T, ns *netNS) *twoGroups {
	t.Helper()
	g := &twoGroups{got: map[uint16]map[netip.Addr][]string{7: {}, 8: {}}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, cfg := range []nflog.Config{
		{Group: 7, NetNS: ns.fd()},
		{Group: 8, NetNS: ns.fd(), QThresh: firewall.BulkQueueThreshold, Timeout: 10 * time.Millisecond},
	} {
		src, err := nflog.Open(context.Background(), cfg)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		wg.Add(1)
		go func(src capture.Source, group uint16) {
			defer wg.Done()
			defer src.Close()
			for {
				p, err := src.ReadPacket(ctx)
				if err != nil {
					return
				}
				g.mu.Lock()
				g.got[group][p.Src] = append(g.got[group][p.Src], string(p.Payload))
				g.n++
				g.mu.Unlock()
			}
		}(src, cfg.Group)
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	return g
}

func (g *twoGroups) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}

func (g *twoGroups) of(group uint16, src netip.Addr) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.got[group][src]...)
}

// sendFrom sends one UDP datagram per payload from src to 127.0.0.1:port
// inside ns, in order.
func sendFrom(t *testing.T, ns *netNS, src string, port int, payloads []string) {
	t.Helper()
	err := inNetNS(ns, func() error {
		c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)}, &net.UDPAddr{IP: net.ParseIP("127.0.0.1"), Port: port})
		if err != nil {
			return err
		}
		defer c.Close()
		for _, p := range payloads {
			if _, err := c.Write([]byte(p)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func seq(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%04d", prefix, i)
	}
	return out
}

func orderLayout(rate uint32) firewall.Layout {
	return firewall.Layout{
		Protected:    []service.Service{ssh},
		Watched:      []service.Service{{Proto: service.UDP, Port: 9000}},
		LogGroup:     7,
		BulkLogGroup: 8,
		LogRate:      rate,
		Interfaces:   []string{"lo"}, // the test sends on loopback
	}
}

// A source in bulk4 goes to the batched group even while the one-at-a-time
// group has tokens to spare; other sources do not.
func TestKernelBulkSourceStaysBatched(t *testing.T) {
	ns := newNetNS(t)
	requireTool(t, "nft")
	run(t, "ip", "-n", ns.name, "link", "set", "lo", "up")
	f := newNSFirewall(t, ns)
	setup(t, f, orderLayout(100000))
	ns.nft(t, "add", "element", "inet", "sesame", "bulk4", "{ 127.0.0.2 }")
	g := readTwoGroups(t, ns)

	const n = 50
	bulkSrc, fastSrc := netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")
	sendFrom(t, ns, bulkSrc.String(), 9000, seq("b", n))
	sendFrom(t, ns, fastSrc.String(), 9000, seq("f", n))
	eventually(t, 10*time.Second, "all packets logged", func() bool { return g.count() >= 2*n })
	if got := g.of(8, bulkSrc); strings.Join(got, ",") != strings.Join(seq("b", n), ",") {
		t.Errorf("source in bulk4: batched group got %v, want all %d in order", got, n)
	}
	if got := g.of(7, fastSrc); strings.Join(got, ",") != strings.Join(seq("f", n), ",") {
		t.Errorf("other source: one-at-a-time group got %v, want all %d in order", got, n)
	}
}

// Once a source's packet overflowed the rate to the batched group, its
// later packets follow it there, even after the rate has tokens again:
// the one-at-a-time group holds a prefix of the source's sequence and the
// batched group the rest, each in order. Without bulk4, the first packet
// after the pause would take the new token and reach the daemon ahead of
// the batched ones.
func TestKernelOverflowKeepsSourceInOneGroup(t *testing.T) {
	ns := newNetNS(t)
	requireTool(t, "nft")
	run(t, "ip", "-n", ns.name, "link", "set", "lo", "up")
	f := newNSFirewall(t, ns)
	setup(t, f, orderLayout(1))
	g := readTwoGroups(t, ns)

	const n = 40
	src := netip.MustParseAddr("127.0.0.2")
	want := seq("k", n)
	// 20 packets at once overflow a rate of 1/s (burst 1)...
	sendFrom(t, ns, src.String(), 9000, want[:n/2])
	sent := time.Now()
	// ...then the bucket refills while the source is still in bulk4.
	time.Sleep(1500 * time.Millisecond)
	if time.Since(sent) > firewall.BulkSourceTimeout-time.Second {
		t.Skip("the test was stalled for longer than the bulk sources' timeout")
	}
	sendFrom(t, ns, src.String(), 9000, want[n/2:])
	eventually(t, 10*time.Second, "all packets logged", func() bool { return g.count() >= n })
	fast, bulk := g.of(7, src), g.of(8, src)
	if len(bulk) == 0 {
		t.Fatalf("no packet overflowed a rate of 1/s (one-at-a-time group got %d)", len(fast))
	}
	if got := strings.Join(append(fast, bulk...), ","); got != strings.Join(want, ",") {
		t.Fatalf("group 7 %v then group 8 %v: not the sent sequence split once", fast, bulk)
	}
	if out := ns.nft(t, "list", "set", "inet", "sesame", "bulk4"); !strings.Contains(out, "127.0.0.2") {
		t.Errorf("bulk4 lacks the overflowed source:\n%s", out)
	}
}

// The kernel marks the source of a watched packet in watch4 for the
// layout's watch timeout. When watch4 is full, the mark rule does not
// match and the packet is still logged (the rule has no verdict), and an
// already marked source is still refreshed.
func TestKernelWatchMarksBounded(t *testing.T) {
	ns := newNetNS(t)
	requireTool(t, "nft")
	run(t, "ip", "-n", ns.name, "link", "set", "lo", "up")
	f := newNSFirewall(t, ns)
	l := orderLayout(100000)
	l.WatchTimeout = 90 * time.Second
	setup(t, f, l)
	g := readTwoGroups(t, ns)

	marked, late := netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")
	sendFrom(t, ns, marked.String(), 9000, []string{"first"})
	eventually(t, 10*time.Second, "first knock logged", func() bool { return g.count() >= 1 })
	w4 := ns.nft(t, "list", "set", "inet", "sesame", "watch4")
	if !strings.Contains(w4, "127.0.0.2 timeout 1m30s") {
		t.Fatalf("the knock's source is not marked for 90s:\n%s", w4)
	}

	// Fill watch4 up to its size from nft (10.x.y.z, one per line).
	var b strings.Builder
	b.WriteString("add element inet sesame watch4 {\n")
	for i := range firewall.WatchSources - 1 {
		fmt.Fprintf(&b, "10.%d.%d.%d timeout 5m,\n", i>>16, i>>8&0xff, i&0xff)
	}
	b.WriteString("}\n")
	file := t.TempDir() + "/fill.nft"
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	ns.nft(t, "-f", file)

	sendFrom(t, ns, late.String(), 9000, []string{"late"})
	sendFrom(t, ns, marked.String(), 9000, []string{"again"})
	eventually(t, 10*time.Second, "knocks logged with watch4 full", func() bool { return g.count() >= 3 })
	if got := g.of(7, late); len(got) != 1 || got[0] != "late" {
		t.Errorf("new source with watch4 full: logged %v, want [late]", got)
	}
	if got := g.of(7, marked); len(got) != 2 {
		t.Errorf("marked source with watch4 full: logged %v, want 2 packets", got)
	}
	out := ns.nft(t, "list", "set", "inet", "sesame", "watch4")
	if strings.Contains(out, "127.0.0.3") {
		t.Errorf("a source was marked beyond the set's size")
	}
	if n := strings.Count(out, " expires "); n != firewall.WatchSources {
		t.Errorf("watch4 has %d elements, want %d", n, firewall.WatchSources)
	}
}

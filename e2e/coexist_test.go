package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/netns"
	"github.com/sesame-gw/sesame/internal/netns/netnstest"
)

// Real hosts already have a firewall. Sesame's table only drops (see
// docs/firewall.md), so behind any default-drop firewall that allows the
// protected service, the service is hidden until a knock and open for
// that source only afterwards; the host firewall's other decisions stand.
func TestCoexistsWithHostFirewalls(t *testing.T) {
	setups := map[string]func(t *testing.T, b *netns.Bench){
		"nftables drop policy": hostFirewall,
		"iptables-nft drop policy": func(t *testing.T, b *netns.Bench) {
			iptablesDropPolicy(t, b, "iptables-nft", "ip6tables-nft")
		},
		"iptables-legacy drop policy": func(t *testing.T, b *netns.Bench) {
			iptablesDropPolicy(t, b, "iptables-legacy", "ip6tables-legacy")
		},
	}
	for _, name := range []string{"nftables drop policy", "iptables-nft drop policy", "iptables-legacy drop policy"} {
		t.Run(name, func(t *testing.T) {
			b := newBench(t)
			setups[name](t, b)
			serveService(t, b)
			// A second service the host firewall does not allow: it must
			// stay filtered whatever Sesame does.
			if _, err := b.ServeTCP(b.GW, netip.AddrPortFrom(b.GW4, 3333), []byte("x")); err != nil {
				t.Fatal(err)
			}
			cfg := strings.Replace(knockConfig(t), `open = ["2222/tcp"]`, `open = ["2222/tcp", "3333/tcp"]`, 1)
			startGateway(t, b, cfg)
			for _, f := range families(b) {
				dst := netip.AddrPortFrom(f.gw, svcPort)
				hidden(t, b, f.cl, dst)
				run(t, b, b.Client, 10*time.Second, false, sesameBin, "knock", f.gw.String(), "7000/tcp", "8000/udp", "9000/tcp", "--wait", "tcp/2222=5s")
				reachable(t, b, f.cl, dst)
				hidden(t, b, f.second, dst)
			}
			// Granted by Sesame, still dropped by the host: the host wins.
			hidden(t, b, b.Client4, netip.AddrPortFrom(b.GW4, 3333))
		})
	}
}

func iptablesDropPolicy(t *testing.T, b *netns.Bench, v4, v6 string) {
	t.Helper()
	netnstest.RequireBinary(t, v4)
	for _, bin := range []string{v4, v6} {
		for _, args := range [][]string{
			{"-P", "INPUT", "DROP"},
			{"-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"},
			{"-A", "INPUT", "-i", "lo", "-j", "ACCEPT"},
			{"-A", "INPUT", "-p", icmpFor(bin), "-j", "ACCEPT"},
			{"-A", "INPUT", "-p", "tcp", "--dport", fmt.Sprint(svcPort), "-j", "ACCEPT"},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			out, err := b.Command(ctx, b.GW, append([]string{bin}, args...)...).CombinedOutput()
			cancel()
			if err != nil {
				t.Fatalf("%s %v: %v\n%s", bin, args, err, out)
			}
		}
	}
}

func icmpFor(bin string) string {
	if strings.HasPrefix(bin, "ip6") {
		return "ipv6-icmp"
	}
	return "icmp"
}

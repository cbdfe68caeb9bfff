package nftlisting

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/firewall"
	"github.com/sesame-gw/sesame/internal/service"
)

// scratchNS creates an empty network namespace (no interfaces but lo, so
// no packet leaves it) and removes it when the test ends.
func scratchNS(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads rules with nft in a scratch network namespace")
	}
	for _, bin := range []string{"nft", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not installed (CI=true)", bin)
			}
			t.Skipf("%s not installed", bin)
		}
	}
	name := fmt.Sprintf("sesnl%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	return name
}

func nftIn(t *testing.T, ns, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, "nft"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("nft %v: %v\n%s\ninput:\n%s", args, err, out, stdin)
	}
	return string(out)
}

// TestRenderRoundTripsThroughNft loads each rendering with nft -f and
// checks that nft lists it back exactly: the text is what nft prints, for
// element wrapping, prefixes, ranges, interfaces and priorities.
func TestRenderRoundTripsThroughNft(t *testing.T) {
	ns := scratchNS(t)
	var many []service.Service
	for p := uint16(1000); p < 1012; p++ {
		many = append(many, tcp(p), udp(p+2000))
	}
	pfx := func(s ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, x := range s {
			out = append(out, netip.MustParsePrefix(x))
		}
		return out
	}
	cases := []struct {
		name string
		l    firewall.Layout
		opt  Options
	}{
		{"golden", goldenLayout, Default()},
		{"bare", firewall.Layout{Protected: []service.Service{tcp(22)}, LogGroup: 1}, Default()},
		{"many", firewall.Layout{Protected: many, Watched: []service.Service{udp(62201)}, LogGroup: 65535,
			AlwaysAllow: pfx("203.0.113.0/24", "198.51.100.1/32", "198.51.100.2/31", "192.0.2.128/25", "192.0.2.0/25",
				"10.9.0.0/16", "172.16.0.0/12", "fd00::/8", "2001:db8:1::/48", "2001:db8::1/128"),
			Interfaces: []string{"eth0", "wg0", "ens3"}}, Options{Table: "sesame", Priority: 5}},
		{"everything", firewall.Layout{Protected: []service.Service{tcp(22)}, LogGroup: 3,
			AlwaysAllow: pfx("0.0.0.0/0", "::/0")}, Options{Table: "other", Priority: -200}},
		{"security", firewall.Layout{Protected: []service.Service{udp(53)}, LogGroup: 3}, Options{Table: "sesame", Priority: 55}},
		{"bulk", firewall.Layout{Protected: []service.Service{tcp(22)}, Watched: []service.Service{udp(62201)}, LogGroup: 7,
			BulkLogGroup: 8, LogRate: 5000}, Default()},
		{"knock marks", firewall.Layout{Protected: []service.Service{tcp(22)}, Watched: []service.Service{tcp(7000)}, LogGroup: 7,
			BulkLogGroup: 8, WatchTimeout: 90*time.Minute + 1500*time.Microsecond}, Default()},
		{"bulk default rate", firewall.Layout{Protected: []service.Service{tcp(22)}, LogGroup: 100, BulkLogGroup: 99}, Default()},
		{"spa prefilter", firewall.Layout{Protected: []service.Service{tcp(22)}, Watched: []service.Service{udp(62201), udp(4000)}, LogGroup: 7,
			BulkLogGroup: 8, LogRate: 2000, Datagrams: firewall.DatagramFilter{Ports: []uint16{62201, 4000, 62201},
				Shapes: []firewall.DatagramShape{{MinLen: 89, MaxLen: 1232, FirstBytes: []byte{0xd3}}, {MinLen: 140, MaxLen: 1500, FirstBytes: []byte("89+/")}}}}, Default()},
		{"spa prefilter any first byte", firewall.Layout{Protected: []service.Service{tcp(22)}, Watched: []service.Service{udp(62201)}, LogGroup: 7,
			Datagrams: firewall.DatagramFilter{Ports: []uint16{62201}, Shapes: []firewall.DatagramShape{{MinLen: 10, MaxLen: 100}}}}, Default()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			text, err := Render(tc.l, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			nftIn(t, ns, text, "-f", "-")
			table := tc.opt.Table
			defer nftIn(t, ns, "", "delete", "table", "inet", table)
			got := nftIn(t, ns, "", "list", "table", "inet", table)
			if sortHashSets(got) != sortHashSets(text) {
				t.Fatalf("nft lists something else\n--- nft\n%s\n--- rendered\n%s", got, text)
			}
		})
	}
}

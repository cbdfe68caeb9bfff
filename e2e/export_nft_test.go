package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/netns/netnstest"
)

// `sesame export nft` output loaded with `nft -f` in a namespace where no
// daemon runs: the kernel alone opens the door for the knocking source,
// refuses wrong orders and port scans, and closes on time.
func TestExportedRulesetWithoutDaemon(t *testing.T) {
	b := newBench(t)
	netnstest.RequireBinary(t, "nmap")
	serveService(t, b)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "sesame.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`[[door]]
name = "ssh"
sequence = ["7000/tcp", "8000/udp", "9000/tcp"]
seq_timeout = "10s"
tcp_flags = ["syn", "!ack"]
open = ["%d/tcp"]
duration = "%s"

# Ascending, one protocol: what a port scan in order walks through unless
# every other port resets the progress.
[[door]]
name = "asc"
sequence = ["7100/tcp", "7300/tcp", "7500/tcp"]
open = ["2223/tcp"]
duration = "30s"
`, svcPort, grantTTL)), 0o600)
	out, err := b.Command(t.Context(), b.GW, sesameBin, "export", "nft", "-c", cfg).Output()
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	rules := filepath.Join(dir, "export.nft")
	os.WriteFile(rules, out, 0o600)
	run(t, b, b.GW, 10*time.Second, false, "nft", "-f", rules)
	t.Cleanup(func() { b.Command(t.Context(), b.GW, "nft", "delete", "table", "inet", "sesame_export").Run() })
	// No daemon is started in this test: the kernel does everything below.
	openSet := func(fam string) string {
		return nftList(t, b, "set", "inet", "sesame_export", "d0_ssh_open_"+fam)
	}
	ascSet := func() string { return nftList(t, b, "set", "inet", "sesame_export", "d1_asc_open_v4") }
	for _, f := range families(b) {
		t.Run(f.name, func(t *testing.T) {
			dst := netip.AddrPortFrom(f.gw, svcPort)
			hidden(t, b, f.cl, dst)
			// Wrong orders and a stray port in the middle open nothing.
			for _, seq := range [][]string{
				{"9000/tcp", "8000/udp", "7000/tcp"},
				{"7000/tcp", "9000/tcp", "8000/udp"},
				{"7000/tcp", "8000/udp", "22/tcp", "9000/tcp"},
			} {
				run(t, b, b.Client, 10*time.Second, false, append([]string{sesameBin, "knock", "--delay", "10ms", f.gw.String()}, seq...)...)
				hidden(t, b, f.cl, dst)
			}
			// A retransmitted knock is tolerated; then the door opens for
			// this source only, and closes after the duration.
			run(t, b, b.Client, 10*time.Second, false, sesameBin, "knock", "--delay", "10ms", f.gw.String(), "7000/tcp", "7000/tcp", "8000/udp", "9000/tcp", "--wait", fmt.Sprintf("tcp/%d=5s", svcPort))
			reachable(t, b, f.cl, dst)
			hidden(t, b, f.second, dst)
			if !strings.Contains(openSet(map[bool]string{true: "v4", false: "v6"}[f.gw.Is4()]), "expires") {
				t.Fatal("no expiring element in the open set")
			}
			took := waitHidden(t, b, dst, grantTTL+3*time.Second)
			t.Logf("closed %v after the check (duration %v)", took, grantTTL)
		})
	}
	scans := [][]string{
		{"-sS", "-r", "-p-"},
		{"-sS", "-p-"},
		{"-sS", "-sU", "-r", "-p", "T:6990-9010,U:7990-8010"},
	}
	for _, scan := range scans {
		args := append([]string{"nmap", "-Pn", "-n", "--max-retries", "0", "--min-rate", "5000", "--host-timeout", "120s"}, scan...)
		args = append(args, b.GW4.String())
		out, _ := run(t, b, b.Client, 150*time.Second, false, args...)
		if strings.Contains(out, fmt.Sprintf("%d/tcp open", svcPort)) {
			t.Fatalf("the scan reached the service:\n%s", out)
		}
		hidden(t, b, netip.Addr{}, netip.AddrPortFrom(b.GW4, svcPort))
		for _, set := range []string{openSet("v4"), ascSet()} {
			if strings.Contains(set, "elements") {
				t.Fatalf("%v opened a door:\n%s", scan, set)
			}
		}
	}
	// The ascending door works when knocked (the scans did reach it).
	run(t, b, b.Client, 10*time.Second, false, sesameBin, "knock", "--delay", "10ms", b.GW4.String(), "7100", "7300", "7500")
	time.Sleep(100 * time.Millisecond)
	if set := ascSet(); !strings.Contains(set, b.Client4.String()) {
		t.Fatalf("the ascending door did not open when knocked:\n%s", set)
	}
}

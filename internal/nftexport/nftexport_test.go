package nftexport

import (
	"flag"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/knock"
	"github.com/sesame-gw/sesame/internal/packet"
	"github.com/sesame-gw/sesame/internal/service"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func tcp(p uint16) service.Service { return service.Service{Proto: service.TCP, Port: p} }
func udp(p uint16) service.Service { return service.Service{Proto: service.UDP, Port: p} }

func sampleDoors() []Door {
	return []Door{
		{
			Name: "ssh", Sequence: []service.Service{tcp(7000), udp(8000), tcp(9000)}, SeqTimeout: 10 * time.Second,
			Flags: knock.Flags{Set: packet.SYN, Clear: packet.ACK},
			Open:  []service.Range{{Proto: service.TCP, First: 22, Last: 22}, {Proto: service.UDP, First: 60000, Last: 60100}}, Duration: 30 * time.Second,
		},
		{
			Name: "web door", Sequence: []service.Service{udp(5000)}, SeqTimeout: 5 * time.Second,
			Sources: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")},
			Open:    []service.Range{{Proto: service.TCP, First: 443, Last: 443}}, Duration: 90 * time.Second,
		},
		{
			Name: "v4only", Sequence: []service.Service{tcp(3000), tcp(3500), tcp(3100), tcp(3900)}, SeqTimeout: 2 * time.Second,
			Sources: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")},
			Open:    []service.Range{{Proto: service.TCP, First: 8080, Last: 8080}}, Duration: time.Minute,
		},
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Fatalf("%s differs from the golden file (run with -update after checking):\n%s", name, got)
	}
}

func TestRulesetGolden(t *testing.T) {
	out, err := Ruleset(sampleDoors(), Options{AlwaysAllow: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "sample.nft", out)
	// Per-stage timeouts: 10 s over 2 gaps, 2 s over 3 gaps.
	for _, want := range []string{"set d0_ssh_s1_v4 { type ipv4_addr; flags dynamic, timeout; timeout 5s;", "set d2_v4only_s3_v6 { type ipv6_addr; flags dynamic, timeout; timeout 666ms;", "set d1_web_door_open_v6 {"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q", want)
		}
	}
	out, err = Ruleset(sampleDoors()[:1], Options{Table: "knock", Interfaces: []string{"eth0", "wg0"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `iifname != { "eth0", "wg0" } accept`) || !strings.Contains(out, "table inet knock {") {
		t.Fatalf("options ignored:\n%s", out)
	}
}

func TestRulesetErrors(t *testing.T) {
	d := sampleDoors()[0]
	bad := []func() ([]Door, Options){
		func() ([]Door, Options) { return nil, Options{} },
		func() ([]Door, Options) { return []Door{d}, Options{Table: "bad name"} },
		func() ([]Door, Options) { x := d; x.Sequence = nil; return []Door{x}, Options{} },
		func() ([]Door, Options) { x := d; x.Open = nil; return []Door{x}, Options{} },
		func() ([]Door, Options) { x := d; x.SeqTimeout = time.Microsecond; return []Door{x}, Options{} },
		func() ([]Door, Options) { return []Door{d, d}, Options{} },
	}
	for i, f := range bad {
		doors, opts := f()
		if _, err := Ruleset(doors, opts); err == nil {
			t.Errorf("case %d accepted", i)
		}
	}
	// Shared knock ports cannot be followed in parallel by the ruleset.
	e := sampleDoors()[2]
	e.Name, e.Sequence = "other", []service.Service{tcp(3000), tcp(7000)}
	if _, err := Ruleset([]Door{d, e}, Options{}); err == nil || !strings.Contains(err.Error(), "share the knock port 7000/tcp") {
		t.Fatalf("shared knock port: %v", err)
	}
	// Names that differ only in punctuation still get distinct sets.
	a, b := d, sampleDoors()[2]
	a.Name, b.Name = "a-b", "a_b"
	out, err := Ruleset([]Door{a, b}, Options{})
	if err != nil || !strings.Contains(out, "set d0_a_b_open_v4") || !strings.Contains(out, "set d1_a_b_open_v4") {
		t.Fatalf("%v\n%s", err, out)
	}
}

// TestKernelAcceptsRuleset loads the ruleset into a throwaway network
// namespace with the real nft and compares the kernel's listing with a
// golden file produced by nft itself.
func TestKernelAcceptsRuleset(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to load the ruleset in a private network namespace: run as root")
	}
	for _, bin := range []string{"nft", "unshare"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is required in CI", bin)
			}
			t.Skipf("%s not installed", bin)
		}
	}
	out, err := Ruleset(sampleDoors(), Options{AlwaysAllow: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "r.nft")
	os.WriteFile(path, []byte(out), 0o600)
	// A new network namespace of its own (no links, no routes): nothing
	// outside is touched, and it vanishes with the process.
	cmd := exec.Command("unshare", "--net", "sh", "-c", `nft -f "$1" && nft -f "$1" && nft list table inet sesame_export`, "sh", path)
	listing, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("nft refused the ruleset: %v\n%s\n%s", err, listing, out)
	}
	golden(t, "sample.nft.listing", string(listing))
}

//go:build linux

package nftables

import (
	"context"
	"errors"
	"flag"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/firewall"
	"github.com/sesame-gw/sesame/internal/service"
)

var update = flag.Bool("update", false, "regenerate testdata/sesame.{list,netlink} by loading testdata/sesame.nft with nft(8)")

// goldenLayout is the layout testdata/sesame.nft spells out for nft.
var goldenLayout = firewall.Layout{
	Protected: []service.Service{ssh, dns, {Proto: service.TCP, Port: 8443}},
	Watched: []service.Service{
		{Proto: service.UDP, Port: 62201}, {Proto: service.TCP, Port: 7000}, {Proto: service.TCP, Port: 7001},
	},
	LogGroup:     7,
	WatchTimeout: 30 * time.Second,
	AlwaysAllow: []netip.Prefix{
		netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.7/32"),
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("::1/128"),
	},
}

// listings returns what nft shows of the table: the listing, and the
// netlink expressions (nft --debug=netlink) with rule handles removed and
// set elements sorted (hash sets dump in a per-set random order).
func listings(t *testing.T, ns *netNS) (list, nl string) {
	t.Helper()
	list = ns.nft(t, "list", "table", "inet", "sesame")
	raw := ns.nft(t, "--debug=netlink", "list", "table", "inet", "sesame")
	handles := regexp.MustCompile(`^(inet \S+ \S+)( \d+)+$`)
	var out, elems []string
	flush := func() { slices.Sort(elems); out = append(out, elems...); elems = nil }
	for _, l := range strings.Split(raw, "\n") {
		if strings.HasPrefix(l, "\telement ") {
			elems = append(elems, l)
			continue
		}
		flush()
		out = append(out, handles.ReplaceAllString(l, "$1"))
	}
	flush()
	return list, strings.Join(out, "\n")
}

func readGolden(t *testing.T) (list, nl string) {
	t.Helper()
	if *update {
		requireTool(t, "nft")
		ref := newNetNS(t)
		ref.nft(t, "-f", "testdata/sesame.nft")
		list, nl = listings(t, ref)
		for name, s := range map[string]string{"testdata/sesame.list": list, "testdata/sesame.netlink": nl} {
			if err := os.WriteFile(name, []byte(s), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	l, err := os.ReadFile("testdata/sesame.list")
	if err != nil {
		t.Fatal(err)
	}
	n, err := os.ReadFile("testdata/sesame.netlink")
	if err != nil {
		t.Fatal(err)
	}
	return string(l), string(n)
}

// checkGolden compares the table in ns with the listings nft produced from
// testdata/sesame.nft.
func checkGolden(t *testing.T, ns *netNS) {
	t.Helper()
	wantList, wantNL := readGolden(t)
	list, nl := listings(t, ns)
	if list != wantList {
		t.Errorf("nft list table differs from testdata/sesame.list\n--- got\n%s\n--- want\n%s", list, wantList)
	}
	if nl != wantNL {
		t.Errorf("nft --debug=netlink list table differs from testdata/sesame.netlink\n--- got\n%s\n--- want\n%s", nl, wantNL)
	}
}

func setup(t *testing.T, f *Firewall, l firewall.Layout) {
	t.Helper()
	if err := f.Setup(context.Background(), l); err != nil {
		t.Fatal(err)
	}
}

func TestKernelSetupGolden(t *testing.T) {
	ns := newNetNS(t)
	requireTool(t, "nft")
	f := newNSFirewall(t, ns)
	setup(t, f, goldenLayout)
	checkGolden(t, ns)
}

func TestKernelSetupReplacesForeignObjects(t *testing.T) {
	ns := newNetNS(t)
	requireTool(t, "nft")
	// A table of the same name left by something else: a grants4 of another
	// type, an extra set referenced from an extra chain, an input chain at
	// another priority that jumps to it.
	cmd := exec.Command("ip", "netns", "exec", ns.name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(`table inet sesame {
		set grants4 { type ipv4_addr . inet_service; flags timeout; elements = { 192.0.2.1 . 22 timeout 1h } }
		set bar { type ipv4_addr; elements = { 192.0.2.1 } }
		chain other { ip saddr @bar drop; }
		chain input { type filter hook input priority 0; policy drop; jump other; }
	}`)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v\n%s", err, out)
	}
	f := newNSFirewall(t, ns)
	setup(t, f, goldenLayout)
	checkGolden(t, ns)
}

func TestKernelSetupKeepsGrants(t *testing.T) {
	ns := newNetNS(t)
	requireTool(t, "nft")
	f := newNSFirewall(t, ns)
	ctx := context.Background()
	setup(t, f, goldenLayout)
	a4, a6 := netip.MustParseAddr("192.0.2.200"), netip.MustParseAddr("2001:db8::200")
	grants := []firewall.Grant{
		{Addr: a4, Service: ssh, TTL: time.Minute},
		{Addr: a6, Service: ssh, TTL: time.Minute},
		{Addr: a4, Service: dns, TTL: time.Minute},
	}
	if err := f.Grant(ctx, grants); err != nil {
		t.Fatal(err)
	}
	ns.nft(t, "add", "element", "inet", "sesame", "watch4", "{ 192.0.2.200 timeout 1m }")
	setup(t, f, goldenLayout) // restart with the same configuration
	got, err := f.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("after second Setup: %v, want the 3 grants once each", got)
	}
	for _, g := range got {
		if g.TTL <= 0 || g.TTL > time.Minute {
			t.Errorf("grant %v: TTL not in (0, 1m]", g)
		}
	}
	if !strings.Contains(ns.nft(t, "list", "set", "inet", "sesame", "watch4"), "192.0.2.200") {
		t.Error("Setup dropped the watch4 mark")
	}
	// Without the grants and marks, the table is exactly the golden one.
	if err := f.Revoke(ctx, grants); err != nil {
		t.Fatal(err)
	}
	ns.nft(t, "delete", "element", "inet", "sesame", "watch4", "{ 192.0.2.200 }")
	checkGolden(t, ns)

	// A reload that stops protecting dns drops the dns grant only.
	if err := f.Grant(ctx, grants); err != nil {
		t.Fatal(err)
	}
	l := goldenLayout
	l.Protected = []service.Service{ssh}
	setup(t, f, l)
	got, err = f.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Service != ssh || got[1].Service != ssh {
		t.Fatalf("after reload without dns: %v, want the two ssh grants", got)
	}
}

// A table from a version whose watch sets the daemon filled (no dynamic
// flag, no size) is reconciled on start: the watch sets are replaced
// (their marks dropped), the grants kept.
func TestKernelSetupReplacesOldWatchSets(t *testing.T) {
	ns := newNetNS(t)
	requireTool(t, "nft")
	old := strings.NewReplacer(
		"\t\tsize 131072\n\t\tflags dynamic,timeout", "\t\tflags timeout",
		"\t\tmeta l4proto . th dport @watched update @watch4 { ip saddr timeout 30s }\n", "",
		"\t\tmeta l4proto . th dport @watched update @watch6 { ip6 saddr timeout 30s }\n", "",
	).Replace(readFile(t, "testdata/sesame.nft"))
	if strings.Contains(old, "dynamic") || strings.Contains(old, "update @watch") {
		t.Fatal("testdata/sesame.nft changed: cannot derive the old table")
	}
	file := t.TempDir() + "/old.nft"
	if err := os.WriteFile(file, []byte(old+`
add element inet sesame watch4 { 192.0.2.9 timeout 1m }
add element inet sesame grants4 { 192.0.2.9 . tcp . 22 timeout 1m }
`), 0o644); err != nil {
		t.Fatal(err)
	}
	ns.nft(t, "-f", file)
	f := newNSFirewall(t, ns)
	setup(t, f, goldenLayout)
	if got, err := f.List(context.Background()); err != nil || len(got) != 1 {
		t.Fatalf("grants after the upgrade: %v, %v; want the one kept", got, err)
	}
	if err := f.Revoke(context.Background(), []firewall.Grant{{Addr: netip.MustParseAddr("192.0.2.9"), Service: ssh}}); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, ns) // watch4 replaced, empty
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestKernelGrantListRefreshRevoke(t *testing.T) {
	ns := newNetNS(t)
	f := newNSFirewall(t, ns)
	ctx := context.Background()
	setup(t, f, goldenLayout)
	a := netip.MustParseAddr("203.0.113.5")
	ttlOf := func() time.Duration {
		t.Helper()
		got, err := f.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Addr != a || got[0].Service != ssh {
			t.Fatalf("List = %v, want one grant for %v %v", got, a, ssh)
		}
		return got[0].TTL
	}
	grant := func(ttl time.Duration) {
		t.Helper()
		if err := f.Grant(ctx, []firewall.Grant{{Addr: a, Service: ssh, TTL: ttl}}); err != nil {
			t.Fatal(err)
		}
	}
	// The kernel's remaining time never exceeds the TTL; the lower bounds
	// only fail if the machine stalls for tens of seconds.
	grant(30 * time.Second)
	if ttl := ttlOf(); ttl > 30*time.Second || ttl < 20*time.Second {
		t.Fatalf("TTL %v after granting 30s", ttl)
	}
	grant(90 * time.Second) // refresh to a longer TTL
	if ttl := ttlOf(); ttl > 90*time.Second || ttl <= 30*time.Second {
		t.Fatalf("TTL %v after refreshing to 90s", ttl)
	}
	grant(5 * time.Second) // refresh replaces, even with a shorter TTL
	if ttl := ttlOf(); ttl > 5*time.Second {
		t.Fatalf("TTL %v after refreshing to 5s", ttl)
	}
	// The same TTL again must also restart the clock (a plain re-add does not).
	time.Sleep(1100 * time.Millisecond)
	grant(5 * time.Second)
	if ttl := ttlOf(); ttl <= 4*time.Second {
		t.Fatalf("TTL %v after re-granting 5s: the refresh did not restart the timeout", ttl)
	}
	absent := firewall.Grant{Addr: netip.MustParseAddr("2001:db8::99"), Service: dns}
	for range 2 {
		if err := f.Revoke(ctx, []firewall.Grant{{Addr: a, Service: ssh}, absent}); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := f.List(ctx); err != nil || len(got) != 0 {
		t.Fatalf("List after Revoke = %v, %v", got, err)
	}
}

func TestKernelGrantExpires(t *testing.T) {
	ns := newNetNS(t)
	f := newNSFirewall(t, ns)
	ctx := context.Background()
	setup(t, f, goldenLayout)
	start := time.Now()
	g := firewall.Grant{Addr: netip.MustParseAddr("203.0.113.6"), Service: ssh, TTL: time.Second}
	if err := f.Grant(ctx, []firewall.Grant{g}); err != nil {
		t.Fatal(err)
	}
	gone := func() bool {
		got, err := f.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(got) == 0
	}
	eventually(t, 10*time.Second, "1 s grant expiry", gone)
	// The kernel never expires early (jiffies may round by a few ms).
	if took := time.Since(start); took < 950*time.Millisecond {
		t.Fatalf("grant gone after %v, before its 1 s TTL", took)
	} else {
		t.Logf("1 s grant gone from List after %v", took.Round(time.Millisecond))
	}
}

func TestKernelNotSetUpAndTeardown(t *testing.T) {
	ns := newNetNS(t)
	requireTool(t, "nft")
	f := newNSFirewall(t, ns)
	ctx := context.Background()
	g := []firewall.Grant{{Addr: netip.MustParseAddr("203.0.113.7"), Service: ssh, TTL: time.Minute}}
	if err := f.Grant(ctx, g); !errors.Is(err, ErrNotSetUp) {
		t.Fatalf("Grant before Setup = %v, want ErrNotSetUp", err)
	}
	if got, err := f.List(ctx); err != nil || got != nil {
		t.Fatalf("List before Setup = %v, %v; want nothing, no error", got, err)
	}
	for range 2 {
		if err := f.Teardown(ctx); err != nil {
			t.Fatalf("Teardown without a table: %v", err)
		}
	}
	setup(t, f, goldenLayout)
	if err := f.Grant(ctx, g); err != nil {
		t.Fatalf("Grant after the failed ones: %v (connection not usable?)", err)
	}
	if err := f.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if out := ns.nft(t, "list", "tables"); strings.Contains(out, "sesame") {
		t.Fatalf("table left after Teardown:\n%s", out)
	}
	if got, err := f.List(ctx); err != nil || got != nil {
		t.Fatalf("List after Teardown = %v, %v", got, err)
	}
}

// TestKernelManyGrants installs 100,000 grants in one call (one
// transaction) and reads them back.
func TestKernelManyGrants(t *testing.T) {
	if testing.Short() {
		t.Skip("100k grants: skipped with -short")
	}
	ns := newNetNS(t)
	f := newNSFirewall(t, ns, WithLogger(nil))
	ctx := context.Background()
	setup(t, f, goldenLayout)
	const n = 100_000
	gs := make([]firewall.Grant, n)
	for i := range gs {
		gs[i] = firewall.Grant{Addr: netip.AddrFrom4([4]byte{100, 64 + byte(i>>16), byte(i >> 8), byte(i)}), Service: ssh, TTL: 10 * time.Minute}
	}
	start := time.Now()
	if err := f.Grant(ctx, gs); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	start = time.Now()
	got, err := f.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d grants in one transaction: %v (%.0f grants/s); List: %v", n, took.Round(time.Millisecond),
		n/took.Seconds(), time.Since(start).Round(time.Millisecond))
	if len(got) != n {
		t.Fatalf("List returned %d grants, want %d", len(got), n)
	}
	start = time.Now()
	if err := f.Grant(ctx, gs); err != nil { // refresh all
		t.Fatal(err)
	}
	t.Logf("refreshing %d existing grants: %v", n, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	setup(t, f, goldenLayout)
	t.Logf("Setup keeping %d grants: %v", n, time.Since(start).Round(time.Millisecond))
	if got, err := f.List(ctx); err != nil || len(got) != n {
		t.Fatalf("after Setup: %d grants, %v; want %d", len(got), err, n)
	}
}

// TestKernelGrantAtomic: when the kernel rejects part of a transaction,
// nothing of it is applied, and the connection stays usable.
func TestKernelGrantAtomic(t *testing.T) {
	ns := newNetNS(t)
	requireTool(t, "nft")
	f := newNSFirewall(t, ns)
	ctx := context.Background()
	setup(t, f, goldenLayout)
	ns.nft(t, "delete", "rule", "inet", "sesame", "input", "handle",
		regexp.MustCompile(`@grants6 accept # handle (\d+)`).FindStringSubmatch(ns.nft(t, "-a", "list", "chain", "inet", "sesame", "input"))[1])
	ns.nft(t, "delete", "set", "inet", "sesame", "grants6")
	gs := []firewall.Grant{
		{Addr: netip.MustParseAddr("203.0.113.10"), Service: ssh, TTL: time.Minute},
		{Addr: netip.MustParseAddr("2001:db8::10"), Service: ssh, TTL: time.Minute},
	}
	err := f.Grant(ctx, gs)
	if !errors.Is(err, ErrNotSetUp) {
		t.Fatalf("Grant with grants6 missing = %v, want ErrNotSetUp", err)
	}
	t.Logf("error: %v", err)
	if out := ns.nft(t, "list", "set", "inet", "sesame", "grants4"); strings.Contains(out, "203.0.113.10") {
		t.Fatalf("half of a failed transaction was applied:\n%s", out)
	}
	setup(t, f, goldenLayout) // repairs the table
	if err := f.Grant(ctx, gs); err != nil {
		t.Fatal(err)
	}
	if got, err := f.List(ctx); err != nil || len(got) != 2 {
		t.Fatalf("List = %v, %v; want both grants", got, err)
	}
}

// With a bulk group, the watched-port rule splits: a rate-limited
// one-at-a-time rule, then a batched rule for the excess.
func TestKernelSetupBulkLogGroup(t *testing.T) {
	ns := newNetNS(t)
	requireTool(t, "nft")
	f := newNSFirewall(t, ns)
	l := goldenLayout
	l.BulkLogGroup, l.LogRate = 8, 5000
	setup(t, f, l)
	out := ns.nft(t, "list", "chain", "inet", "sesame", "input")
	for _, want := range []string{
		"meta l4proto . th dport @watched limit rate 5000/second burst 5000 packets log group 7 queue-threshold 1 drop",
		"meta l4proto . th dport @watched log group 8 queue-threshold 64 drop",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("chain lacks %q:\n%s", want, out)
		}
	}
	l.BulkLogGroup = l.LogGroup
	if err := f.Setup(context.Background(), l); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bulk group = log group: %v", err)
	}
}

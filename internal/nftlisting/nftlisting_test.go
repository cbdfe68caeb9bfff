package nftlisting

import (
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/firewall"
	"github.com/sesame-gw/sesame/internal/service"
)

func tcp(p uint16) service.Service { return service.Service{Proto: service.TCP, Port: p} }
func udp(p uint16) service.Service { return service.Service{Proto: service.UDP, Port: p} }

// goldenLayout is the layout of internal/firewall/nftables's
// TestKernelSetupGolden, whose listing nft produced in testdata/sesame.list.
var goldenLayout = firewall.Layout{
	Protected:    []service.Service{tcp(22), udp(53), tcp(8443)},
	Watched:      []service.Service{udp(62201), tcp(7000), tcp(7001)},
	LogGroup:     7,
	WatchTimeout: 30 * time.Second,
	AlwaysAllow: []netip.Prefix{
		netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.7/32"),
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("::1/128"),
	},
}

// sortHashSets sorts the element lists of the hash sets (protected,
// watched, ifaces), which nft lists in the kernel's per-set hash order.
func sortHashSets(listing string) string {
	lines := strings.Split(listing, "\n")
	var out []string
	set := ""
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if name, ok := strings.CutPrefix(strings.TrimSpace(l), "set "); ok {
			set = strings.TrimSuffix(name, " {")
		}
		rest, ok := strings.CutPrefix(l, "\t\telements = { ")
		if !ok || (set != "protected" && set != "watched" && set != "ifaces") {
			out = append(out, l)
			continue
		}
		var elems []string
		for {
			e, last := strings.CutSuffix(rest, " }")
			elems = append(elems, strings.TrimSuffix(strings.TrimSpace(e), ","))
			if last || i+1 >= len(lines) {
				break
			}
			i++
			rest = lines[i]
		}
		slices.Sort(elems)
		out = append(out, "\t\telements = { "+everyLine.join(elems)+" }")
	}
	return strings.Join(out, "\n")
}

func TestRenderMatchesBackendGolden(t *testing.T) {
	want, err := os.ReadFile("../firewall/nftables/testdata/sesame.list")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Render(goldenLayout, Default())
	if err != nil {
		t.Fatal(err)
	}
	if sortHashSets(got) != sortHashSets(string(want)) {
		t.Fatalf("rendering differs from the backend's golden listing\n--- got\n%s\n--- want\n%s", got, want)
	}
}

func TestRenderInterfacesAndEmptySets(t *testing.T) {
	got, err := Render(firewall.Layout{Protected: []service.Service{tcp(22), tcp(22)}, LogGroup: 9, Interfaces: []string{"eth0", "wg0", "eth0"}},
		Options{Table: "gw", Priority: 0})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"table inet gw {\n",
		"\tset watched {\n\t\ttype inet_proto . inet_service\n\t}\n", // no elements line when empty
		"\tset allow4 {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t}\n",
		"\t\telements = { tcp . 22 }\n", // duplicates once
		"\t\telements = { \"eth0\",\n\t\t\t     \"wg0\" }\n",
		"priority filter; policy accept;",
		"\t\tiifname != @ifaces return\n",
		"log group 9 queue-threshold 1 drop\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
}

func TestRenderBulkGroup(t *testing.T) {
	l := goldenLayout
	l.BulkLogGroup = 8
	got, err := Render(l, Default())
	if err != nil {
		t.Fatal(err)
	}
	want := "\t\tip6 saddr @allow6 accept\n" +
		"\t\tmeta l4proto . th dport @watched update @watch4 { ip saddr timeout 30s }\n" +
		"\t\tmeta l4proto . th dport @watched update @watch6 { ip6 saddr timeout 30s }\n" +
		"\t\tmeta l4proto . th dport @watched ip saddr @bulk4 update @bulk4 { ip saddr } log group 8 queue-threshold 64 drop\n" +
		"\t\tmeta l4proto . th dport @watched ip6 saddr @bulk6 update @bulk6 { ip6 saddr } log group 8 queue-threshold 64 drop\n" +
		"\t\tmeta l4proto . th dport @watched limit rate 2000/second burst 2000 packets log group 7 queue-threshold 1 drop\n" +
		"\t\tmeta l4proto . th dport @watched update @bulk4 { ip saddr } log group 8 queue-threshold 64 drop\n" +
		"\t\tmeta l4proto . th dport @watched update @bulk6 { ip6 saddr } log group 8 queue-threshold 64 drop\n" +
		"\t\tmeta l4proto . th dport @watched log group 8 queue-threshold 64 drop\n" +
		"\t\tct state new ip saddr @watch4 ip saddr @bulk4 log group 8 queue-threshold 64\n" +
		"\t\tct state new ip saddr @watch4 ip saddr != @bulk4 log group 7 queue-threshold 1\n"
	if !strings.Contains(got, want) {
		t.Fatalf("no split watched rule in\n%s", got)
	}
	sets := "\tset bulk4 {\n\t\ttype ipv4_addr\n\t\tsize 131072\n\t\tflags dynamic,timeout\n\t\ttimeout 5s\n\t}\n"
	if !strings.Contains(got, sets) {
		t.Fatalf("no bulk4 set in\n%s", got)
	}
}

func TestAllowSpans(t *testing.T) {
	p := func(s ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, x := range s {
			out = append(out, netip.MustParsePrefix(x))
		}
		return out
	}
	for _, tc := range []struct {
		in     []netip.Prefix
		v4, v6 []string
	}{
		{p("10.0.0.0/8", "10.1.0.0/16", "192.0.2.7/32"), []string{"10.0.0.0/8", "192.0.2.7"}, nil},
		{p("::ffff:192.0.2.0/120"), []string{"192.0.2.0/24"}, nil},
		{p("0.0.0.0/0", "::/0"), []string{"0.0.0.0/0"}, []string{"::/0"}},
		{p("2001:db8::/48", "2001:db8::1/128"), nil, []string{"2001:db8::/48"}},
	} {
		v4, v6, err := allowElems(tc.in)
		if err != nil || !slices.Equal(v4, tc.v4) || !slices.Equal(v6, tc.v6) {
			t.Errorf("allowElems(%v) = %v %v %v, want %v %v", tc.in, v4, v6, err, tc.v4, tc.v6)
		}
	}
	if s := (span{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.5")}).String(); s != "10.0.0.1-10.0.0.5" {
		t.Errorf("range span = %q", s)
	}
}

func TestPriority(t *testing.T) {
	for p, want := range map[int32]string{-10: "filter - 10", 0: "filter", 5: "filter + 5", 55: "security + 5",
		-150: "mangle", -300: "raw", -11: "-11", 200: "200", 61: "61"} {
		if got := priority(p); got != want {
			t.Errorf("priority(%d) = %q, want %q", p, got, want)
		}
	}
}

func TestRenderRefusesWhatTheBackendRefuses(t *testing.T) {
	for name, l := range map[string]firewall.Layout{
		"bad service":            {Protected: []service.Service{{Proto: service.TCP}}},
		"bad prefix":             {AlwaysAllow: []netip.Prefix{{}}},
		"long iface":             {Interfaces: []string{"a-very-long-interface"}},
		"empty iface":            {Interfaces: []string{""}},
		"bulk = log":             {LogGroup: 7, BulkLogGroup: 7},
		"negative watch timeout": {WatchTimeout: -time.Second},
		"watch timeout > 100d":   {WatchTimeout: 101 * 24 * time.Hour},
	} {
		if _, err := Render(l, Default()); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

func TestDelimiter(t *testing.T) {
	e := []string{"a", "b", "c", "d", "e"}
	if got := twoPerLine.join(e); got != "a, b"+newline+"c, d"+newline+"e" {
		t.Errorf("twoPerLine = %q", got)
	}
	if got := everyLine.join(e[:2]); got != "a"+newline+"b" {
		t.Errorf("everyLine = %q", got)
	}
}

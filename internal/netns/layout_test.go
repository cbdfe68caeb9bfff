package netns

import (
	"net/netip"
	"testing"
)

func TestNewLayout(t *testing.T) {
	l, err := newLayout("sesame", 258)
	if err != nil {
		t.Fatal(err)
	}
	want := layout{
		Index:    258,
		GW:       "sesame258-gw",
		Client:   "sesame258-cl",
		Prefix4:  netip.MustParsePrefix("10.253.2.0/24"),
		Prefix6:  netip.MustParsePrefix("fd5e:5a3e:ab00:102::/64"),
		GW4:      netip.MustParseAddr("10.253.2.1"),
		Client4:  netip.MustParseAddr("10.253.2.2"),
		Client4b: netip.MustParseAddr("10.253.2.3"),
		GW6:      netip.MustParseAddr("fd5e:5a3e:ab00:102::1"),
		Client6:  netip.MustParseAddr("fd5e:5a3e:ab00:102::2"),
		Client6b: netip.MustParseAddr("fd5e:5a3e:ab00:102::3"),
	}
	if l != want {
		t.Errorf("newLayout(sesame, 258) =\n%+v\nwant\n%+v", l, want)
	}
}

func TestNewLayoutInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		idx  int
	}{
		{"sesame", 0}, {"sesame", -1}, {"sesame", MaxIndex + 1},
		{"", 1}, {"Sesame", 1}, {"a/b", 1}, {"1abc", 1}, {"abcdefghijklmnopqrstuvwxyz", 1},
	} {
		if _, err := newLayout(tc.name, tc.idx); err == nil {
			t.Errorf("newLayout(%q, %d): no error", tc.name, tc.idx)
		}
	}
}

// Every index has its own prefixes, all inside the documented ranges.
func TestLayoutsDistinct(t *testing.T) {
	base4 := netip.MustParsePrefix("10.252.0.0/14")
	base6 := netip.MustParsePrefix("fd5e:5a3e:ab00::/48")
	seen := map[netip.Prefix]int{}
	for idx := 1; idx <= MaxIndex; idx++ {
		l, err := newLayout(DefaultName, idx)
		if err != nil {
			t.Fatal(err)
		}
		if !base4.Contains(l.Prefix4.Addr()) || !base6.Contains(l.Prefix6.Addr()) {
			t.Fatalf("index %d: %s %s outside %s %s", idx, l.Prefix4, l.Prefix6, base4, base6)
		}
		if !l.Prefix4.Addr().IsPrivate() || !l.Prefix6.Addr().IsPrivate() {
			t.Fatalf("index %d: prefixes not private", idx)
		}
		for _, p := range []netip.Prefix{l.Prefix4, l.Prefix6} {
			if prev, ok := seen[p]; ok {
				t.Fatalf("index %d and %d share %s", prev, idx, p)
			}
			seen[p] = idx
		}
		for _, a := range []netip.Addr{l.GW4, l.Client4, l.Client4b} {
			if !l.Prefix4.Contains(a) {
				t.Fatalf("index %d: %s not in %s", idx, a, l.Prefix4)
			}
		}
		for _, a := range []netip.Addr{l.GW6, l.Client6, l.Client6b} {
			if !l.Prefix6.Contains(a) {
				t.Fatalf("index %d: %s not in %s", idx, a, l.Prefix6)
			}
		}
	}
}

func TestCandidatesPermutation(t *testing.T) {
	for _, pc := range [][2]int{{1, 1}, {4194304, 7}, {12345, 0}, {MaxIndex, 1 << 40}} {
		c := candidates(pc[0], pc[1])
		if len(c) != MaxIndex {
			t.Fatalf("candidates%v: %d entries", pc, len(c))
		}
		seen := make([]bool, MaxIndex+1)
		for _, i := range c {
			if i < 1 || i > MaxIndex || seen[i] {
				t.Fatalf("candidates%v: bad or repeated index %d", pc, i)
			}
			seen[i] = true
		}
	}
	// Neighbouring PIDs and a process's successive benches start apart.
	if a, b := candidates(1000, 1)[0], candidates(1001, 1)[0]; a == b {
		t.Errorf("pids 1000 and 1001 start at the same index %d", a)
	}
	if a, b := candidates(1000, 1)[0], candidates(1000, 2)[0]; a == b {
		t.Errorf("counters 1 and 2 start at the same index %d", a)
	}
}

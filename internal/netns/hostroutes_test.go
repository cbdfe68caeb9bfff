package netns

import (
	"net/netip"
	"strings"
	"testing"
)

// Shapes taken from `ip -j -4 route show table all` (iproute2 6.1).
const routes4JSON = `[{"dst":"default","gateway":"192.0.2.1","dev":"eth0","flags":[]},
{"type":"blackhole","dst":"10.252.7.0/24","protocol":"83","flags":[]},
{"type":"blackhole","dst":"10.252.8.0/24","protocol":"static","flags":[]},
{"dst":"10.0.0.0/8","dev":"tun0","flags":[]},
{"dst":"10.253.0.0/16","dev":"eth1","protocol":"kernel","scope":"link","flags":[]},
{"type":"local","dst":"10.252.9.5","dev":"eth2","table":"local","protocol":"kernel","scope":"host","flags":[]},
{"type":"local","dst":"127.0.0.0/8","dev":"lo","table":"local","protocol":"kernel","scope":"host","flags":[]}]`

const routes6JSON = `[{"dst":"fd00::/64","dev":"eth0","protocol":"kernel","metric":256,"flags":[],"pref":"medium"},
{"type":"blackhole","dst":"fd5e:5a3e:ab00:7::/64","dev":"lo","protocol":"83","metric":1024,"flags":[],"pref":"medium"},
{"dst":"default","gateway":"fd00::1","dev":"eth0","metric":1024,"flags":[],"pref":"medium"},
{"type":"multicast","dst":"ff00::/8","dev":"eth0","table":"local","protocol":"kernel","metric":256,"flags":[],"pref":"medium"}]`

func TestConflict(t *testing.T) {
	r4, err := parseRoutes([]byte(routes4JSON))
	if err != nil {
		t.Fatal(err)
	}
	r6, err := parseRoutes([]byte(routes6JSON))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		routes []hostRoute
		p      string
		want   string // substring of the conflict, "" for none
	}{
		{r4, "10.252.1.0/24", ""},                        // default and 10/8 are wider than the guard limit
		{r4, "10.252.7.0/24", ""},                        // our own leftover blackhole
		{r4, "10.252.8.0/24", "blackhole 10.252.8.0/24"}, // somebody else's blackhole
		{r4, "10.253.4.0/24", "10.253.0.0/16"},           // a real /16 around it
		{r4, "10.252.9.0/24", "local 10.252.9.5"},        // a host address inside
		{r6, "fd5e:5a3e:ab00:1::/64", ""},
		{r6, "fd5e:5a3e:ab00:7::/64", ""},
		{r6, "fd00::/64", "fd00::/64"},
	} {
		got := conflict(tc.routes, netip.MustParsePrefix(tc.p))
		if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("conflict(%s) = %q, want %q", tc.p, got, tc.want)
		}
	}
	if !leftover(r4, netip.MustParsePrefix("10.252.7.0/24")) || leftover(r4, netip.MustParsePrefix("10.252.8.0/24")) {
		t.Error("leftover: want only the proto-83 blackhole")
	}
	if !leftover(r6, netip.MustParsePrefix("fd5e:5a3e:ab00:7::/64")) {
		t.Error("leftover: IPv6 tagged blackhole not found")
	}
}

func TestParseRoutesError(t *testing.T) {
	if _, err := parseRoutes([]byte("Error: garbage")); err == nil {
		t.Error("no error for non-JSON")
	}
}

package nftables

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/service"
)

func TestGrantKeyRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		addr string
		svc  service.Service
		want string
	}{
		{"192.0.2.1", service.Service{Proto: service.TCP, Port: 22}, "c0000201 06000000 00160000"},
		{"::ffff:192.0.2.1", service.Service{Proto: service.UDP, Port: 65535}, "c0000201 11000000 ffff0000"},
		{"2001:db8::1", service.Service{Proto: service.TCP, Port: 443}, "20010db8 00000000 00000000 00000001 06000000 01bb0000"},
		{"fe80::1%eth0", service.Service{Proto: service.UDP, Port: 1}, "fe800000 00000000 00000000 00000001 11000000 00010000"},
	} {
		a := netip.MustParseAddr(tc.addr)
		k := grantKey(a, tc.svc)
		if got := words(k); got != tc.want {
			t.Errorf("grantKey(%s, %v) = %s, want %s", tc.addr, tc.svc, got, tc.want)
		}
		ga, gs, ok := parseGrantKey(k)
		if !ok || ga != normAddr(a) || gs != tc.svc {
			t.Errorf("parseGrantKey(grantKey(%s, %v)) = %v, %v, %v", tc.addr, tc.svc, ga, gs, ok)
		}
	}
	bad := grantKey(netip.MustParseAddr("192.0.2.1"), service.Service{Proto: service.TCP, Port: 22})
	bad[5] = 1 // padding of the protocol field
	for _, k := range [][]byte{nil, make([]byte, 11), make([]byte, 16), bad} {
		if _, _, ok := parseGrantKey(k); ok {
			t.Errorf("parseGrantKey(% x) accepted", k)
		}
	}
	if got := words(serviceKey(service.Service{Proto: service.UDP, Port: 62201})); got != "11000000 f2f90000" {
		t.Errorf("serviceKey = %s", got)
	}
}

// words prints a key as nft --debug=netlink does, but in network order.
func words(b []byte) string {
	var s []string
	for i := 0; i < len(b); i += 4 {
		s = append(s, fmt.Sprintf("%x", b[i:i+4]))
	}
	return strings.Join(s, " ")
}

func TestIntervalElems(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string // start keys plain, end keys with a trailing "]"
	}{
		{nil, ""},
		{[]string{"192.0.2.0/24"}, "0.0.0.0] 192.0.2.0 192.0.3.0]"},
		{[]string{"192.0.2.77/24"}, "0.0.0.0] 192.0.2.0 192.0.3.0]"}, // masked
		{[]string{"10.0.0.0/8", "10.1.0.0/16", "198.51.100.7/32"}, "0.0.0.0] 10.0.0.0 11.0.0.0] 198.51.100.7 198.51.100.8]"},
		{[]string{"10.1.0.0/16", "10.0.0.0/8"}, "0.0.0.0] 10.0.0.0 11.0.0.0]"},
		{[]string{"10.0.0.0/8", "11.0.0.0/8"}, "0.0.0.0] 10.0.0.0 11.0.0.0] 11.0.0.0 12.0.0.0]"}, // adjacent kept apart, as nft does
		{[]string{"0.0.0.0/0"}, "0.0.0.0"},
		{[]string{"0.0.0.0/8"}, "0.0.0.0 1.0.0.0]"},
		{[]string{"255.255.255.0/24"}, "0.0.0.0] 255.255.255.0"},
		{[]string{"::/0"}, "::"},
		{[]string{"2001:db8::/32", "::1/128"}, ":: ] ::1 ::2] 2001:db8:: 2001:db9::]"},
	} {
		var ps []netip.Prefix
		for _, s := range tc.in {
			ps = append(ps, netip.MustParsePrefix(s))
		}
		var got []string
		for _, e := range intervalElems(ps) {
			a, _ := netip.AddrFromSlice(e.Key)
			s := a.String()
			if e.End {
				s += "]"
			}
			got = append(got, s)
		}
		want := strings.ReplaceAll(tc.want, ":: ]", "::]")
		if g := strings.Join(got, " "); g != want {
			t.Errorf("intervalElems(%v) = %q, want %q", tc.in, g, want)
		}
	}
}

func TestTimeoutFor(t *testing.T) {
	for _, tc := range []struct{ in, want time.Duration }{
		{time.Nanosecond, time.Millisecond},
		{time.Millisecond, time.Millisecond},
		{1500*time.Millisecond + 1, 1501 * time.Millisecond},
		{time.Minute, time.Minute},
		{MaxTTL, MaxTTL},
	} {
		if got := timeoutFor(tc.in); got != tc.want {
			t.Errorf("timeoutFor(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

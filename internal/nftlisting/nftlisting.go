// Package nftlisting renders, without the kernel, the table that the
// nftables backend (internal/firewall/nftables) installs for a
// firewall.Layout, in the text `nft list table inet sesame` prints (nft
// 1.0, the listing in internal/firewall/nftables/testdata/sesame.list).
// `sesame serve --check` prints it; the output is also valid input for
// `nft -f` and `nft -c -f`.
//
// The package is pure: a layout in, text out. The grant, watch and bulk sets are
// rendered empty (their elements are live state, not configuration).
// Elements of the hash sets (protected, watched, ifaces) are listed in the
// layout's order; nft lists them in the kernel's hash order, so compare
// those element lists as sets.
package nftlisting

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/sesame-gw/sesame/internal/firewall"
	"github.com/sesame-gw/sesame/internal/service"
)

// Defaults, the same as the nftables backend's (nftables.DefaultTable and
// nftables.DefaultPriority, which only build on Linux).
const (
	DefaultTable    = "sesame"
	DefaultPriority = -10
)

// maxTTL is the backend's nftables.MaxTTL, the longest watch timeout.
const maxTTL = 100 * 24 * time.Hour

// ErrInvalid is wrapped when the layout cannot be installed (the nftables
// backend refuses the same layouts).
var ErrInvalid = errors.New("nftlisting: invalid layout")

// ifnamsiz is the kernel's IFNAMSIZ: interface names are shorter.
const ifnamsiz = 16

// Options name the table and the input chain's priority. The zero value
// means DefaultTable and priority 0; use Default for the backend's defaults.
type Options struct {
	Table    string
	Priority int32
}

// Default returns the options the daemon runs with.
func Default() Options { return Options{Table: DefaultTable, Priority: DefaultPriority} }

// Render returns the listing of the table for l, ending in a newline.
func Render(l firewall.Layout, opt Options) (string, error) {
	if opt.Table == "" {
		opt.Table = DefaultTable
	}
	if l.WatchTimeout < 0 || l.WatchTimeout > maxTTL {
		return "", fmt.Errorf("%w: watch timeout %v not in [0, %v]", ErrInvalid, l.WatchTimeout, maxTTL)
	}
	if l.BulkLogGroup != 0 && l.BulkLogGroup == l.LogGroup {
		return "", fmt.Errorf("%w: bulk log group %d is the log group", ErrInvalid, l.BulkLogGroup)
	}
	protected, err := services("protected", l.Protected)
	if err != nil {
		return "", err
	}
	watched, err := services("watched", l.Watched)
	if err != nil {
		return "", err
	}
	allow4, allow6, err := allowElems(l.AlwaysAllow)
	if err != nil {
		return "", err
	}
	ifaces, only, err := ifaceElems(l.Interfaces)
	if err != nil {
		return "", err
	}

	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", opt.Table)
	type setDef struct {
		name, typ, flags string
		delim            delimiter
		elems            []string
		size             int    // 0: none
		timeout          string // the set's default timeout, "" none
	}
	sets := []setDef{
		{"grants4", "ipv4_addr . inet_proto . inet_service", "timeout", everyLine, nil, 0, ""},
		{"grants6", "ipv6_addr . inet_proto . inet_service", "timeout", everyLine, nil, 0, ""},
		{"watch4", "ipv4_addr", "dynamic,timeout", everyLine, nil, firewall.WatchSources, ""},
		{"watch6", "ipv6_addr", "dynamic,timeout", everyLine, nil, firewall.WatchSources, ""},
	}
	if l.BulkLogGroup != 0 {
		// The sources of the batched group (see the backend's rules).
		to := duration(firewall.BulkSourceTimeout)
		sets = append(sets,
			setDef{"bulk4", "ipv4_addr", "dynamic,timeout", everyLine, nil, firewall.BulkSources, to},
			setDef{"bulk6", "ipv6_addr", "dynamic,timeout", everyLine, nil, firewall.BulkSources, to})
	}
	sets = append(sets, []setDef{
		{"protected", "inet_proto . inet_service", "", everyLine, protected, 0, ""},
		{"watched", "inet_proto . inet_service", "", everyLine, watched, 0, ""},
		{"allow4", "ipv4_addr", "interval", twoPerLine, allow4, 0, ""},
		{"allow6", "ipv6_addr", "interval", everyLine, allow6, 0, ""},
		{"ifaces", "ifname", "", everyLine, ifaces, 0, ""},
	}...)
	for _, s := range sets {
		fmt.Fprintf(&b, "\tset %s {\n\t\ttype %s\n", s.name, s.typ)
		if s.size != 0 {
			fmt.Fprintf(&b, "\t\tsize %d\n", s.size)
		}
		if s.flags != "" {
			fmt.Fprintf(&b, "\t\tflags %s\n", s.flags)
		}
		if s.timeout != "" {
			fmt.Fprintf(&b, "\t\ttimeout %s\n", s.timeout)
		}
		if len(s.elems) > 0 {
			fmt.Fprintf(&b, "\t\telements = { %s }\n", s.delim.join(s.elems))
		}
		b.WriteString("\t}\n\n")
	}
	ifaceRule := "iifname @ifaces return"
	if only {
		ifaceRule = "iifname != @ifaces return"
	}
	group := fmt.Sprintf("log group %d queue-threshold 1", l.LogGroup)
	const port = "meta l4proto . th dport @watched "
	watchedRules := []string{port + group + " drop"}
	scanRules := []string{
		"ct state new ip saddr @watch4 " + group,
		"ct state new ip6 saddr @watch6 " + group,
	}
	if l.BulkLogGroup != 0 {
		// With a bulk group, watched packets beyond the rate go to it in
		// batches, and so do all logged packets of their sources while
		// these are in bulk4/bulk6 (see firewall.Layout.BulkLogGroup and
		// the backend's rules).
		rate := l.LogRate
		if rate == 0 {
			rate = firewall.DefaultLogRate
		}
		batched := fmt.Sprintf("log group %d queue-threshold %d", l.BulkLogGroup, firewall.BulkQueueThreshold)
		watchedRules = []string{
			port + "ip saddr @bulk4 update @bulk4 { ip saddr } " + batched + " drop",
			port + "ip6 saddr @bulk6 update @bulk6 { ip6 saddr } " + batched + " drop",
			fmt.Sprintf(port+"limit rate %d/second burst %d packets %s drop", rate, rate, group),
			port + "update @bulk4 { ip saddr } " + batched + " drop",
			port + "update @bulk6 { ip6 saddr } " + batched + " drop",
			port + batched + " drop",
		}
		scanRules = []string{
			"ct state new ip saddr @watch4 ip saddr @bulk4 " + batched,
			"ct state new ip saddr @watch4 ip saddr != @bulk4 " + group,
			"ct state new ip6 saddr @watch6 ip6 saddr @bulk6 " + batched,
			"ct state new ip6 saddr @watch6 ip6 saddr != @bulk6 " + group,
		}
	}
	if l.WatchTimeout > 0 {
		// The kernel marks the sources of watched packets (knocks) for
		// the longest sequence timeout, rounded up to seconds.
		to := duration((l.WatchTimeout + time.Second - 1).Truncate(time.Second))
		watchedRules = append([]string{
			port + "update @watch4 { ip saddr timeout " + to + " }",
			port + "update @watch6 { ip6 saddr timeout " + to + " }",
		}, watchedRules...)
	}
	watchedRules = append(datagramRules(l, group), watchedRules...)
	fmt.Fprintf(&b, "\tchain input {\n\t\ttype filter hook input priority %s; policy accept;\n", priority(opt.Priority))
	rules := []string{
		ifaceRule,
		"ct state established,related accept",
		"ip saddr @allow4 accept",
		"ip6 saddr @allow6 accept",
	}
	rules = append(rules, watchedRules...)
	rules = append(rules, scanRules...)
	for _, r := range append(rules,
		"ip saddr . meta l4proto . th dport @grants4 accept",
		"ip6 saddr . meta l4proto . th dport @grants6 accept",
		"meta l4proto . th dport @protected drop",
	) {
		fmt.Fprintf(&b, "\t\t%s\n", r)
	}
	b.WriteString("\t}\n}\n")
	return b.String(), nil
}

// duration writes d as nft lists a timeout (nftables src/datatype.c,
// time_print): days, hours, minutes, seconds and milliseconds, the zero
// parts left out.
func duration(d time.Duration) string {
	ms := d.Milliseconds()
	var b strings.Builder
	for _, u := range []struct {
		ms   int64
		unit string
	}{{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}, {1, "ms"}} {
		if n := ms / u.ms; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.unit)
			ms -= n * u.ms
		}
	}
	if b.Len() == 0 {
		return "0s"
	}
	return b.String()
}

// delimiter is how nft separates the elements of a set in a listing
// (nftables src/expression.c, calculate_delim): IPv4 addresses two to a
// line, concatenations, IPv6 addresses and names one per line.
type delimiter int

const (
	everyLine delimiter = iota
	twoPerLine
)

const newline = ",\n\t\t\t     "

func (d delimiter) join(elems []string) string {
	var b strings.Builder
	for i, e := range elems {
		if i > 0 {
			if d == twoPerLine && i%2 == 1 {
				b.WriteString(", ")
			} else {
				b.WriteString(newline)
			}
		}
		b.WriteString(e)
	}
	return b.String()
}

func services(set string, in []service.Service) ([]string, error) {
	seen := make(map[service.Service]bool, len(in))
	var out []string
	for _, s := range in {
		if !s.Valid() {
			return nil, fmt.Errorf("%w: %s service %v", ErrInvalid, set, s)
		}
		if !seen[s] {
			seen[s] = true
			out = append(out, fmt.Sprintf("%s . %d", s.Proto, s.Port))
		}
	}
	return out, nil
}

func ifaceElems(names []string) (elems []string, only bool, err error) {
	if len(names) == 0 {
		return []string{`"lo"`}, false, nil
	}
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if n == "" || len(n) >= ifnamsiz || strings.ContainsAny(n, "\"\\\n") {
			return nil, false, fmt.Errorf("%w: interface name %q", ErrInvalid, n)
		}
		if !seen[n] {
			seen[n] = true
			elems = append(elems, `"`+n+`"`)
		}
	}
	return elems, true, nil
}

// allowElems merges overlapping prefixes as the backend does (and nft
// lists interval sets sorted), and writes each span as nft does: a single
// address, a prefix, or first-last.
func allowElems(prefixes []netip.Prefix) (v4, v6 []string, err error) {
	var p4, p6 []netip.Prefix
	for _, p := range prefixes {
		if !p.IsValid() {
			return nil, nil, fmt.Errorf("%w: always-allow prefix %v", ErrInvalid, p)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-unmapped(p.Addr())).Masked()
		if p.Addr().Is4() {
			p4 = append(p4, p)
		} else {
			p6 = append(p6, p)
		}
	}
	return spans(p4), spans(p6), nil
}

func unmapped(a netip.Addr) int {
	if a.Is4In6() {
		return 96
	}
	return 0
}

type span struct{ first, last netip.Addr }

func spans(ps []netip.Prefix) []string {
	all := make([]span, len(ps))
	for i, p := range ps {
		all[i] = span{p.Addr(), lastAddr(p)}
	}
	slices.SortFunc(all, func(a, b span) int {
		if c := a.first.Compare(b.first); c != 0 {
			return c
		}
		return b.last.Compare(a.last)
	})
	var merged []span
	for _, s := range all {
		if n := len(merged); n > 0 && s.first.Compare(merged[n-1].last) <= 0 {
			if s.last.Compare(merged[n-1].last) > 0 {
				merged[n-1].last = s.last
			}
			continue
		}
		merged = append(merged, s)
	}
	out := make([]string, len(merged))
	for i, s := range merged {
		out[i] = s.String()
	}
	return out
}

func (s span) String() string {
	for bits := 0; bits <= s.first.BitLen(); bits++ {
		p := netip.PrefixFrom(s.first, bits)
		if p.Masked().Addr() == s.first && lastAddr(p) == s.last {
			if bits == s.first.BitLen() {
				return s.first.String()
			}
			return p.String()
		}
	}
	return s.first.String() + "-" + s.last.String()
}

// lastAddr is the highest address in p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// priority writes a chain priority as nft does for the inet input hook
// (nftables src/rule.c, prio2str): a standard priority name when within 10
// of one, numeric otherwise.
func priority(p int32) string {
	for _, std := range []struct {
		name string
		val  int32
	}{{"raw", -300}, {"mangle", -150}, {"filter", 0}, {"security", 50}} {
		switch off := p - std.val; {
		case off == 0:
			return std.name
		case off > 0 && off <= 10:
			return fmt.Sprintf("%s + %d", std.name, off)
		case off < 0 && off >= -10:
			return fmt.Sprintf("%s - %d", std.name, -off)
		}
	}
	return fmt.Sprint(p)
}

// datagramRules are the in-kernel pre-filter rules of l.Datagrams, per SPA
// port in port order, as the backend installs them (its datagramRules):
// the length range, the first byte when the shapes restrict it, and with a
// bulk group the datagrams' own share of the one-at-a-time group.
func datagramRules(l firewall.Layout, group string) []string {
	f := l.Datagrams
	if !f.Active() {
		return nil
	}
	minLen, maxLen, first := f.Bounds()
	ports := slices.Clone(f.Ports)
	slices.Sort(ports)
	ports = slices.Compact(ports)
	var out []string
	for _, p := range ports {
		out = append(out, fmt.Sprintf("udp dport %d udp length != %d-%d drop", p, minLen+8, maxLen+8))
		if len(first) > 0 {
			var cmp []string
			for _, c := range first {
				cmp = append(cmp, fmt.Sprintf("@th,64,8 != 0x%02x", c))
			}
			out = append(out, fmt.Sprintf("udp dport %d %s drop", p, strings.Join(cmp, " ")))
		}
		if l.BulkLogGroup != 0 {
			rate := l.LogRate
			if rate == 0 {
				rate = firewall.DefaultLogRate
			}
			out = append(out, fmt.Sprintf("udp dport %d limit rate %d/second burst %d packets %s drop", p, rate, rate, group))
		}
	}
	return out
}

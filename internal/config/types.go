package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/sesame-gw/sesame/internal/service"
)

// Duration is a time.Duration written as "30s", "5m", "1h30m" or "90d".
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ParseDuration reads a Go duration, plus a whole number of days ("90d").
func ParseDuration(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseUint(n, 10, 16)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		if days == 0 {
			return 0, fmt.Errorf("duration %q is not positive", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (write 30s, 5m, 1h or 90d)", s)
	}
	if v <= 0 {
		return 0, fmt.Errorf("duration %q is not positive", s)
	}
	return v, nil
}

// Service is a service.Service written "22/tcp" (a bare port is TCP).
type Service service.Service

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Service) UnmarshalText(b []byte) error {
	v, err := service.Parse(string(b), service.TCP)
	if err != nil {
		return err
	}
	*s = Service(v)
	return nil
}

// Range is a service.Range written "22/tcp" or "60000-61000/udp".
type Range service.Range

// UnmarshalText implements encoding.TextUnmarshaler.
func (r *Range) UnmarshalText(b []byte) error {
	v, err := service.ParseRange(string(b), service.TCP)
	if err != nil {
		return err
	}
	*r = Range(v)
	return nil
}

// Prefix is a netip.Prefix; a bare address means a single host.
type Prefix netip.Prefix

// UnmarshalText implements encoding.TextUnmarshaler.
func (p *Prefix) UnmarshalText(b []byte) error {
	v, err := ParsePrefix(string(b))
	if err != nil {
		return err
	}
	*p = Prefix(v)
	return nil
}

// ParsePrefix reads "192.0.2.0/24", "2001:db8::/32" or a single address.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid prefix %q", s)
		}
		if p != p.Masked() {
			return netip.Prefix{}, fmt.Errorf("prefix %q has host bits set (did you mean %v?)", s, p.Masked())
		}
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-unmapBits(p.Addr())), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid address %q", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func unmapBits(a netip.Addr) int {
	if a.Is4In6() {
		return 96
	}
	return 0
}

func prefixes(in []Prefix) []netip.Prefix {
	out := make([]netip.Prefix, len(in))
	for i, p := range in {
		out[i] = netip.Prefix(p)
	}
	return out
}

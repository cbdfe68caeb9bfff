package firewalltest

import (
	"net/netip"
	"slices"

	"github.com/sesame-gw/sesame/internal/firewall"
	"github.com/sesame-gw/sesame/internal/service"
)

// Layout returns the layout of the last successful Setup, and false before
// Setup or after Teardown.
func (f *Fake) Layout() (firewall.Layout, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.layout == nil {
		return firewall.Layout{}, false
	}
	return copyLayout(*f.layout), true
}

// Grants returns the live grants with their remaining TTL, like List but
// without recording a call.
func (f *Fake) Grants() []firewall.Grant {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.live()
}

// Granted reports whether addr holds a live grant for s.
func (f *Fake) Granted(addr netip.Addr, s service.Service) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	exp, ok := f.grants[grantKey{norm(addr), s}]
	return ok && f.now().Before(exp)
}

// Admits reports whether Sesame's table lets a new connection from addr to
// s through, following the rule order of the nftables backend: always-allow
// prefixes pass, watched services are dropped (and logged), granted ones
// pass, protected ones are dropped, everything else passes. Without a table
// everything passes.
func (f *Fake) Admits(addr netip.Addr, s service.Service) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.layout == nil {
		return true
	}
	addr = norm(addr)
	for _, p := range f.layout.AlwaysAllow {
		if p.Contains(addr) {
			return true
		}
	}
	if slices.Contains(f.layout.Watched, s) {
		return false
	}
	if exp, ok := f.grants[grantKey{addr, s}]; ok && f.now().Before(exp) {
		return true
	}
	return !slices.Contains(f.layout.Protected, s)
}

// Calls returns the recorded calls, oldest first.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// CallsOf returns the recorded calls of op, oldest first.
func (f *Fake) CallsOf(op Op) []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Call
	for _, c := range f.calls {
		if c.Op == op {
			out = append(out, c)
		}
	}
	return out
}

package spagw

import (
	"github.com/sesame-gw/sesame/internal/firewall"
	"github.com/sesame-gw/sesame/internal/policy"
	"github.com/sesame-gw/sesame/internal/service"
)

// Grants expands a decision into one firewall grant per port, in request
// order, each port once. The number of grants is bounded by the client's
// allow list (policy.Decide grants only allowed ports, and the config
// bounds each allowed range).
func Grants(d policy.Decision) []firewall.Grant {
	n := 0
	for _, r := range d.Services {
		n += r.Len()
	}
	n = min(n, 1<<16)
	out := make([]firewall.Grant, 0, n)
	seen := make(map[service.Service]bool, n)
	for _, r := range d.Services {
		for _, s := range r.Services() {
			if seen[s] {
				continue
			}
			seen[s] = true
			out = append(out, firewall.Grant{Addr: d.Addr, Service: s, TTL: d.Duration})
		}
	}
	return out
}

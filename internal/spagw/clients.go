package spagw

import (
	"fmt"
	"strings"

	"github.com/sesame-gw/sesame/internal/gateway"
	"github.com/sesame-gw/sesame/internal/policy"
	"github.com/sesame-gw/sesame/internal/service"
)

var _ gateway.ClientLister = (*Handler)(nil)

// Clients implements gateway.ClientLister for `sesame status`: one line
// per [[client]] table, sorted by name, then one for certificate clients
// when [pki] is on. A line names the client, its credential kind, what it
// may open and its longest grant, as status shows a door:
//
//	laptop (spa key) → 22/tcp 8000-8010/tcp for up to 1m0s
//	laptop (spa key) → 22/tcp for up to 1m0s, expires 2027-01-01 00:00 UTC
//	certificates of CA "Example Root" (spa cert) → as certified, within 22/tcp for up to 10m0s
//
// No key material is shown. It reads the settings in force (the last
// Update) and is safe for concurrent use.
func (h *Handler) Clients() []string {
	s := h.settings.Load()
	if s == nil {
		return nil
	}
	return describeClients(*s)
}

func describeClients(s Settings) []string {
	var out []string
	for _, c := range s.Clients.All() {
		out = append(out, describeKeyClient(c))
	}
	if c := s.Certs; c != nil && c.Verifier != nil {
		ca := "?"
		if cert := c.Verifier.CA(); cert != nil {
			ca = cert.Subject.CommonName
		}
		allow := "as certified"
		if len(c.Local.Allow) > 0 {
			allow += ", within " + rangeList(c.Local.Allow)
		}
		max := "as certified"
		if c.Local.MaxDuration > 0 {
			max = "up to " + c.Local.MaxDuration.String()
		}
		out = append(out, fmt.Sprintf("certificates of CA %q (spa cert) → %s for %s", ca, allow, max))
	}
	return out
}

func describeKeyClient(c *policy.Client) string {
	max := c.MaxDuration
	if max <= 0 {
		max = policy.DefaultMaxDuration
	}
	line := fmt.Sprintf("%s (spa key) → %s for up to %v", c.Name, rangeList(c.Allow), max)
	if !c.Expires.IsZero() {
		line += ", expires " + c.Expires.UTC().Format("2006-01-02 15:04 UTC")
	}
	return line
}

// rangeList is rs space-separated, as status lists a door's services.
func rangeList(rs []service.Range) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = r.String()
	}
	return strings.Join(s, " ")
}

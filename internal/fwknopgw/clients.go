package fwknopgw

import (
	"fmt"
	"strings"

	"github.com/sesame-gw/sesame/internal/fwknop/accessconf"
	"github.com/sesame-gw/sesame/internal/gateway"
)

var _ gateway.ClientLister = (*Handler)(nil)

// Clients implements gateway.ClientLister for `sesame status`: one line
// per access.conf stanza, in file order, naming it as fwknopd's logs do,
// with the sources it accepts, what it may open and its grant times:
//
//	stanza #1 (/etc/fwknop/access.conf:3) (fwknop, hmac sha256) from ANY → 22/tcp for 30s, up to 5m0s
//	stanza #2 (/etc/fwknop/access.conf:11) (fwknop, no hmac) from 10.0.0.0/8 → any protected service for 30s, up to 5m0s, user alice, expires 2027-01-01 00:00 UTC
//
// No key material is shown. It reads the settings in force (the last
// Update) and is safe for concurrent use.
func (h *Handler) Clients() []string {
	s := h.cur.Load()
	if s == nil {
		return nil
	}
	out := make([]string, 0, len(s.Stanzas))
	for _, st := range s.Stanzas {
		out = append(out, describeStanza(st))
	}
	return out
}

func describeStanza(st *accessconf.Stanza) string {
	mac := "no hmac"
	if len(st.Keys.HMACKey) > 0 {
		mac = "hmac " + strings.ToLower(st.Keys.HMACHash.String())
	}
	open := "any protected service"
	if len(st.OpenPorts) > 0 {
		s := make([]string, len(st.OpenPorts))
		for i, p := range st.OpenPorts {
			s[i] = p.String()
		}
		open = strings.Join(s, " ")
	}
	line := fmt.Sprintf("%s (fwknop, %s) from %s → %s for %v, up to %v",
		st.Name(), mac, st.Source, open, st.FWAccessTimeout, st.MaxFWTimeout)
	if st.RequireUsername != "" {
		line += ", user " + st.RequireUsername
	}
	if !st.Expire.IsZero() {
		line += ", expires " + st.Expire.UTC().Format("2006-01-02 15:04 UTC")
	}
	return line
}

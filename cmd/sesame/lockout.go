package main

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/sesame-gw/sesame/internal/service"
)

// sshLockout returns a warning when the SSH session described by
// sshConnection (OpenSSH's SSH_CONNECTION: "CLIENT_IP CLIENT_PORT
// SERVER_IP SERVER_PORT") reaches a TCP port that protected hides, from an
// address no always_allow prefix covers. The session itself survives
// (Sesame accepts established connections first), but the next login
// from there needs a knock or SPA packet. It returns "" otherwise, and for
// a malformed or empty value.
func sshLockout(sshConnection string, protected []service.Service, allow []netip.Prefix) string {
	f := strings.Fields(sshConnection)
	if len(f) != 4 {
		return ""
	}
	client, err := netip.ParseAddr(f[0])
	if err != nil {
		return ""
	}
	port, err := strconv.ParseUint(f[3], 10, 16)
	if err != nil {
		return ""
	}
	svc := service.Service{Proto: service.TCP, Port: uint16(port)}
	hidden := false
	for _, s := range protected {
		if s == svc {
			hidden = true
		}
	}
	if !hidden {
		return ""
	}
	client = client.WithZone("").Unmap()
	for _, p := range allow {
		if p.Contains(client) {
			return ""
		}
	}
	return fmt.Sprintf("this configuration hides %v, the port of the SSH session in use (from %v), and always_allow does not cover %v: "+
		"the session stays up, but a new login from there needs a knock or SPA packet first; "+
		"add %q to [gateway] always_allow to keep a way in", svc, client, client, netip.PrefixFrom(client, client.BitLen()).String())
}

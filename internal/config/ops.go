package config

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
)

// DefaultControlSocket is where `sesame serve` listens for `sesame status`,
// `reload` and `revoke` (systemd's RuntimeDirectory=sesame makes /run/sesame).
const DefaultControlSocket = "/run/sesame/control.sock"

// DefaultMetricsHost is the address a bare metrics_listen port binds to.
const DefaultMetricsHost = "127.0.0.1"

// maxSocketPath is the longest path a unix socket address holds
// (sun_path is 108 bytes with the terminating NUL).
const maxSocketPath = 107

// Ops are the [gateway] keys for running Sesame as a service; see
// docs/operations.md. The zero value (after defaults) means no audit log,
// no metrics endpoint and the control socket at DefaultControlSocket.
type Ops struct {
	// AuditLog is the path of the append-only JSON-lines audit log of every
	// decision; "" writes none.
	AuditLog string `toml:"audit_log"`
	// MetricsListen is the Prometheus endpoint's address, "IP:PORT" or a
	// bare "PORT" on 127.0.0.1; "" serves none.
	MetricsListen string `toml:"metrics_listen"`
	// ControlSocket is the root-only unix socket of the control commands.
	ControlSocket string `toml:"control_socket"`
}

// MetricsAddr returns the metrics endpoint's address; ok is false when
// metrics are off. Valid after Parse.
func (o Ops) MetricsAddr() (addr netip.AddrPort, ok bool) {
	a, err := parseListen(o.MetricsListen)
	return a, err == nil && o.MetricsListen != ""
}

func (g *Gateway) opsDefaults() {
	if g.ControlSocket == "" {
		g.ControlSocket = DefaultControlSocket
	}
}

func (c *Config) validateOps(v *validator) {
	o := &c.Gateway.Ops
	if o.AuditLog != "" && !cleanAbs(o.AuditLog) {
		gatewayErr(v, "audit_log", "%q is not an absolute, clean path", o.AuditLog)
	}
	if !cleanAbs(o.ControlSocket) {
		gatewayErr(v, "control_socket", "%q is not an absolute, clean path", o.ControlSocket)
	} else if len(o.ControlSocket) > maxSocketPath {
		gatewayErr(v, "control_socket", "%d bytes long, a unix socket path holds at most %d", len(o.ControlSocket), maxSocketPath)
	}
	if o.AuditLog != "" && o.AuditLog == o.ControlSocket {
		gatewayErr(v, "audit_log", "is the control socket's path")
	}
	if o.MetricsListen != "" {
		if _, err := parseListen(o.MetricsListen); err != nil {
			gatewayErr(v, "metrics_listen", "%q %v", o.MetricsListen, err)
		}
	}
}

// gatewayErr records an error for a key of the plain [gateway] table,
// named gateway.KEY as unknown keys are.
func gatewayErr(v *validator, key, format string, args ...any) {
	v.errs = append(v.errs, &Error{File: v.file, Line: locate(v.src, "gateway", 0, key), Key: "gateway." + key, Err: fmt.Errorf(format, args...)})
}

func cleanAbs(p string) bool { return filepath.IsAbs(p) && filepath.Clean(p) == p && p != "/" }

type listenError string

func (e listenError) Error() string { return string(e) }

// parseListen reads "IP:PORT", "[IPv6]:PORT", "localhost:PORT" or "PORT".
// Host names other than localhost are refused: the daemon must not depend
// on DNS to start.
func parseListen(s string) (netip.AddrPort, error) {
	if !strings.Contains(s, ":") {
		s = DefaultMetricsHost + ":" + s
	}
	if h, p, ok := strings.Cut(s, ":"); ok && h == "localhost" {
		s = DefaultMetricsHost + ":" + p
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		i := strings.LastIndex(s, ":")
		if _, perr := strconv.ParseUint(s[i+1:], 10, 16); perr != nil {
			return netip.AddrPort{}, listenError("has no valid port (write 127.0.0.1:9273, [::1]:9273 or 9273)")
		}
		return netip.AddrPort{}, listenError("is not IP:PORT (an IP address, not a host name; write 127.0.0.1:9273 or [::1]:9273)")
	}
	if ap.Port() == 0 {
		return netip.AddrPort{}, listenError("has port 0")
	}
	if ap.Addr().Zone() != "" {
		return netip.AddrPort{}, listenError("has a zone")
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

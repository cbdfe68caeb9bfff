package config

import (
	"net/netip"
	"strings"
	"testing"
)

const opsDoor = `
[[door]]
name = "ssh"
sequence = ["7000/tcp", "8000/udp", "9000/tcp"]
open = ["22/tcp"]
`

func TestOpsDefaults(t *testing.T) {
	c, err := Parse("t.toml", []byte(opsDoor))
	if err != nil {
		t.Fatal(err)
	}
	o := c.Gateway.Ops
	if o.ControlSocket != DefaultControlSocket || o.AuditLog != "" || o.MetricsListen != "" {
		t.Fatalf("defaults %+v", o)
	}
	if _, ok := o.MetricsAddr(); ok {
		t.Fatal("metrics on by default")
	}
}

func TestOpsKeys(t *testing.T) {
	for listen, want := range map[string]string{
		"9273":                "127.0.0.1:9273",
		"127.0.0.1:9100":      "127.0.0.1:9100",
		"localhost:9100":      "127.0.0.1:9100",
		"[::1]:9273":          "[::1]:9273",
		"0.0.0.0:9273":        "0.0.0.0:9273",
		"[::ffff:10.0.0.1]:1": "10.0.0.1:1",
	} {
		src := `[gateway]
audit_log = "/var/log/sesame/audit.log"
control_socket = "/tmp/t/control.sock"
metrics_listen = "` + listen + `"
` + opsDoor
		c, err := Parse("t.toml", []byte(src))
		if err != nil {
			t.Fatalf("%s: %v", listen, err)
		}
		o := c.Gateway.Ops
		if o.AuditLog != "/var/log/sesame/audit.log" || o.ControlSocket != "/tmp/t/control.sock" {
			t.Fatalf("%+v", o)
		}
		a, ok := o.MetricsAddr()
		if !ok || a != netip.MustParseAddrPort(want) {
			t.Errorf("metrics_listen %q = %v %v, want %s", listen, a, ok, want)
		}
	}
}

func TestOpsErrorsNameLineAndKey(t *testing.T) {
	long := "/" + strings.Repeat("x", 120)
	for _, tc := range []struct{ line, want string }{
		{`audit_log = "audit.log"`, `t.toml:2: gateway.audit_log: "audit.log" is not an absolute, clean path`},
		{`audit_log = "/var/log/../x"`, `gateway.audit_log: "/var/log/../x" is not an absolute, clean path`},
		{`control_socket = "run/x.sock"`, `t.toml:2: gateway.control_socket: "run/x.sock" is not an absolute`},
		{`control_socket = "` + long + `"`, `gateway.control_socket: 121 bytes long, a unix socket path holds at most 107`},
		{`metrics_listen = "example.org:9273"`, `t.toml:2: gateway.metrics_listen: "example.org:9273" is not IP:PORT`},
		{`metrics_listen = "127.0.0.1:0"`, `has port 0`},
		{`metrics_listen = "127.0.0.1:http"`, `has no valid port`},
		{`metrics_listen = "99999"`, `has no valid port`},
		{`metrics_listen = "[fe80::1%eth0]:9273"`, `has a zone`},
		{`audit_log = "/run/sesame/control.sock"`, `gateway.audit_log: is the control socket's path`},
		{`metrics = "9273"`, `t.toml:2: gateway.metrics: unknown key`},
	} {
		_, err := Parse("t.toml", []byte("[gateway]\n"+tc.line+"\n"+opsDoor))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.line, err, tc.want)
		}
	}
}

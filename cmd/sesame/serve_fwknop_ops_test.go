package main

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sesame-gw/sesame/internal/config"
)

// serve --fwknop-access without -c honours the ops flags (the knockd
// mode's --control-socket, --audit-log, --metrics-listen), checked as
// there; without them the [gateway] defaults apply.
func TestFwknopOnlyOpsFlags(t *testing.T) {
	dir := t.TempDir()
	access := filepath.Join(dir, "access.conf")
	key := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))
	hmac := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("h", 64)))
	os.WriteFile(access, []byte("SOURCE ANY\nOPEN_PORTS tcp/22\nKEY_BASE64 "+key+"\nHMAC_KEY_BASE64 "+hmac+"\n"), 0o600)
	load := func(args ...string) (*config.Config, error) {
		fs := newFlagSet("serve", &strings.Builder{})
		path := fs.String("c", "/etc/sesame/sesame.toml", "")
		kd := addKnockdFlags(fs)
		fk := addFwknopFlags(fs)
		if err := fs.Parse(append([]string{"--fwknop-access", access}, args...)); err != nil {
			t.Fatal(err)
		}
		return fk.loadConfig(fs, path, kd)
	}
	cfg, err := load("--control-socket", "/run/sesame/fw.sock", "--audit-log", "/var/log/fw.log")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Gateway.ControlSocket != "/run/sesame/fw.sock" || cfg.Gateway.AuditLog != "/var/log/fw.log" {
		t.Fatalf("ops keys %+v", cfg.Gateway.Ops)
	}
	if cfg, err = load(); err != nil || cfg.Gateway.ControlSocket != config.DefaultControlSocket {
		t.Fatalf("defaults: %+v %v", cfg, err)
	}
	if _, err := load("--control-socket", "relative.sock"); err == nil || !strings.Contains(err.Error(), "--control-socket") {
		t.Fatalf("relative socket: %v", err)
	}
}

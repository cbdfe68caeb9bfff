package fwknopgw

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sesame-gw/sesame/internal/fwknop/accessconf"
	"github.com/sesame-gw/sesame/internal/service"
)

func write(t *testing.T, dir, name, text string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadAndStart(t *testing.T) {
	dir := t.TempDir()
	run := filepath.Join(dir, "run")
	access := write(t, dir, "access.conf", baseConf+`
%include extra.conf
`, 0o644)
	write(t, dir, "extra.conf", `SOURCE ANY
KEY cycle key
CMD_CYCLE_OPEN /bin/true $IP
CMD_CYCLE_CLOSE /bin/true $IP
CMD_CYCLE_TIMER 10
OPEN_PORTS tcp/9999

SOURCE ANY
KEY any port key
`, 0o600)
	server := write(t, dir, "fwknopd.conf", "PCAP_INTF eth1;\nPCAP_FILTER udp dst port 40000;\nFWKNOP_RUN_DIR "+run+";\nMAX_SPA_PACKET_AGE 60;\n", 0o600)
	c, err := Load(Files{Access: access, Server: server})
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 40000 || len(c.Stanzas) != 5 || c.Server.PacketAge().Seconds() != 60 {
		t.Fatalf("%+v", c)
	}
	warn := strings.Join(c.Warnings, "\n")
	if !strings.Contains(warn, "PCAP_INTF") || !strings.Contains(warn, "mode 0644") {
		t.Fatalf("warnings:\n%s", warn)
	}
	// The CMD_CYCLE stanza's port is not one Sesame protects.
	if p := c.Protected(); len(p) != 2 || p[0] != ssh || p[1] != dns {
		t.Fatalf("protected %v", p)
	}
	if w := c.OpenAnyWarnings(c.Protected()); len(w) != 1 || !strings.Contains(w[0], "stanza #5") {
		t.Fatalf("open-any warnings %v", w)
	}
	if !c.NeedsRunner(false) {
		t.Fatal("CMD_CYCLE needs a runner")
	}
	fx := &fakeExec{}
	srv, err := Start(c, Options{Protected: c.Protected(), Now: t0, Exec: fx.exec})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if srv.Runner == nil || srv.Handler == nil {
		t.Fatal("incomplete server")
	}
	// digest.cache goes to FWKNOP_RUN_DIR (created 0700).
	if v := srv.Handler.Handle(t0, cli, gwIP, packet(t, keyA, "10.99.0.2,tcp/2222", t0)); v.Reason != "" {
		t.Fatalf("%+v", v)
	}
	fi, err := os.Stat(filepath.Join(run, "digest.cache"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("digest.cache: %v %v", fi, err)
	}
	if fi, _ := os.Stat(run); fi.Mode().Perm() != 0o700 {
		t.Fatalf("run dir mode %v", fi.Mode())
	}
}

func TestLoadDefaultsAndErrors(t *testing.T) {
	dir := t.TempDir()
	access := write(t, dir, "access.conf", baseConf, 0o600)
	c, err := Load(Files{Access: access})
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 62201 || c.Server.DigestFile != "/run/fwknop/digest.cache" || c.NeedsRunner(true) {
		t.Fatalf("%+v %+v", c, c.Server)
	}
	for _, bad := range []struct{ access, server string }{
		{"SOURCE ANY\nKEY k\nFORCE_NAT 10.0.0.1 22\n", ""},
		{"SOURCE ANY\nKEY k\nOPEN_PORT tcp/22\n", ""},
		{baseConf, "ENABLE_IPT_FORWARDING Y;\n"},
		{baseConf, "PCAP_FILTER udp portrange 1-2;\n"},
	} {
		a := write(t, dir, "bad-access.conf", bad.access, 0o600)
		s := ""
		if bad.server != "" {
			s = write(t, dir, "bad-fwknopd.conf", bad.server, 0o600)
		}
		if _, err := Load(Files{Access: a, Server: s}); err == nil {
			t.Errorf("accepted %q / %q", bad.access, bad.server)
		}
	}
	if _, err := Load(Files{}); err == nil {
		t.Error("no access.conf accepted")
	}
	if _, err := Load(Files{Access: filepath.Join(dir, "missing")}); err == nil {
		t.Error("missing access.conf accepted")
	}
	var ae *accessconf.Error
	if _, err := Load(Files{Access: write(t, dir, "typo.conf", "SOURCE ANY\nKEY k\nOPEN_PORT tcp/22\n", 0o600)}); !errors.As(err, &ae) || ae.Line != 3 {
		t.Errorf("error does not name the line: %v", err)
	}
}

func TestStartWithoutPersistence(t *testing.T) {
	dir := t.TempDir()
	access := write(t, dir, "access.conf", baseConf, 0o600)
	server := write(t, dir, "fwknopd.conf", "ENABLE_DIGEST_PERSISTENCE N;\nENABLE_SPA_PACKET_AGING N;\nFWKNOP_RUN_DIR "+filepath.Join(dir, "never")+";\n", 0o600)
	c, err := Load(Files{Access: access, Server: server})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Start(c, Options{Protected: []service.Service{ssh}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if srv.Runner != nil {
		t.Fatal("runner without CMD_CYCLE")
	}
	// Aging off: a years-old packet is fine, once.
	p := packet(t, keyA, "10.99.0.2,tcp/2222", t0)
	if v := srv.Handler.Handle(t0.AddDate(3, 0, 0), cli, gwIP, p); v.Reason != "" {
		t.Fatalf("%+v", v)
	}
	if v := srv.Handler.Handle(t0.AddDate(6, 0, 0), cli, gwIP, p); v.Reason != ReasonReplay {
		t.Fatalf("%+v", v)
	}
	if _, err := os.Stat(filepath.Join(dir, "never")); err == nil {
		t.Fatal("run dir created without persistence")
	}
}

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/config"
	"github.com/sesame-gw/sesame/internal/totp"
)

func runSesame(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return out.String(), errb.String(), code
}

func writeFile(t *testing.T, dir, name, text string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestImportKnockd(t *testing.T) {
	dir := t.TempDir()
	conf := writeFile(t, dir, "knockd.conf", `[options]
	UseSyslog
	Interface = ens3
[openSSH]
	sequence    = 7000,8000,9000
	seq_timeout = 5
	command     = /sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
	tcpflags    = syn
[closeSSH]
	sequence    = 9000,8000,7000
	command     = /sbin/iptables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
[wg]
	sequence = 5000:udp,5500:udp
	start_command = nft add element inet fw allow { %IP% . udp . 51820 timeout 1h }
[timed]
	sequence = 6000,6600
	start_command = ufw allow from %IP% to any port 8080 proto tcp
	stop_command = ufw delete allow from %IP% to any port 8080 proto tcp
	cmd_timeout = 120
[neighbours]
	sequence = 4000,4001
	start_command = iptables -A INPUT -s %IP% -p tcp --dport 2000 -j ACCEPT
[script]
	sequence = 3000,3300
	start_command = /usr/local/bin/let-in %IP%
[knocks-on-22]
	sequence = 22,3900
	start_command = iptables -A INPUT -s %IP% -p tcp --dport 2100 -j ACCEPT
`, 0o600)
	out, stderr, code := runSesame(t, "import", "knockd", conf)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	cfg, err := config.Parse("imported.toml", []byte(out))
	if err != nil {
		t.Fatalf("output does not load: %v\n%s", err, out)
	}
	var names []string
	for _, d := range cfg.Doors {
		names = append(names, d.Name)
	}
	if strings.Join(names, ",") != "openSSH,wg,timed" {
		t.Fatalf("imported %v\n%s", names, out)
	}
	if cfg.Gateway.Interfaces[0] != "ens3" || cfg.Doors[1].Duration.D() != time.Hour || cfg.Doors[2].Duration.D() != 2*time.Minute {
		t.Fatalf("%+v\n%s", cfg, out)
	}
	for _, want := range []string{
		"# NOT IMPORTED: a closing door",
		"# NOT IMPORTED: cannot tell what the start command opens",
		"neighbours, so a port scan in order would complete them",
		"22/tcp is a port door", // 22 is opened by openSSH, so it cannot be a knock port
		"sesame serve --knockd-conf " + conf,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, _, code := runSesame(t, "import", "knockd", filepath.Join(dir, "missing")); code != 1 {
		t.Fatalf("missing file: exit %d", code)
	}
	if _, _, code := runSesame(t, "import", "pf", conf); code != 2 {
		t.Fatalf("unknown format: exit %d", code)
	}
}

func TestExportNft(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "r.secret", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n", 0o600)
	cfg := writeFile(t, dir, "sesame.toml", `[gateway]
always_allow = ["192.0.2.0/24"]
[[door]]
name = "ssh"
sequence = ["7000/tcp", "8000/udp", "9000/tcp"]
seq_timeout = "10s"
open = ["22/tcp"]
duration = "30s"
[[door]]
name = "web"
sequence = ["5000/udp"]
open = ["443/tcp"]
[[door]]
name = "rot"
secret_file = "r.secret"
open = ["2222/tcp"]
`, 0o600)
	out, stderr, code := runSesame(t, "export", "nft", "-c", cfg)
	if code != 0 || !strings.Contains(out, "set d0_ssh_s2_v4") || !strings.Contains(out, "set d1_web_open_v6") || !strings.Contains(out, "ip saddr { 192.0.2.0/24 } accept") {
		t.Fatalf("exit %d %s\n%s", code, stderr, out)
	}
	if !strings.Contains(stderr, "not exported: rot") {
		t.Fatalf("stderr %q", stderr)
	}
	out, _, code = runSesame(t, "export", "nft", "--door", "web", "--table", "knock", "-c", cfg)
	if code != 0 || strings.Contains(out, "ssh") || !strings.Contains(out, "table inet knock {") {
		t.Fatalf("--door: exit %d\n%s", code, out)
	}
	for _, args := range [][]string{{"export", "nft", "--door", "rot", "-c", cfg}, {"export", "nft", "--door", "nope", "-c", cfg}} {
		if _, _, code := runSesame(t, args...); code != 1 {
			t.Fatalf("%v: exit %d", args, code)
		}
	}
	if _, _, code := runSesame(t, "export", "iptables"); code != 2 {
		t.Fatalf("unknown target: exit %d", code)
	}
}

func TestRotatingKnockFlags(t *testing.T) {
	dir := t.TempDir()
	secret := writeFile(t, dir, "s", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n", 0o600)
	r := &rotatingFlags{door: "ssh", secret: secret, period: 30 * time.Second, ports: "40000-49999/tcp", steps: 3}
	now := time.Unix(59686733*30+5, 0)
	seq, err := r.sequence(now)
	want := totp.Door{Name: "ssh", Key: []byte("12345678901234567890"), Period: 30 * time.Second, Ports: totp.DefaultPorts, Steps: 3}.At(now)
	if err != nil || len(seq) != 3 || seq[0] != want[0] || seq[0].Port != 41852 {
		t.Fatalf("%v %v", seq, err)
	}
	r.offset = -1
	if prev, _ := r.sequence(now); prev[0] == seq[0] {
		t.Fatal("--period-offset ignored")
	}
	for _, bad := range []rotatingFlags{
		{door: "ssh"},
		{door: "ssh", secret: filepath.Join(dir, "none")},
		{door: "ssh", secret: secret, period: 30 * time.Second, ports: "bad", steps: 3},
		{door: "ssh", secret: secret, period: 30 * time.Second, ports: "1-5/tcp", steps: 3},
	} {
		if _, err := bad.sequence(now); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if _, _, code := runSesame(t, "knock", "--door", "ssh", "--secret", secret, "127.0.0.1", "7000"); code != 2 {
		t.Fatalf("ports with --door: exit %d", code)
	}
}

package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/firewall/nftables"
	"github.com/sesame-gw/sesame/internal/gateway"
	"github.com/sesame-gw/sesame/internal/nftlisting"
	"github.com/sesame-gw/sesame/internal/service"
)

func TestSSHLockout(t *testing.T) {
	ssh := []service.Service{tcpS(22), udpS(53)}
	allow := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}
	for _, tc := range []struct {
		env  string
		warn bool
	}{
		{"198.51.100.7 50000 192.0.2.1 22", true},
		{"10.1.2.3 50000 192.0.2.1 22", false},               // always_allow covers it
		{"::ffff:10.1.2.3 50000 ::ffff:192.0.2.1 22", false}, // mapped
		{"2001:db8::9 50000 2001:db8::1 22", false},
		{"fe80::9%eth0 50000 fe80::1%eth0 22", true},
		{"198.51.100.7 50000 192.0.2.1 2222", false}, // not protected
		{"198.51.100.7 50000 192.0.2.1 53", false},   // 53 is protected for UDP only
		{"", false},
		{"garbage", false},
		{"198.51.100.7 50000 192.0.2.1 notaport", false},
	} {
		w := sshLockout(tc.env, ssh, allow)
		if (w != "") != tc.warn {
			t.Errorf("%q: warning %q, want one: %v", tc.env, w, tc.warn)
		}
	}
	w := sshLockout("198.51.100.7 50000 192.0.2.1 22", ssh, nil)
	for _, want := range []string{"22/tcp", "198.51.100.7", `"198.51.100.7/32"`, "always_allow"} {
		if !strings.Contains(w, want) {
			t.Errorf("warning lacks %q: %s", want, w)
		}
	}
}

func TestListingDefaultsMatchBackend(t *testing.T) {
	if nftlisting.DefaultTable != nftables.DefaultTable || nftlisting.DefaultPriority != nftables.DefaultPriority {
		t.Fatalf("nftlisting defaults (%s, %d) differ from the backend's (%s, %d)",
			nftlisting.DefaultTable, nftlisting.DefaultPriority, nftables.DefaultTable, nftables.DefaultPriority)
	}
}

func TestServeCheck(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sesame.toml")
	os.WriteFile(path, []byte("[gateway]\nalways_allow = [\"10.0.0.0/8\"]\n"+sshDoor), 0o600)
	t.Setenv("SSH_CONNECTION", "198.51.100.7 50000 192.0.2.1 22")
	out, errs, code := sesame(t, "serve", "--check", "-c", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{
		"table inet sesame {",
		"elements = { tcp . 22 }",
		"elements = { 10.0.0.0/8 }",
		"meta l4proto . th dport @watched limit rate",
		"meta l4proto . th dport @protected drop",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errs, "WARNING: this configuration hides 22/tcp") || !strings.Contains(errs, "valid: 1 doors") {
		t.Errorf("stderr: %s", errs)
	}

	os.WriteFile(path, []byte("[[door]]\nname = \"ssh\"\nsequence = []\nopen = [\"22/tcp\"]\n"), 0o600)
	out, errs, code = sesame(t, "serve", "--check", "-c", path)
	if code == 0 || out != "" || !strings.Contains(errs, "sesame.toml:3: door[0].sequence") {
		t.Fatalf("invalid config: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

func TestControlCommandsWithoutDaemon(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	for _, args := range [][]string{
		{"status", "--socket", sock},
		{"status", "--json", "--socket", sock},
		{"reload", "--socket", sock},
		{"revoke", "192.0.2.1", "--socket", sock},
	} {
		_, errs, code := sesame(t, args...)
		if code != 1 || !strings.Contains(errs, "no sesame daemon is listening") {
			t.Errorf("%v: exit %d, %s", args, code, errs)
		}
	}
	for _, args := range [][]string{
		{"revoke"},
		{"revoke", "not-an-addr"},
		{"revoke", "192.0.2.1", "22/xyz"},
		{"revoke", "192.0.2.1", "22/tcp", "extra"},
		{"status", "extra"},
		{"reload", "extra"},
	} {
		if _, _, code := sesame(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

func TestControlCommandsAgainstOps(t *testing.T) {
	b := newOpsBench(t)
	alice := netip.MustParseAddr("192.0.2.10")
	b.knock(alice, tcpS(7000), udpS(8000), tcpS(9000))
	eventually(t, "grant", func() bool { return b.fw.Granted(alice, tcpS(22)) })

	out, errs, code := sesame(t, "status", "--socket", b.sock)
	if code != 0 {
		t.Fatalf("status: %d %s", code, errs)
	}
	for _, want := range []string{"doors (1):", "ssh", "7000/tcp 8000/udp 9000/tcp", "192.0.2.10", "22/tcp", "left", "grant", "door=ssh", "packets"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	out, _, code = sesame(t, "status", "--json", "--socket", b.sock)
	if code != 0 || !strings.Contains(out, `"grants": [`) || !strings.Contains(out, `"src": "192.0.2.10"`) {
		t.Errorf("status --json: %d\n%s", code, out)
	}
	if out, errs, code = sesame(t, "reload", "--socket", b.sock); code != 0 || out != "configuration reloaded\n" {
		t.Errorf("reload: %d %q %s", code, out, errs)
	}
	if out, _, code = sesame(t, "revoke", "192.0.2.10", "22/udp", "--socket", b.sock); code != 0 || out != "no live grant for 192.0.2.10 22/udp\n" {
		t.Errorf("revoke of nothing: %d %q", code, out)
	}
	if out, _, code = sesame(t, "revoke", "--socket", b.sock, "192.0.2.10", "22"); code != 0 || out != "revoked 22/tcp for 192.0.2.10\n" {
		t.Errorf("revoke: %d %q", code, out)
	}
	b.write("broken [")
	if _, errs, code = sesame(t, "reload", "--socket", b.sock); code != 1 || !strings.Contains(errs, "refused, the running configuration stays") ||
		!strings.Contains(errs, "sesame.toml") {
		t.Errorf("bad reload: %d %s", code, errs)
	}
}

func TestPrintStatusRecentLimit(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	st := gatewayStatusWith(30)
	var b strings.Builder
	printStatus(&b, st, 5, now)
	if !strings.Contains(b.String(), "recent decisions (5 of 30 kept") || !strings.Contains(b.String(), "reason=r29") || strings.Contains(b.String(), "reason=r24") {
		t.Fatalf("%s", b.String())
	}
}

func TestPrintStatusClients(t *testing.T) {
	st := gateway.Status{Clients: []string{
		"laptop (spa key) → 22/tcp for up to 1m0s",
		`certificates of CA "Example Root" (spa cert) → as certified for as certified`,
	}}
	var b strings.Builder
	printStatus(&b, st, 5, time.Now())
	want := "\nclients (2):\n  laptop (spa key) → 22/tcp for up to 1m0s\n  certificates of CA \"Example Root\" (spa cert) → as certified for as certified\n"
	if !strings.Contains(b.String(), want) {
		t.Fatalf("%s\nwant the clients block\n%s", b.String(), want)
	}
}

func gatewayStatusWith(n int) gateway.Status {
	var st gateway.Status
	for i := range n {
		st.Recent = append(st.Recent, gateway.Decision{Kind: "reject", Reason: "r" + strconv.Itoa(i)})
	}
	return st
}

package e2e

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/audit"
	"github.com/sesame-gw/sesame/internal/netns"
)

// notifyListener receives sd_notify datagrams on a socket in dir, as
// systemd's NOTIFY_SOCKET does.
type notifyListener struct {
	t     *testing.T
	path  string
	notes chan string
}

func listenNotify(t *testing.T, dir string) *notifyListener {
	n := &notifyListener{t: t, path: filepath.Join(dir, "notify.sock"), notes: make(chan string, 32)}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		defer close(n.notes)
		for buf := make([]byte, 4096); ; {
			k, err := c.Read(buf)
			if err != nil {
				return
			}
			n.notes <- string(buf[:k])
		}
	}()
	return n
}

// next returns the next notification, which must start with prefix.
func (n *notifyListener) next(prefix string) string {
	n.t.Helper()
	select {
	case s := <-n.notes:
		if !strings.HasPrefix(s, prefix) {
			n.t.Fatalf("sd_notify %q, want %s...", s, prefix)
		}
		return s
	case <-time.After(10 * time.Second):
		n.t.Fatalf("no sd_notify %s", prefix)
	}
	return ""
}

// The knockd drop-in mode has the ops side of every mode: READY once it
// captures, reload by SIGHUP and by `sesame reload` (a bad knockd.conf
// refused with file:line and the old one kept; a pending stop command
// survives every reload), `sesame status` over a per-test control socket,
// metrics, `sesame revoke` running the pending stop command, STOPPING,
// and the audit log of what happened.
func TestKnockdOpsReloadStatusRevokeAudit(t *testing.T) {
	b := newBench(t)
	serveService(t, b)
	nft, err := execLookPath("nft")
	if err != nil {
		t.Skip("nft not installed")
	}
	f := newOpsFiles(t)
	rules := filepath.Join(f.dir, "kbench.nft")
	os.WriteFile(rules, []byte(knockdFirewall), 0o600)
	run(t, b, b.GW, 10*time.Second, false, "nft", "-f", rules)
	t.Cleanup(func() { b.Command(context.Background(), b.GW, "nft", "delete", "table", "inet", "kbench").Run() })
	conf := knockdDropinConf(t, nft, f.dir)
	orig, _ := os.ReadFile(conf)
	good := strings.Replace(string(orig), "cmd_timeout = 3", "cmd_timeout = 600", 1) // the stop stays pending
	lines := strings.Count(good, "\n")
	write := func(s string) {
		if err := os.WriteFile(conf, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(good)
	webDoor := "[web]\n\tsequence = 5000,6000:udp\n\tstart_command = true\n"
	badDoor := "[web]\n\tsequence = 5000,60OO\n" // knockd's atoi reads 60; Sesame refuses the line

	notes := listenNotify(t, f.dir)
	p, err := b.Start(b.GW, "env", "NOTIFY_SOCKET="+notes.path, sesameBin, "serve", "--knockd-conf", conf,
		"-i", netns.GWIf, "--state-dir", filepath.Join(f.dir, "state"), "--control-socket", f.sock,
		"--audit-log", f.audit, "--metrics-listen", fmt.Sprintf("127.0.0.1:%d", metricsPort))
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{t: t, b: b, proc: p, cfg: conf}
	if n := notes.next("READY=1"); !strings.Contains(n, "STATUS=knockd mode ready") {
		t.Fatalf("READY %q", n)
	}
	if st := f.status(t); !slices.Equal(doorNames(st), []string{"ssh"}) || len(st.Grants) != 0 {
		t.Fatalf("status at start: %+v", st)
	}

	dst := netip.AddrPortFrom(b.GW4, svcPort)
	hidden(t, b, netip.Addr{}, dst)
	run(t, b, b.Client, 10*time.Second, false, sesameBin, "knock", b.GW4.String(), "7000", "9000") // wrong order
	waitLog(t, g, "knock reset", "src="+b.Client4.String())
	knockSSH(t, b)
	stopPending := func() {
		t.Helper()
		st := f.status(t)
		if len(st.Grants) != 1 || st.Grants[0].Src != b.Client4 || st.Grants[0].Service != "[ssh] Stop_Command" {
			t.Fatalf("pending stop commands: %+v", st.Grants)
		}
		reachable(t, b, netip.Addr{}, dst)
	}
	stopPending()

	// SIGHUP, invalid then valid.
	write(good + badDoor)
	syscall.Kill(p.PID(), syscall.SIGHUP)
	notes.next("RELOADING=1")
	where := fmt.Sprintf("%s:%d:", conf, lines+2)
	if n := notes.next("READY=1"); !strings.Contains(n, "STATUS=reload refused: "+where) {
		t.Fatalf("refused SIGHUP reload: %q", n)
	}
	waitLog(t, g, "reload refused", where)
	if d := doorNames(f.status(t)); !slices.Equal(d, []string{"ssh"}) {
		t.Fatalf("doors after a refused reload: %v", d)
	}
	stopPending()
	write(good + webDoor)
	syscall.Kill(p.PID(), syscall.SIGHUP)
	notes.next("RELOADING=1")
	notes.next("READY=1\nSTATUS=knockd mode ready (reloaded)")
	if d := doorNames(f.status(t)); !slices.Equal(d, []string{"ssh", "web"}) {
		t.Fatalf("doors after SIGHUP: %v", d)
	}
	stopPending()

	// `sesame reload`, invalid then valid.
	write(good + badDoor)
	_, errs, code := sesameCmd(t, "reload", "--socket", f.sock)
	if code != 1 || !strings.Contains(errs, "refused, the running configuration stays") || !strings.Contains(errs, where) {
		t.Fatalf("bad sesame reload: exit %d: %s", code, errs)
	}
	notes.next("RELOADING=1")
	notes.next("READY=1\nSTATUS=reload refused: " + where)
	if d := doorNames(f.status(t)); !slices.Equal(d, []string{"ssh", "web"}) {
		t.Fatalf("doors after a refused sesame reload: %v", d)
	}
	write(good)
	if out, errs, code := sesameCmd(t, "reload", "--socket", f.sock); code != 0 || out != "configuration reloaded\n" {
		t.Fatalf("sesame reload: %d %q %s", code, out, errs)
	}
	notes.next("RELOADING=1")
	notes.next("READY=1\nSTATUS=knockd mode ready (reloaded)")
	if d := doorNames(f.status(t)); !slices.Equal(d, []string{"ssh"}) {
		t.Fatalf("doors after sesame reload: %v", d)
	}
	stopPending()

	text, _, code := sesameCmd(t, "status", "--socket", f.sock)
	if code != 0 || !strings.Contains(text, "grants live (1):") || !strings.Contains(text, "[ssh] Stop_Command") {
		t.Fatalf("sesame status: %d\n%s", code, text)
	}
	t.Logf("sesame status:\n%s", text)
	scrape := scrapeMetrics(t, b)
	for _, want := range []string{
		`sesame_decisions_total{kind="grant",reason=""} 1`,
		`sesame_decisions_total{kind="reset",reason="wrong port"} `,
		`sesame_decision_latency_seconds_count{kind="grant"} 1`,
		"sesame_grants_live 1",
		`sesame_config_reloads_total{result="failure"} 2`,
		`sesame_config_reloads_total{result="success"} 2`,
		"sesame_capture_dropped_total 0",
	} {
		if !strings.Contains(scrape, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// Revoke: the stop command runs now, the port hides again.
	out, errs, code := sesameCmd(t, "revoke", b.Client4.String(), "--socket", f.sock)
	if code != 0 || out != fmt.Sprintf("revoked %d/tcp for %s\n", svcPort, b.Client4) {
		t.Fatalf("revoke: %d %q %s", code, out, errs)
	}
	waitHidden(t, b, dst, 5*time.Second)
	if st := f.status(t); len(st.Grants) != 0 {
		t.Fatalf("pending stop after revoke: %+v", st.Grants)
	}

	if err := b.Stop(p); err != nil {
		t.Fatal(err)
	}
	notes.next("STOPPING=1")
	if p.Err() != nil {
		t.Fatalf("exit: %v\n%s", p.Err(), g.log())
	}
	byKind := map[string]audit.Record{}
	for _, r := range readAuditFile(t, f.audit) {
		byKind[r.Kind] = r
	}
	if r := byKind["grant"]; r.Src != b.Client4.String() || r.Door != "ssh" || r.LatencyUS <= 0 {
		t.Errorf("grant record: %+v", r)
	}
	if r := byKind["reset"]; r.Src != b.Client4.String() || r.Door != "ssh" || r.Reason != "wrong port" {
		t.Errorf("reset record: %+v", r)
	}
	if r := byKind["revoke"]; r.Src != b.Client4.String() || r.Door != "ssh" {
		t.Errorf("revoke record: %+v", r)
	}
	if _, err := os.Stat(f.sock); !os.IsNotExist(err) {
		t.Error("control socket left after stop")
	}
}

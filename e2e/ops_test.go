package e2e

import (
	"bufio"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/audit"
	gw "github.com/sesame-gw/sesame/internal/gateway"
	"github.com/sesame-gw/sesame/internal/netns"
)

const (
	metricsPort = 9273 // on the gateway namespace's own loopback
	opsTTL      = 2 * time.Minute
)

// opsFiles are the per-test paths of a daemon's operations side. All
// benches share the host's file system, so every daemon gets its own.
type opsFiles struct {
	dir, sock, audit string
}

func newOpsFiles(t *testing.T) opsFiles {
	dir := t.TempDir()
	return opsFiles{dir: dir, sock: filepath.Join(dir, "control.sock"), audit: filepath.Join(dir, "audit.log")}
}

// config is a gateway config with the ops keys, the ssh door and extra.
func (f opsFiles) config(extra string) string {
	return fmt.Sprintf(`[gateway]
state_dir = %q
log_level = "debug"
control_socket = %q
audit_log = %q
metrics_listen = "127.0.0.1:%d"

[[door]]
name = "ssh"
sequence = ["7000/tcp", "8000/udp", "9000/tcp"]
seq_timeout = "10s"
open = ["%d/tcp"]
duration = "%s"
%s`, f.dir, f.sock, f.audit, metricsPort, svcPort, opsTTL, extra)
}

const webDoor = `
[[door]]
name = "web"
sequence = ["5000/udp", "5100/tcp"]
open = ["8443/tcp"]
`

// sesameCmd runs the sesame binary on the host (the control socket is a
// file: no namespace needed) and returns stdout, stderr and the exit code.
func sesameCmd(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sesameBin, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

func (f opsFiles) status(t *testing.T) gw.Status {
	t.Helper()
	out, errs, code := sesameCmd(t, "status", "--json", "--socket", f.sock)
	if code != 0 {
		t.Fatalf("sesame status: exit %d: %s", code, errs)
	}
	var st gw.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status JSON: %v\n%s", err, out)
	}
	return st
}

func doorNames(st gw.Status) []string {
	var n []string
	for _, d := range st.Doors {
		n = append(n, d.Name)
	}
	return n
}

func hasGrant(st gw.Status, src netip.Addr, svc string) bool {
	for _, g := range st.Grants {
		if g.Src == src && g.Service == svc {
			return true
		}
	}
	return false
}

// waitCount waits until the daemon's log holds substr more than n times.
func waitCount(t *testing.T, g *gateway, substr string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(g.log(), substr) <= n {
		if time.Now().After(deadline) {
			t.Fatalf("log never showed %q a %d. time:\n%s", substr, n+1, g.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func knockOpen(t *testing.T, b *netns.Bench, gw netip.Addr) {
	t.Helper()
	run(t, b, b.Client, 15*time.Second, false, sesameBin, "knock", gw.String(), "7000/tcp", "8000/udp", "9000/tcp",
		"--wait", fmt.Sprintf("tcp/%d=5s", svcPort))
}

// Reload, by SIGHUP and by `sesame reload`: a valid file applies and the
// grant (and the session it let in) survive; an invalid file is refused
// with its reason and the running configuration stays.
func TestOpsReloadKeepsGrantsRefusesBadConfig(t *testing.T) {
	b := newBench(t)
	serveService(t, b)
	f := newOpsFiles(t)
	g := startGateway(t, b, f.config(""))
	dst := netip.AddrPortFrom(b.GW4, svcPort)
	hidden(t, b, b.Client4, dst)
	knockOpen(t, b, b.GW4)
	session, err := b.DialTCP(context.Background(), b.Client, b.Client4, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()
	alive := func() {
		t.Helper()
		reachable(t, b, b.Client4, dst) // new connections: the grant is live
		session.SetDeadline(time.Now().Add(3 * time.Second))
		fmt.Fprintf(session, "ping\n")
		if l, err := bufio.NewReader(session).ReadString('\n'); err != nil || l != "ping\n" {
			t.Fatalf("session cut: %q %v", l, err)
		}
		if !hasGrant(f.status(t), b.Client4, fmt.Sprintf("%d/tcp", svcPort)) {
			t.Fatal("grant gone from status")
		}
	}

	// SIGHUP with a valid file: a second door.
	os.WriteFile(g.cfg, []byte(f.config(webDoor)), 0o600)
	n := strings.Count(g.log(), "configuration reloaded")
	start := time.Now()
	syscall.Kill(g.proc.PID(), syscall.SIGHUP)
	waitCount(t, g, "configuration reloaded", n)
	t.Logf("SIGHUP reload applied within %v (log seen)", time.Since(start).Round(time.Millisecond))
	if d := doorNames(f.status(t)); !slices.Equal(d, []string{"ssh", "web"}) {
		t.Fatalf("doors after reload: %v", d)
	}
	alive()

	// SIGHUP with an invalid file: refused, logged with file and line.
	os.WriteFile(g.cfg, []byte(f.config(webDoor+"\n[[door]]\nname = \"web\"\nsequence = [\"6000/tcp\"]\nopen = [\"22/tcp\"]\n")), 0o600)
	n = strings.Count(g.log(), "reload refused")
	syscall.Kill(g.proc.PID(), syscall.SIGHUP)
	waitCount(t, g, "reload refused", n)
	if l := waitLog(t, g, "reload refused", "sesame.toml:"); !strings.Contains(l, `door[2].name`) {
		t.Errorf("refusal does not name the key: %s", l)
	}
	if d := doorNames(f.status(t)); !slices.Equal(d, []string{"ssh", "web"}) {
		t.Fatalf("doors after a refused reload: %v", d)
	}
	alive()

	// `sesame reload`, valid (back to one door), then invalid.
	os.WriteFile(g.cfg, []byte(f.config("")), 0o600)
	start = time.Now()
	if out, errs, code := sesameCmd(t, "reload", "--socket", f.sock); code != 0 || out != "configuration reloaded\n" {
		t.Fatalf("sesame reload: %d %q %s", code, out, errs)
	}
	t.Logf("sesame reload round trip: %v", time.Since(start).Round(time.Millisecond))
	if d := doorNames(f.status(t)); !slices.Equal(d, []string{"ssh"}) {
		t.Fatalf("doors after sesame reload: %v", d)
	}
	alive()
	os.WriteFile(g.cfg, []byte(f.config("")+"\n[[door]]\nname = \"x\"\nsequence = [\"7000/tcp\"]\nopen = [\"22/tcp\"]\nduration = \"forever\"\n"), 0o600)
	_, errs, code := sesameCmd(t, "reload", "--socket", f.sock)
	if code != 1 || !strings.Contains(errs, "refused, the running configuration stays") || !strings.Contains(errs, "sesame.toml:19: door.duration") {
		t.Fatalf("bad sesame reload: exit %d: %s", code, errs)
	}
	if d := doorNames(f.status(t)); !slices.Equal(d, []string{"ssh"}) {
		t.Fatalf("doors after a refused sesame reload: %v", d)
	}
	alive()
	if !strings.Contains(nftList(t, b, "set", "inet", "sesame", "grants4"), b.Client4.String()) {
		t.Fatal("grant element gone from the kernel")
	}
}

// Status and revoke against the running daemon, the audit log, and a real
// HTTP scrape of the metrics inside the gateway namespace.
func TestOpsStatusRevokeAuditMetrics(t *testing.T) {
	b := newBench(t)
	serveService(t, b)
	serveExtra(t, b)
	f := newOpsFiles(t)
	s := newSPABench(t)
	cfg := f.config(s.clientsWithoutOld + fmt.Sprintf("\n[spa]\nport = %d\nkey = %q\n", spaPort, s.gwKey))
	g := startGateway(t, b, cfg)
	dst := netip.AddrPortFrom(b.GW4, svcPort)

	// A wrong sequence (reset), an SPA request outside the policy
	// (reject), then a knock that opens (grant).
	run(t, b, b.Client, 10*time.Second, false, sesameBin, "knock", b.GW4.String(), "7000/tcp", "9000/tcp")
	waitLog(t, g, "knock reset", "src="+b.Client4.String())
	s.open(t, b, s.laptop, b.GW4.String(), fmt.Sprintf("%d/tcp", outsidePort))
	waitLog(t, g, "msg=reject", "reason=service-not-allowed")
	knockOpen(t, b, b.GW4)

	st := f.status(t)
	if !hasGrant(st, b.Client4, fmt.Sprintf("%d/tcp", svcPort)) || st.Counters["packets"] == 0 {
		t.Fatalf("status: %+v", st)
	}
	kinds := map[string]gw.Decision{}
	for _, d := range st.Recent {
		kinds[d.Kind] = d
	}
	if kinds["reset"].Reason == "" || kinds["reject"].Reason != "service-not-allowed" || kinds["grant"].Door != "ssh" {
		t.Fatalf("recent decisions: %+v", st.Recent)
	}
	wantClients := []string{
		fmt.Sprintf("laptop (spa key) → %d/tcp %d/tcp for up to 1m0s", svcPort, unaskedPort),
		fmt.Sprintf("phone (spa key) → %d/tcp for up to 1m0s", outsidePort),
	}
	if !slices.Equal(st.Clients, wantClients) {
		t.Errorf("status clients %q, want %q", st.Clients, wantClients)
	}
	text, _, code := sesameCmd(t, "status", "--socket", f.sock)
	if code != 0 || !strings.Contains(text, "grants live (1):") || !strings.Contains(text, b.Client4.String()) ||
		!strings.Contains(text, "clients (2):\n  "+wantClients[0]+"\n") {
		t.Fatalf("sesame status: %d\n%s", code, text)
	}
	t.Logf("sesame status:\n%s", text)

	scrape := scrapeMetrics(t, b)
	for _, want := range []string{
		"sesame_grants_live 1",
		`sesame_decisions_total{kind="grant",reason=""} 1`,
		`sesame_decisions_total{kind="reject",reason="service-not-allowed"} 1`,
		`sesame_decisions_total{kind="reset",reason=`,
		`sesame_decision_latency_seconds_count{kind="grant"} 1`,
		"sesame_capture_dropped_total 0",
		"sesame_packets_total ",
		"sesame_spa_datagrams_total 1",
		"sesame_config_last_reload_successful 1",
	} {
		if !strings.Contains(scrape, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	for _, l := range strings.Split(scrape, "\n") {
		if strings.HasPrefix(l, "sesame_decision_latency_seconds_sum") || strings.HasPrefix(l, "sesame_packets_total") {
			t.Logf("metric: %s", l)
		}
	}

	// Revoke: the port hides again at once for new connections.
	out, errs, code := sesameCmd(t, "revoke", b.Client4.String(), fmt.Sprintf("%d/tcp", svcPort), "--socket", f.sock)
	if code != 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("revoke: %d %q %s", code, out, errs)
	}
	hidden(t, b, b.Client4, dst)
	if hasGrant(f.status(t), b.Client4, fmt.Sprintf("%d/tcp", svcPort)) {
		t.Fatal("grant still in status after revoke")
	}

	// SIGUSR1 after a rotation: the old file keeps what came before, the
	// new one gets what comes after.
	if err := os.Rename(f.audit, f.audit+".1"); err != nil {
		t.Fatal(err)
	}
	n := strings.Count(g.log(), "audit log reopened")
	syscall.Kill(g.proc.PID(), syscall.SIGUSR1)
	waitCount(t, g, "audit log reopened", n)
	knockOpen(t, b, b.GW4)
	waitFor(t, "a grant in the new audit file", func() bool { return len(readAuditFile(t, f.audit)) > 0 })

	old := readAuditFile(t, f.audit+".1")
	byKind := map[string]audit.Record{}
	for _, r := range old {
		byKind[r.Kind] = r
	}
	if r := byKind["grant"]; r.Src != b.Client4.String() || r.Door != "ssh" || len(r.Services) != 1 || r.LatencyUS <= 0 {
		t.Errorf("grant record: %+v", r)
	}
	if r := byKind["reset"]; r.Src != b.Client4.String() || r.Reason == "" {
		t.Errorf("reset record: %+v", r)
	}
	if r := byKind["reject"]; r.Proto != "spa" || r.Client != "laptop" || r.Reason != "service-not-allowed" {
		t.Errorf("reject record: %+v", r)
	}
	if r := byKind["revoke"]; r.Src != b.Client4.String() {
		t.Errorf("revoke record: %+v", r)
	}
	if cur := readAuditFile(t, f.audit); cur[0].Kind != "grant" {
		t.Errorf("after the rotation: %+v", cur)
	}
	if st, err := os.Stat(f.audit); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("audit file mode: %v %v", st.Mode(), err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readAuditFile(t *testing.T, path string) []audit.Record {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Record
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l == "" {
			continue
		}
		var r audit.Record
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		out = append(out, r)
	}
	return out
}

// scrapeMetrics GETs /metrics from inside the gateway namespace, where
// the daemon listens on its loopback.
func scrapeMetrics(t *testing.T, b *netns.Bench) string {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return b.DialTCP(ctx, b.GW, netip.Addr{}, netip.MustParseAddrPort(addr))
		},
	}}
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %s %s\n%s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	return string(body)
}

// sortSetElements sorts the element lists of the hash sets, which nft
// lists in the kernel's per-set hash order.
func sortSetElements(listing string) string {
	lines := strings.Split(strings.TrimRight(listing, "\n"), "\n")
	var out []string
	for i := 0; i < len(lines); i++ {
		rest, ok := strings.CutPrefix(lines[i], "\t\telements = { ")
		if !ok {
			out = append(out, lines[i])
			continue
		}
		var elems []string
		for {
			e, last := strings.CutSuffix(rest, " }")
			for _, x := range strings.Split(e, ",") {
				if x = strings.TrimSpace(x); x != "" {
					elems = append(elems, x)
				}
			}
			if last || i+1 >= len(lines) {
				break
			}
			i++
			rest = lines[i]
		}
		slices.Sort(elems)
		out = append(out, "\t\telements = { "+strings.Join(elems, ", ")+" }")
	}
	return strings.Join(out, "\n")
}

// `sesame serve --check` leaves the kernel untouched, and prints exactly
// the table the daemon then installs for the same file.
func TestOpsCheckTouchesNothingAndMatchesTheDaemon(t *testing.T) {
	b := newBench(t)
	f := newOpsFiles(t)
	cfg := f.config(webDoor + `
[[door]]
name = "range"
sequence = ["7100/tcp", "7300/tcp"]
open = ["60000-60003/udp"]
`)
	// Overlapping, adjacent and mapped prefixes, and an interface list.
	cfg = strings.Replace(cfg, "[gateway]\n", fmt.Sprintf("[gateway]\ninterfaces = [%q]\nalways_allow = [\"10.0.0.0/8\", \"10.1.0.0/16\", \"192.0.2.0/25\", \"192.0.2.128/25\", \"198.51.100.7\", \"::ffff:203.0.113.0/120\", \"2001:db8::/32\", \"fd00::1\"]\n", netns.GWIf), 1)
	path := filepath.Join(t.TempDir(), "sesame.toml")
	os.WriteFile(path, []byte(cfg), 0o600)

	before, _ := run(t, b, b.GW, 10*time.Second, false, "nft", "list", "ruleset")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := b.Command(ctx, b.GW, sesameBin, "serve", "--check", "-c", path)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("--check: %v\n%s", err, stderr.String())
	}
	listing := stdout.String()
	after, _ := run(t, b, b.GW, 10*time.Second, false, "nft", "list", "ruleset")
	if before != after {
		t.Fatalf("--check changed the ruleset:\n--- before\n%s\n--- after\n%s", before, after)
	}
	if _, err := os.Stat(f.sock); !os.IsNotExist(err) {
		t.Fatal("--check created the control socket")
	}
	if _, err := os.Stat(f.audit); !os.IsNotExist(err) {
		t.Fatal("--check created the audit log")
	}
	if !strings.HasPrefix(listing, "table inet sesame {") || !strings.Contains(stderr.String(), "valid: 3 doors") {
		t.Fatalf("--check output:\n%s\n%s", listing, stderr.String())
	}

	// nft itself accepts the listing as input (checked before the daemon
	// installs the table: nft -c would then collide with its sets).
	if out, err := run(t, b, b.GW, 10*time.Second, true, "sh", "-c", "nft -c -f - <<'EOF'\n"+listing+"EOF\n"); err != nil {
		t.Fatalf("nft -c -f refused the listing: %v\n%s", err, out)
	}
	startGateway(t, b, cfg)
	live := nftList(t, b, "table", "inet", "sesame")
	if sortSetElements(live) != sortSetElements(listing) {
		t.Fatalf("the daemon installed something else than --check printed\n--- nft list\n%s\n--- --check\n%s", live, listing)
	}
}

// systemd's notify protocol: READY once the table is in, RELOADING and
// READY around a reload (also a refused one), STOPPING at the end. The
// daemon runs with only the unit's capabilities (CAP_NET_ADMIN,
// CAP_NET_RAW, no new privileges), and warns about the SSH session it was
// started from.
func TestOpsSdNotifyAndUnitPrivileges(t *testing.T) {
	netnstestRequire(t, "setpriv")
	b := newBench(t)
	serveService(t, b)
	f := newOpsFiles(t)
	notifyPath := filepath.Join(f.dir, "notify.sock")
	nl, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	notes := make(chan string, 32)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := nl.Read(buf)
			if err != nil {
				close(notes)
				return
			}
			notes <- string(buf[:n])
		}
	}()
	expect := func(prefix string) string {
		t.Helper()
		select {
		case n := <-notes:
			if !strings.HasPrefix(n, prefix) {
				t.Fatalf("sd_notify %q, want %s", n, prefix)
			}
			return n
		case <-time.After(10 * time.Second):
			t.Fatalf("no sd_notify %s", prefix)
		}
		return ""
	}

	cfgPath := filepath.Join(f.dir, "sesame.toml")
	os.WriteFile(cfgPath, []byte(f.config("")), 0o600)
	t.Cleanup(func() { _ = b.Command(context.Background(), b.GW, sesameBin, "cleanup").Run() })
	start := time.Now()
	p, err := b.Start(b.GW, "env", "NOTIFY_SOCKET="+notifyPath,
		fmt.Sprintf("SSH_CONNECTION=%s 50000 %s %d", b.Client4, b.GW4, svcPort),
		"setpriv", "--bounding-set=-all,+net_admin,+net_raw", "--inh-caps=-all", "--no-new-privs",
		sesameBin, "serve", "-c", cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	expect("READY=1")
	t.Logf("start to READY=1: %v", time.Since(start).Round(time.Millisecond))
	g := &gateway{t: t, b: b, proc: p, cfg: cfgPath}
	if !strings.Contains(g.log(), "!!! this configuration hides 2222/tcp, the port of the SSH session in use") {
		t.Errorf("no lockout warning:\n%s", g.log())
	}
	if nftList(t, b, "table", "inet", "sesame") == "" {
		t.Fatal("READY before the table was installed")
	}
	knockOpen(t, b, b.GW4) // netlink, NFLOG and grants work with only these capabilities

	syscall.Kill(p.PID(), syscall.SIGHUP)
	expect("RELOADING=1\nMONOTONIC_USEC=")
	expect("READY=1")
	os.WriteFile(cfgPath, []byte("[gateway\n"), 0o600)
	if _, _, code := sesameCmd(t, "reload", "--socket", f.sock); code != 1 {
		t.Fatalf("bad reload exit %d", code)
	}
	expect("RELOADING=1")
	if n := expect("READY=1"); !strings.Contains(n, "STATUS=reload refused") {
		t.Errorf("refused reload notify: %q", n)
	}
	if st := f.status(t); !hasGrant(st, b.Client4, fmt.Sprintf("%d/tcp", svcPort)) {
		t.Fatal("grant lost")
	}
	if err := b.Stop(p); err != nil {
		t.Fatal(err)
	}
	expect("STOPPING=1")
	if p.Err() != nil {
		t.Fatalf("exit: %v\n%s", p.Err(), g.log())
	}
	// The stop policy: the table and the grant stay.
	if !strings.Contains(nftList(t, b, "set", "inet", "sesame", "grants4"), b.Client4.String()) {
		t.Fatal("grant removed at stop")
	}
	if _, err := os.Stat(f.sock); !os.IsNotExist(err) {
		t.Fatal("control socket left after stop")
	}
}

func netnstestRequire(t *testing.T, bin string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := exec.LookPath(bin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not installed (CI=true)", bin)
		}
		t.Skipf("%s not installed", bin)
	}
}

// `make deb` builds a package with the static, version-stamped binary, the
// unit, man pages, completions and examples; systemd-analyze verify
// accepts the unit.
func TestOpsDebPackage(t *testing.T) {
	netnstestRequire(t, "dpkg-deb")
	netnstestRequire(t, "make")
	dist := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	mk := exec.CommandContext(ctx, "make", "-C", "..", "deb", "DIST="+dist, "VERSION=v1.2.3-e2e")
	if out, err := mk.CombinedOutput(); err != nil {
		if strings.Contains(string(out), "proxy.golang.org") && os.Getenv("CI") != "true" {
			t.Skipf("cannot fetch nfpm: %s", out)
		}
		t.Fatalf("make deb: %v\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dist, "sesame_*.deb"))
	if len(debs) != 1 || filepath.Base(debs[0]) != "sesame_1.2.3+e2e_"+goarch(t)+".deb" {
		t.Fatalf("packages: %v", debs)
	}
	contents, err := exec.Command("dpkg-deb", "-c", debs[0]).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"-rwxr-xr-x root/root .* ./usr/bin/sesame",
		"-rw-r--r-- root/root .* ./usr/lib/systemd/system/sesame.service",
		"./usr/share/man/man8/sesame.8.gz",
		"./usr/share/man/man5/sesame.toml.5.gz",
		"./usr/share/bash-completion/completions/sesame",
		"./usr/share/zsh/vendor-completions/_sesame",
		"./usr/share/doc/sesame/examples/knock.toml",
		"./usr/share/doc/sesame/examples/spa.toml",
		"./usr/share/doc/sesame/operations.md",
		"./etc/logrotate.d/sesame",
		"drwx------ root/root .* ./etc/sesame/",
	} {
		if !matchLine(string(contents), want) {
			t.Errorf("package lacks %s\n%s", want, contents)
		}
	}
	info, _ := exec.Command("dpkg-deb", "-f", debs[0], "Package", "Version", "Architecture").Output()
	if string(info) != "Package: sesame\nVersion: 1.2.3+e2e\nArchitecture: "+goarch(t)+"\n" {
		t.Errorf("control: %q", info)
	}
	ctl, _ := exec.Command("dpkg-deb", "-I", debs[0]).Output()
	for _, want := range []string{"conffiles", "postinst", "prerm", "postrm"} {
		if !strings.Contains(string(ctl), want) {
			t.Errorf("control archive lacks %s", want)
		}
	}

	root := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "-x", debs[0], root).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v\n%s", err, out)
	}
	bin := filepath.Join(root, "usr/bin/sesame")
	if out, _ := exec.Command(bin, "version").Output(); !strings.HasPrefix(string(out), "sesame v1.2.3-e2e ") {
		t.Errorf("version stamp: %q", out)
	}
	ef, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("binary is dynamically linked (%v)", p.Type)
		}
	}
	ef.Close()

	// systemd-analyze verify, with the unit pointing at the packaged binary
	// and the packaged man pages (Documentation=man:...) on MANPATH.
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (Debian package systemd): unit not verified")
	}
	unit, _ := os.ReadFile(filepath.Join(root, "usr/lib/systemd/system/sesame.service"))
	unitDir := t.TempDir()
	unitPath := filepath.Join(unitDir, "sesame.service")
	os.WriteFile(unitPath, []byte(strings.ReplaceAll(string(unit), "/usr/bin/sesame", bin)), 0o644)
	cmd := exec.Command(analyze, "verify", unitPath)
	cmd.Env = append(os.Environ(), "MANPATH="+filepath.Join(root, "usr/share/man")+":")
	if out, err := cmd.CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func matchLine(listing, pattern string) bool {
	prefix, suffix, ok := strings.Cut(pattern, " .* ")
	if !ok {
		prefix, suffix = "", pattern
	}
	for _, l := range strings.Split(listing, "\n") {
		if strings.HasPrefix(l, prefix) && strings.HasSuffix(l, suffix) {
			return true
		}
	}
	return false
}

func goarch(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOARCH").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/fwknop"
	"github.com/sesame-gw/sesame/internal/netns"
	"github.com/sesame-gw/sesame/internal/netns/netnstest"
)

// fwknop interop in both directions, with Debian's fwknop-client and
// fwknop-server 2.6.10: the stock client opens `sesame serve
// --fwknop-access`, `sesame fwknop` opens a stock fwknopd (iptables
// backend), replays and bad packets are refused with a logged reason.

// fwkKeys is one access.conf key pair, base64 as fwknop --key-gen prints.
type fwkKeys struct{ key, hmac, digest string }

func newFwkKeys(t testing.TB, digest string) fwkKeys {
	t.Helper()
	h, err := fwknop.ParseHash(digest)
	if err != nil {
		t.Fatal(err)
	}
	k, err := fwknop.GenerateKeys(rand.Reader, h)
	if err != nil {
		t.Fatal(err)
	}
	return fwkKeys{fwknop.EncodeKeyBase64(k.Key), fwknop.EncodeKeyBase64(k.HMACKey), digest}
}

// stanza is an access.conf stanza for k; extra lines follow the keys.
func (k fwkKeys) stanza(extra string) string {
	return fmt.Sprintf("SOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nHMAC_DIGEST_TYPE %s\n%s\n", k.key, k.hmac, strings.ToUpper(k.digest), extra)
}

// args are the client's key options for k.
func (k fwkKeys) args() []string {
	return []string{"--key-base64-rijndael", k.key, "--key-base64-hmac", k.hmac, "--use-hmac", "--hmac-digest-type", k.digest}
}

// fwkSetup writes access.conf and a fwknopd.conf for Sesame (run dir in
// dir) and returns the serve arguments for them.
func fwkSetup(t testing.TB, dir, access string) []string {
	t.Helper()
	a := filepath.Join(dir, "access.conf")
	c := filepath.Join(dir, "fwknopd.conf")
	conf := fmt.Sprintf("PCAP_FILTER udp port %d;\nENABLE_SPA_PACKET_AGING Y;\nMAX_SPA_PACKET_AGE 120;\nENABLE_DIGEST_PERSISTENCE Y;\nFWKNOP_RUN_DIR %s;\n", spaPort, filepath.Join(dir, "run"))
	for p, s := range map[string]string{a: access, c: conf} {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return []string{"--fwknop-access", a, "--fwknop-conf", c}
}

// startServe starts `sesame serve ARGS...` in the gateway namespace and
// waits until it is ready.
func startServe(t *testing.T, b *netns.Bench, args ...string) *gateway {
	t.Helper()
	g := &gateway{t: t, b: b}
	if i := slices.Index(args, "-c"); i >= 0 && i+1 < len(args) {
		g.sock = ownControlSocketFile(t, args[i+1], controlSocket(t))
	} else {
		args = withControlSocket(t, args)
		g.sock = args[slices.Index(args, "--control-socket")+1]
	}
	restart := func() {
		p, err := b.Start(b.GW, append([]string{sesameBin, "serve"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		g.proc = p
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.WaitOutput(ctx, "gateway ready"); err != nil {
			t.Fatalf("gateway did not start: %v\n%s", err, p.Output())
		}
	}
	restart()
	t.Cleanup(func() { _ = b.Command(context.Background(), b.GW, sesameBin, "cleanup").Run() })
	return g
}

// fwknopClient runs argv (the stock fwknop or sesame fwknop) in the client
// namespace with HOME set to home, so that the client's rc file is the
// test's.
func fwknopClient(t *testing.T, b *netns.Bench, home string, argv ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := b.Command(ctx, b.Client, argv...)
	cmd.Env = append(os.Environ(), "HOME="+home)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

func flushSesameGrants(b *netns.Bench) {
	b.Command(context.Background(), b.GW, "nft", "flush", "set", "inet", "sesame", "grants4").Run()
}

func requireFwknopPeers(t testing.TB) {
	for _, bin := range []string{"fwknop", "fwknopd", "iptables-nft"} {
		netnstest.RequireBinary(t, bin)
	}
}

// The stock fwknop client opens `sesame serve --fwknop-access` (no
// sesame.toml at all): HMAC-SHA256 and -SHA512 stanzas, -s, -f, and a
// ~/.fwknoprc stanza.
func TestFwknopStockClientOpensSesame(t *testing.T) {
	b := newBench(t)
	requireFwknopPeers(t)
	serveService(t, b)
	k256, k512 := newFwkKeys(t, "sha256"), newFwkKeys(t, "sha512")
	access := k256.stanza(fmt.Sprintf("OPEN_PORTS tcp/%d", svcPort)) + "\n" + k512.stanza(fmt.Sprintf("OPEN_PORTS tcp/%d\nMAX_FW_TIMEOUT 120", svcPort))
	g := startServe(t, b, fwkSetup(t, t.TempDir(), access)...)
	home := t.TempDir()
	rc := fmt.Sprintf("[gw]\nSPA_SERVER %s\nACCESS tcp/%d\nALLOW_IP source\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nHMAC_DIGEST_TYPE sha512\n", b.GW4, svcPort, k512.key, k512.hmac)
	if err := os.WriteFile(filepath.Join(home, ".fwknoprc"), []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}
	dst := netip.AddrPortFrom(b.GW4, svcPort)
	stock := []string{"fwknop", "--no-save-args", "-D", b.GW4.String(), "-A", fmt.Sprintf("tcp/%d", svcPort)}
	for _, c := range []struct {
		name string
		args []string
		log  []string
	}{
		{"hmac-sha256", append(append([]string{}, stock...), append(k256.args(), "--no-rc-file", "-a", b.Client4.String())...), []string{"ttl=30s"}},
		{"hmac-sha512", append(append([]string{}, stock...), append(k512.args(), "--no-rc-file", "-a", b.Client4.String())...), []string{"ttl=30s"}},
		{"source-ip", append(append([]string{}, stock...), append(k256.args(), "--no-rc-file", "-s")...), []string{"ttl=30s"}},
		{"rc-stanza", []string{"fwknop", "--no-save-args", "-n", "gw"}, []string{"ttl=30s"}},
		{"fw-timeout", append(append([]string{}, stock...), append(k512.args(), "--no-rc-file", "-s", "-f", "3")...), []string{"ttl=3s"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			flushSesameGrants(b)
			hidden(t, b, netip.Addr{}, dst)
			from := len(g.log())
			n := strings.Count(g.log(), "msg=grant")
			fwknopClient(t, b, home, c.args...)
			if err := b.WaitReachable(context.Background(), b.Client, dst, 3*time.Second); err != nil {
				t.Fatalf("%v\n%s", err, g.log())
			}
			l := waitNewLog(t, g, from, append([]string{"msg=grant", "proto=fwknop", "src=" + b.Client4.String(), "services=[2222/tcp]"}, c.log...)...)
			if strings.Count(g.log(), "msg=grant") != n+1 || !strings.Contains(l, "client=root@access.conf:") {
				t.Fatalf("grant line %q", l)
			}
		})
	}
	// The -f 3 grant (the last one) closes by itself: the kernel expires it.
	waitHidden(t, b, dst, 10*time.Second)
	// sesame status lists both stanzas, without their keys.
	text, errs, code := sesameCmd(t, "status", "--socket", g.sock)
	if code != 0 || !strings.Contains(text, "(fwknop, hmac sha256) from ANY → 2222/tcp for 30s") ||
		!strings.Contains(text, "stanza #2 (") || !strings.Contains(text, "(fwknop, hmac sha512)") ||
		strings.Contains(text, k256.key) || strings.Contains(text, k512.hmac) {
		t.Fatalf("sesame status (exit %d):\n%s%s", code, text, errs)
	}
	for _, l := range strings.Split(g.log(), "\n") {
		if strings.Contains(l, "level=ERROR") && strings.Contains(l, "fwknop") {
			t.Fatalf("error logged: %s", l)
		}
	}
}

// Alongside a sesame.toml (debug log): a replayed capture is refused, also
// after a restart; wrong keys, a wrong HMAC type, stale and NAT packets
// are refused with their reason in the log.
func TestFwknopRejectsAndReplay(t *testing.T) {
	b := newBench(t)
	requireFwknopPeers(t)
	serveService(t, b)
	k := newFwkKeys(t, "sha256")
	other := newFwkKeys(t, "sha256")
	dir := t.TempDir()
	args := fwkSetup(t, dir, k.stanza(fmt.Sprintf("OPEN_PORTS tcp/%d", svcPort)))
	toml := filepath.Join(dir, "sesame.toml")
	os.WriteFile(toml, []byte(knockConfig(t)), 0o600)
	g := startServe(t, b, append([]string{"-c", toml}, args...)...)
	home := t.TempDir()
	dst := netip.AddrPortFrom(b.GW4, svcPort)
	spa := netip.AddrPortFrom(b.GW4, spaPort)
	base := []string{"fwknop", "--no-save-args", "--no-rc-file", "-D", b.GW4.String(), "-A", fmt.Sprintf("tcp/%d", svcPort), "-a", b.Client4.String()}
	with := func(extra ...string) []string { return append(append([]string{}, base...), extra...) }

	wrongKey := other
	wrongKey.hmac = k.hmac // right HMAC key, wrong Rijndael key
	for _, c := range []struct {
		name   string
		args   []string
		reason string
		level  string
	}{
		{"wrong keys", with(other.args()...), "reason=hmac", "DEBUG"},
		{"wrong rijndael key", with(wrongKey.args()...), "reason=decrypt", "DEBUG"},
		{"wrong hmac type", with("--key-base64-rijndael", k.key, "--key-base64-hmac", k.hmac, "--use-hmac", "--hmac-digest-type", "sha384"), "reason=hmac", "DEBUG"},
		{"stale", with(append(k.args(), "--time-offset-minus", "5min")...), "reason=stale", "INFO"},
		{"future", with(append(k.args(), "--time-offset-plus", "5min")...), "reason=stale", "INFO"},
		{"nat", with(append(k.args(), "--nat-local", "--nat-port", "55000")...), "reason=nat", "INFO"},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := strings.Count(g.log(), c.reason)
			fwknopClient(t, b, home, c.args...)
			deadline := time.Now().Add(5 * time.Second)
			for strings.Count(g.log(), c.reason) == n && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			l := waitLog(t, g, "msg=reject", "proto=fwknop", c.reason, "src="+b.Client4.String())
			if !strings.Contains(l, "level="+c.level) {
				t.Fatalf("log level: %q", l)
			}
			hidden(t, b, netip.Addr{}, dst)
		})
	}
	if strings.Contains(g.log(), "msg=grant") {
		t.Fatalf("a bad packet was granted:\n%s", g.log())
	}

	// A valid packet, saved with -B as it is sent, opens; its bytes sent
	// again from the second address are a replay.
	saved := filepath.Join(home, "spa.pkt")
	fwknopClient(t, b, home, with(append(k.args(), "-B", saved)...)...)
	if err := b.WaitReachable(context.Background(), b.Client, dst, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(saved)
	if err != nil {
		t.Fatal(err)
	}
	pkt := []byte(strings.TrimSpace(string(raw)))
	if !fwknop.LooksLikeFwknop(pkt) {
		t.Fatalf("saved packet %q", raw)
	}
	replayed := func() {
		t.Helper()
		n := strings.Count(g.log(), "reason=replay")
		if err := b.SendUDP(b.Client, b.Client4b, spa, pkt); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for strings.Count(g.log(), "reason=replay") == n && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		waitLog(t, g, "msg=reject", "proto=fwknop", "reason=replay", "src="+b.Client4b.String())
		hidden(t, b, b.Client4b, dst)
	}
	replayed()
	// digest.cache is in fwknopd's format, in FWKNOP_RUN_DIR.
	cache, err := os.ReadFile(filepath.Join(dir, "run", "digest.cache"))
	if err != nil || !strings.HasPrefix(string(cache), "# <digest> <proto> <src_ip>") || !strings.Contains(string(cache), fwknop.ReplayDigest(pkt)+" 17 "+b.Client4.String()) {
		t.Fatalf("digest.cache %q (%v)", cache, err)
	}
	if os.Getenv("SESAME_E2E_SHOWLOG") != "" {
		t.Logf("daemon log:\n%s", g.log())
	}
	// A restart does not reopen the window.
	if err := b.Stop(g.proc); err != nil {
		t.Logf("stop: %v", err)
	}
	g2 := startServe(t, b, append([]string{"-c", toml}, args...)...)
	*g = *g2
	replayed()
	if strings.Count(g.log(), "msg=grant") != 0 {
		t.Fatalf("a replay was granted after the restart:\n%s", g.log())
	}
	if os.Getenv("SESAME_E2E_SHOWLOG") != "" {
		t.Logf("daemon log after the restart:\n%s", g.log())
	}
}

// A reload (SIGHUP, with a sesame.toml) applies a changed access.conf and
// keeps the replay digests; without -c a reload is refused and the
// running configuration stays.
func TestFwknopReload(t *testing.T) {
	b := newBench(t)
	requireFwknopPeers(t)
	serveService(t, b)
	oldK, newK := newFwkKeys(t, "sha256"), newFwkKeys(t, "sha384")
	dir := t.TempDir()
	open := fmt.Sprintf("OPEN_PORTS tcp/%d", svcPort)
	args := fwkSetup(t, dir, oldK.stanza(open))
	toml := filepath.Join(dir, "sesame.toml")
	os.WriteFile(toml, []byte(knockConfig(t)), 0o600)
	g := startServe(t, b, append([]string{"-c", toml}, args...)...)
	home := t.TempDir()
	dst := netip.AddrPortFrom(b.GW4, svcPort)
	send := func(k fwkKeys, extra ...string) {
		fwknopClient(t, b, home, append(append([]string{"fwknop", "--no-save-args", "--no-rc-file", "-D", b.GW4.String(),
			"-A", fmt.Sprintf("tcp/%d", svcPort), "-a", b.Client4.String()}, k.args()...), extra...)...)
	}
	saved := filepath.Join(home, "old.pkt")
	send(oldK, "-B", saved)
	waitLog(t, g, "msg=grant", "proto=fwknop")
	flushSesameGrants(b)

	os.WriteFile(filepath.Join(dir, "access.conf"), []byte(newK.stanza(open)), 0o600)
	if err := syscall.Kill(g.proc.PID(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, g, "configuration reloaded")
	send(oldK)
	waitLog(t, g, "msg=reject", "proto=fwknop", "reason=hmac")
	hidden(t, b, netip.Addr{}, dst)
	send(newK)
	if err := b.WaitReachable(context.Background(), b.Client, dst, 3*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, g.log())
	}
	raw, _ := os.ReadFile(saved)
	b.SendUDP(b.Client, b.Client4b, netip.AddrPortFrom(b.GW4, spaPort), []byte(strings.TrimSpace(string(raw))))
	waitLog(t, g, "msg=reject", "proto=fwknop", "reason=replay", "src="+b.Client4b.String())

	// Alone (no -c): SIGHUP is refused, the gateway keeps serving.
	b.Stop(g.proc)
	g = startServe(t, b, args...)
	if err := syscall.Kill(g.proc.PID(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, g, "reload refused", "fwknop-access without -c")
	flushSesameGrants(b)
	send(newK)
	if err := b.WaitReachable(context.Background(), b.Client, dst, 3*time.Second); err != nil {
		t.Fatalf("after a refused reload: %v\n%s", err, g.log())
	}
}

// One UDP port carries both formats: native SPA ([spa] port 62201) and
// fwknop (PCAP_FILTER udp port 62201) on the same daemon; each packet goes
// to its own handler, told apart by format.
func TestFwknopAndNativeSPAShareThePort(t *testing.T) {
	b := newBench(t)
	requireFwknopPeers(t)
	serveService(t, b)
	s := newSPABench(t)
	k := newFwkKeys(t, "sha256")
	dir := t.TempDir()
	args := fwkSetup(t, dir, k.stanza(fmt.Sprintf("OPEN_PORTS tcp/%d", svcPort)))
	toml := filepath.Join(dir, "sesame.toml")
	os.WriteFile(toml, []byte(s.config(t.TempDir(), s.clientsWithoutOld)), 0o600)
	g := startServe(t, b, append([]string{"-c", toml}, args...)...)
	if l := waitLog(t, g, "msg=\"nftables: table set up\""); !strings.Contains(l, "watched=1") {
		t.Fatalf("the shared port should be watched once: %s", l)
	}
	dst := netip.AddrPortFrom(b.GW4, svcPort)
	fwknopClient(t, b, t.TempDir(), append([]string{"fwknop", "--no-save-args", "--no-rc-file", "-D", b.GW4.String(),
		"-A", fmt.Sprintf("tcp/%d", svcPort), "-a", b.Client4.String()}, k.args()...)...)
	waitLog(t, g, "msg=grant", "proto=fwknop", "src="+b.Client4.String())
	flushSesameGrants(b)
	hidden(t, b, netip.Addr{}, dst)
	s.open(t, b, s.laptop, b.GW4.String(), fmt.Sprintf("%d/tcp", svcPort), "--wait")
	waitLog(t, g, "msg=grant", "proto=spa", "client=laptop")
	for _, l := range strings.Split(g.log(), "\n") {
		if strings.Contains(l, "msg=reject") {
			t.Fatalf("a packet went to the wrong handler: %s", l)
		}
	}
}

// `sesame fwknop` opens a stock fwknopd 2.6.10 (iptables backend, pcap
// capture, in the gateway namespace as ../shared/bench does it).
func TestSesameFwknopOpensStockFwknopd(t *testing.T) {
	b := newBench(t)
	requireFwknopPeers(t)
	serveService(t, b)
	k256, k512 := newFwkKeys(t, "sha256"), newFwkKeys(t, "sha512")
	f := startFwknopd(t, b, k256.stanza("FW_ACCESS_TIMEOUT 30")+"\n"+k512.stanza("FW_ACCESS_TIMEOUT 30"), 100000)
	home := t.TempDir()
	rc := fmt.Sprintf("[default]\nHMAC_DIGEST_TYPE sha512\n[gw]\nSPA_SERVER %s\nACCESS tcp/%d\nALLOW_IP %s\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\n", b.GW4, svcPort, b.Client4, k512.key, k512.hmac)
	if err := os.WriteFile(filepath.Join(home, ".fwknoprc"), []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}
	dst := netip.AddrPortFrom(b.GW4, svcPort)
	client := []string{sesameBin, "fwknop", "-D", b.GW4.String(), "-A", fmt.Sprintf("tcp/%d", svcPort), "--no-rc-file"}
	for _, c := range []struct {
		name string
		args []string
	}{
		{"hmac-sha256", append(append([]string{}, client...), append(k256.args(), "-a", b.Client4.String())...)},
		{"hmac-sha512", append(append([]string{}, client...), append(k512.args(), "-a", b.Client4.String())...)},
		{"source-ip-timeout", append(append([]string{}, client...), append(k256.args(), "-s", "-f", "20", "-m", "sha512")...)},
		{"rc-stanza", []string{sesameBin, "fwknop", "-n", "gw", "-v"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f.flush()
			hidden(t, b, netip.Addr{}, dst)
			n := strings.Count(f.log(), "Added access rule")
			fwknopClient(t, b, home, c.args...)
			if err := b.WaitReachable(context.Background(), b.Client, dst, 5*time.Second); err != nil {
				t.Fatalf("%v\n%s", err, f.log())
			}
			if strings.Count(f.log(), "Added access rule") != n+1 {
				t.Fatalf("fwknopd log:\n%s", f.log())
			}
		})
	}
	// --wait: resends fresh packets (never replays) until the port answers.
	f.flush()
	out := fwknopClient(t, b, home, sesameBin, "fwknop", "-n", "gw", "-v", "--wait", fmt.Sprintf("tcp/%d=5s", svcPort))
	if !strings.Contains(out, "open after") || strings.Contains(f.log(), "Replay detected") {
		t.Fatalf("--wait: %s\nfwknopd:\n%s", out, f.log())
	}
}

// fwknopd is a stock fwknopd running in the gateway namespace.
type fwknopd struct {
	b    *netns.Bench
	proc *netns.Proc
}

func (f *fwknopd) log() string { return string(f.proc.Output()) }

// flush revokes every access fwknopd granted.
func (f *fwknopd) flush() {
	f.b.Command(context.Background(), f.b.GW, "iptables-nft", "-F", "FWKNOP_INPUT").Run()
}

// startFwknopd runs Debian's fwknopd with the iptables-nft backend: the
// protected port is dropped in iptables' INPUT chain and fwknopd's
// FWKNOP_INPUT accepts ahead of it (../shared/bench/lib.sh, ipt-nft).
func startFwknopd(tb testing.TB, b *netns.Bench, access string, loopSleepUS int) *fwknopd {
	tb.Helper()
	dir := tb.TempDir()
	ipt, err := exec.LookPath("iptables-nft")
	if err != nil {
		tb.Fatal(err)
	}
	if out, err := b.Command(context.Background(), b.GW, ipt, "-A", "INPUT", "-p", "tcp", "--dport", strconv.Itoa(svcPort), "-j", "DROP").CombinedOutput(); err != nil {
		tb.Fatalf("iptables: %v %s", err, out)
	}
	conf := fmt.Sprintf(`PCAP_INTF %s;
ENABLE_PCAP_PROMISC N;
PCAP_FILTER udp port %d;
PCAP_LOOP_SLEEP %d;
ENABLE_SPA_PACKET_AGING Y;
MAX_SPA_PACKET_AGE 120;
ENABLE_DIGEST_PERSISTENCE Y;
FIREWALL_EXE %s;
ENABLE_IPT_FORWARDING N;
FWKNOP_RUN_DIR %s;
`, netns.GWIf, spaPort, loopSleepUS, ipt, dir)
	os.WriteFile(filepath.Join(dir, "fwknopd.conf"), []byte(conf), 0o600)
	os.WriteFile(filepath.Join(dir, "access.conf"), []byte(access), 0o600)
	p, err := b.Start(b.GW, "fwknopd", "-f", "-v", "-c", filepath.Join(dir, "fwknopd.conf"), "-a", filepath.Join(dir, "access.conf"),
		"-p", filepath.Join(dir, "fwknopd.pid"), "-d", filepath.Join(dir, "digest.cache"))
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := p.WaitOutput(ctx, "main event loop"); err != nil {
		tb.Fatalf("fwknopd did not start: %v\n%s", err, p.Output())
	}
	return &fwknopd{b: b, proc: p}
}

// Latency from the SPA packet leaving `sesame fwknop` to 2222/tcp
// answering (probed every 200 µs), for `sesame serve --fwknop-access` and
// for a stock fwknopd on the same bench, with the same client and keys.
// Run with
//
//	go test ./e2e -run '^$' -bench FwknopToOpen -benchtime 50x
func BenchmarkFwknopToOpenSesame(b *testing.B) {
	bench := benchSetup(b)
	netnstest.RequireBinary(b, "fwknop")
	k := newFwkKeys(b, "sha256")
	args := withControlSocket(b, fwkSetup(b, b.TempDir(), k.stanza(fmt.Sprintf("OPEN_PORTS tcp/%d", svcPort))))
	serveForBench(b, bench, args...)
	measureFwknop(b, bench, k, func() { flushSesameGrants(bench) })
}

func BenchmarkFwknopToOpenFwknopd(b *testing.B) {
	bench := benchSetup(b)
	requireFwknopPeers(b)
	k := newFwkKeys(b, "sha256")
	f := startFwknopd(b, bench, k.stanza("FW_ACCESS_TIMEOUT 30"), 100000) // the stock PCAP_LOOP_SLEEP
	measureFwknop(b, bench, k, f.flush)
}

var fwkOpenAfter = regexp.MustCompile(`open after (\d+)us \((\d+) packets\)`)

func measureFwknop(b *testing.B, bench *netns.Bench, k fwkKeys, flush func()) {
	var lat []float64
	resent := 0
	home := b.TempDir()
	for i := 0; i < b.N; i++ {
		flush()
		cmd := bench.Command(context.Background(), bench.Client, append([]string{sesameBin, "fwknop", "-v", "--no-rc-file",
			"-D", bench.GW4.String(), "-A", fmt.Sprintf("tcp/%d", svcPort), "-a", bench.Client4.String(),
			"--wait", fmt.Sprintf("tcp/%d=5s", svcPort), "--wait-interval", "200us"}, k.args()...)...)
		cmd.Env = append(os.Environ(), "HOME="+home)
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("try %d: %v\n%s", i, err, out)
		}
		m := fwkOpenAfter.FindSubmatch(out)
		if m == nil {
			b.Fatalf("no timing in %q", out)
		}
		us, _ := strconv.Atoi(string(m[1]))
		n, _ := strconv.Atoi(string(m[2]))
		lat = append(lat, float64(us))
		resent += n - 1
		time.Sleep(60 * time.Millisecond) // under the per-source rate limit
	}
	b.ReportMetric(float64(resent), "resends")
	report(b, lat)
}

package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/netns"
)

// knockdFirewall is the kind of ruleset knockd users run: a drop policy and
// a set the knockd.conf commands fill with nft.
const knockdFirewall = `table inet kbench {
	set allowed { type ipv4_addr . inet_service; }
	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related accept
		iifname "lo" accept
		meta l4proto { icmp, ipv6-icmp } accept
		ip saddr . tcp dport @allowed accept
	}
}
`

func knockdDropinConf(t *testing.T, nft, dir string) string {
	conf := fmt.Sprintf(`[options]
	LogFile = %[2]s/knockd.log
[ssh]
	sequence = 7000,8000:udp,9000
	seq_timeout = 5
	tcpflags = syn
	start_command = %[1]s add element inet kbench allowed { %%IP%% . %[3]d }
	stop_command = %[1]s delete element inet kbench allowed { %%IP%% . %[3]d }
	cmd_timeout = 3
`, nft, dir, svcPort)
	path := filepath.Join(dir, "knockd.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

type dropin struct {
	t    *testing.T
	b    *netns.Bench
	args []string
	proc *netns.Proc
}

func (d *dropin) start() {
	d.t.Helper()
	d.args = withControlSocket(d.t, d.args)
	p, err := d.b.Start(d.b.GW, append([]string{sesameBin, "serve"}, d.args...)...)
	if err != nil {
		d.t.Fatal(err)
	}
	d.proc = p
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitOutput(ctx, "knockd mode ready"); err != nil {
		d.t.Fatalf("not ready: %v\n%s", err, p.Output())
	}
}

// startDropin sets the firewall up and starts `sesame serve --knockd-conf`
// with its state in dir.
func startDropin(t *testing.T, b *netns.Bench, dir string) *dropin {
	t.Helper()
	nft, err := execLookPath("nft")
	if err != nil {
		t.Skip("nft not installed")
	}
	rules := filepath.Join(dir, "kbench.nft")
	os.WriteFile(rules, []byte(knockdFirewall), 0o600)
	run(t, b, b.GW, 10*time.Second, false, "nft", "-f", rules)
	t.Cleanup(func() { b.Command(context.Background(), b.GW, "nft", "delete", "table", "inet", "kbench").Run() })
	conf := knockdDropinConf(t, nft, dir)
	d := &dropin{t: t, b: b, args: []string{"--knockd-conf", conf, "-i", netns.GWIf, "--state-dir", filepath.Join(dir, "state")}}
	d.start()
	return d
}

func knockSSH(t *testing.T, b *netns.Bench) {
	t.Helper()
	run(t, b, b.Client, 10*time.Second, false, sesameBin, "knock", "--delay", "10ms", b.GW4.String(), "7000", "8000/udp", "9000", "--wait", fmt.Sprintf("tcp/%d=5s", svcPort))
}

// The drop-in drives the user's own firewall with the file's commands, and
// a stop command pending when the daemon is SIGKILLed still runs, on time,
// after the restart (knockd loses it: the hole stays open).
func TestKnockdDropinStopSurvivesKill(t *testing.T) {
	b := newBench(t)
	serveService(t, b)
	dir := t.TempDir()
	d := startDropin(t, b, dir)
	dst := netip.AddrPortFrom(b.GW4, svcPort)
	hidden(t, b, netip.Addr{}, dst)
	knockSSH(t, b)
	opened := time.Now()
	if err := syscall.Kill(d.proc.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-d.proc.Done()
	state, err := os.ReadFile(filepath.Join(dir, "state", "knockd-pending.json"))
	if err != nil || !strings.Contains(string(state), "delete element inet kbench allowed { "+b.Client4.String()) {
		t.Fatalf("pending stop not persisted: %v\n%s", err, state)
	}
	reachable(t, b, netip.Addr{}, dst) // nothing closed it yet
	d.start()
	took := waitHidden(t, b, dst, 10*time.Second)
	if since := time.Since(opened); since < 2500*time.Millisecond {
		t.Fatalf("closed %v after opening: before Cmd_Timeout", since)
	}
	t.Logf("closed %v after the restart (Cmd_Timeout 3 s from the start command)", took)
	if state, _ := os.ReadFile(filepath.Join(dir, "state", "knockd-pending.json")); strings.Contains(string(state), "delete element") {
		t.Fatalf("stop still pending after it ran:\n%s", state)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "knockd.log"))
	for _, want := range []string{": ssh: OPEN SESAME", ": ssh: command timeout", "ssh: running command: " + "/usr/sbin/nft delete element"} {
		if !strings.Contains(string(log), want) && !strings.Contains(string(log), strings.Replace(want, "/usr/sbin/", "", 1)) {
			t.Errorf("knockd.log lacks %q:\n%s", want, log)
		}
	}
}

// SIGTERM runs the pending stop commands before exiting, so a stopped
// daemon leaves no hole open; --keep-pending keeps them for the next start.
func TestKnockdDropinShutdownClosesHoles(t *testing.T) {
	b := newBench(t)
	serveService(t, b)
	dir := t.TempDir()
	d := startDropin(t, b, dir)
	dst := netip.AddrPortFrom(b.GW4, svcPort)
	knockSSH(t, b)
	start := time.Now()
	if err := b.Stop(d.proc); err != nil {
		t.Logf("stop: %v", err)
	}
	if time.Since(start) > 2500*time.Millisecond {
		t.Fatalf("shutdown waited for Cmd_Timeout (%v)", time.Since(start))
	}
	hidden(t, b, netip.Addr{}, dst)
	if !strings.Contains(string(d.proc.Output()), "kind=stop") {
		t.Fatalf("no stop command at shutdown:\n%s", d.proc.Output())
	}

	// --keep-pending: the hole stays open across a quick restart and closes
	// on time afterwards.
	d.args = append(d.args, "--keep-pending")
	d.start()
	knockSSH(t, b)
	opened := time.Now()
	b.Stop(d.proc)
	reachable(t, b, netip.Addr{}, dst)
	d.start()
	waitHidden(t, b, dst, 10*time.Second)
	if since := time.Since(opened); since < 2500*time.Millisecond {
		t.Fatalf("closed after %v: before Cmd_Timeout", since)
	}
}

package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/netns/netnstest"
	"github.com/sesame-gw/sesame/internal/packet"
	"github.com/sesame-gw/sesame/internal/service"
	"github.com/sesame-gw/sesame/internal/totp"
)

// A rotating door end to end: `sesame knock --door --secret` opens it; the
// same sequence replayed (by another source) does not; the previous
// period's sequence is accepted once; older ones and a scan of the port
// range open nothing.
func TestRotatingDoor(t *testing.T) {
	b := newBench(t)
	netnstest.RequireBinary(t, "nmap")
	serveService(t, b)
	dir := t.TempDir()
	secret := filepath.Join(dir, "ssh.secret")
	os.WriteFile(secret, []byte("# shared with the client\nGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n"), 0o600)
	const period = 10 * time.Second
	ports := service.Range{Proto: service.TCP, First: 40000, Last: 40999}
	g := startGateway(t, b, fmt.Sprintf(`[gateway]
state_dir = %q
log_level = "debug"

[[door]]
name = "ssh"
secret_file = %q
period = "10s"
port_range = "40000-40999/tcp"
seq_timeout = "5s"
open = ["%d/tcp"]
duration = "%s"
`, t.TempDir(), secret, svcPort, 20*time.Second))
	door := totp.Door{Name: "ssh", Key: []byte("12345678901234567890"), Period: period, Ports: ports, Steps: totp.DefaultSteps}
	dst := netip.AddrPortFrom(b.GW4, svcPort)
	hidden(t, b, b.Client4, dst)

	// Work inside one period: wait for the start of the next one.
	now := time.Now()
	time.Sleep(now.Truncate(period).Add(period + 200*time.Millisecond).Sub(now))
	// While both sequences are live, a scan of the whole range in order
	// (which walks through them) opens nothing.
	out, _ := run(t, b, b.Client, 60*time.Second, false, "nmap", "-6", "-Pn", "-n", "-sS", "-r", "--max-retries", "0",
		"--min-rate", "5000", "-p", "40000-40999", b.GW6.String())
	if !strings.Contains(out, "Nmap done") {
		t.Fatalf("nmap: %s", out)
	}
	hidden(t, b, b.Client6, netip.AddrPortFrom(b.GW6, svcPort))
	c := door.Counter(time.Now())
	run(t, b, b.Client, 10*time.Second, false, sesameBin, "knock", "-v", "--door", "ssh", "--secret", secret,
		"--period", "10s", "--port-range", "40000-40999/tcp", b.GW4.String(), "--wait", fmt.Sprintf("tcp/%d=4s", svcPort))
	reachable(t, b, b.Client4, dst)

	raw := newRawSender(t, b)
	knock := func(src netip.Addr, seq []service.Service) {
		for _, s := range seq {
			raw.send(t, src, b.GW4, s, packet.SYN)
			pause()
		}
		time.Sleep(100 * time.Millisecond)
	}
	// An eavesdropper replays the sequence just used: refused.
	knock(b.Client4b, door.Sequence(c))
	hidden(t, b, b.Client4b, dst)
	// Two periods back: refused.
	knock(b.Client4b, door.Sequence(c-2))
	hidden(t, b, b.Client4b, dst)
	// The previous period's sequence (a client whose clock is behind) is
	// accepted, once.
	knock(b.Client4b, door.Sequence(c-1))
	reachable(t, b, b.Client4b, dst)
	if door.Counter(time.Now()) != c {
		t.Fatal("the test ran across a period boundary; rerun")
	}
	log := g.log()
	if n := strings.Count(log, "msg=grant "); n != 2 {
		t.Fatalf("%d grants, want 2:\n%s", n, log)
	}
	if !strings.Contains(log, `reason="wrong port"`) {
		t.Fatalf("the scan reset nothing:\n%s", log)
	}
}

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/netns"
)

// Two daemons configured with one control socket: the second does not take
// it over from the live first, says so (path and key), and status keeps
// reaching the first. A socket left by a killed daemon is taken over by
// the next start.
func TestControlSocketHeldByAnotherDaemon(t *testing.T) {
	b := newBench(t)
	nft, err := execLookPath("nft")
	if err != nil {
		t.Skip("nft not installed")
	}
	f := newOpsFiles(t)
	g := startGateway(t, b, f.config(webDoor)) // doors ssh and web: tells it from the second
	if g.sock != f.sock {
		t.Fatalf("gateway socket %s, want the config's %s", g.sock, f.sock)
	}

	// The second: the knockd mode (no nftables table of its own, so it
	// may share the namespace), told to use the first one's socket.
	conf := knockdDropinConf(t, nft, f.dir)
	p, err := b.Start(b.GW, sesameBin, "serve", "--knockd-conf", conf, "-i", netns.GWIf,
		"--state-dir", filepath.Join(f.dir, "state2"), "--control-socket", f.sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitOutput(ctx, "knockd mode ready"); err != nil {
		t.Fatalf("second daemon: %v\n%s", err, p.Output())
	}
	out := string(p.Output())
	for _, want := range []string{"running WITHOUT the control socket", f.sock + " belongs to another running sesame daemon", "control_socket"} {
		if !strings.Contains(out, want) {
			t.Errorf("second daemon's log lacks %q:\n%s", want, out)
		}
	}
	if d := doorNames(f.status(t)); !slices.Equal(d, []string{"ssh", "web"}) {
		t.Fatalf("status reached the wrong daemon: doors %v", d)
	}
	b.Stop(p)
	if d := doorNames(f.status(t)); !slices.Equal(d, []string{"ssh", "web"}) {
		t.Fatalf("after the second stopped: doors %v", d)
	}

	// Killed: the socket file stays, nobody listens; the restart takes it.
	syscall.Kill(g.proc.PID(), syscall.SIGKILL)
	<-g.proc.Done()
	if _, err := os.Lstat(f.sock); err != nil {
		t.Fatalf("socket of the killed daemon: %v", err)
	}
	if _, _, code := sesameCmd(t, "status", "--socket", f.sock); code == 0 {
		t.Fatal("status answered with the daemon dead")
	}
	g.start()
	if strings.Contains(g.log(), "WITHOUT the control socket") {
		t.Fatalf("restart did not take the stale socket:\n%s", g.log())
	}
	if d := doorNames(f.status(t)); !slices.Equal(d, []string{"ssh", "web"}) {
		t.Fatalf("after the restart: doors %v", d)
	}
}

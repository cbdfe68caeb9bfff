package netns_test

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/netns"
	"github.com/sesame-gw/sesame/internal/netns/netnstest"
)

// sameNetns reports whether process pid is in the namespace mounted for ns.
func sameNetns(t *testing.T, pid int, ns string) bool {
	t.Helper()
	var a, b syscall.Stat_t
	if err := syscall.Stat("/proc/"+strconv.Itoa(pid)+"/ns/net", &a); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat("/run/netns/"+ns, &b); err != nil {
		t.Fatal(err)
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

func TestStartStop(t *testing.T) {
	t.Parallel()
	netnstest.RequireBinary(t, "sh")
	netnstest.RequireBinary(t, "sleep")
	b := netnstest.New(t, netns.Options{StopGrace: 300 * time.Millisecond})
	ctx := testCtx(t)

	p, err := b.Start(b.GW, "sh", "-c", "echo to-stdout; echo to-stderr >&2; exec sleep 30")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitOutput(ctx, "to-stderr"); err != nil {
		t.Fatal(err)
	}
	if out := string(p.Output()); !strings.Contains(out, "to-stdout") {
		t.Errorf("output %q lacks stdout", out)
	}
	// ip and sh exec: the PID becomes sleep itself, inside the gateway
	// namespace. Polled: sh may not have reached its exec yet.
	var comm string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		c, _ := os.ReadFile("/proc/" + strconv.Itoa(p.PID()) + "/comm")
		if comm = strings.TrimSpace(string(c)); comm == "sleep" {
			break
		}
	}
	if comm != "sleep" {
		t.Errorf("pid %d is %q, want sleep", p.PID(), comm)
	}
	if !sameNetns(t, p.PID(), b.GW) {
		t.Errorf("pid %d not in %s", p.PID(), b.GW)
	}
	if err := b.Stop(p); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if !errors.As(p.Err(), &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Errorf("after Stop: %v, want killed by SIGTERM", p.Err())
	}

	// Ignores SIGTERM: Stop escalates to SIGKILL after StopGrace.
	stubborn, err := b.Start(b.Client, "sh", "-c", "trap '' TERM; echo ready; exec sleep 30")
	if err != nil {
		t.Fatal(err)
	}
	if err := stubborn.WaitOutput(ctx, "ready"); err != nil {
		t.Fatal(err)
	}
	if err := b.Stop(stubborn); err != nil {
		t.Fatal(err)
	}
	if !errors.As(stubborn.Err(), &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("stubborn after Stop: %v, want killed by SIGKILL", stubborn.Err())
	}
	if err := b.Stop(stubborn); err != nil {
		t.Errorf("second Stop: %v", err)
	}

	// A process that exits without the awaited line.
	quick, err := b.Start(b.GW, "echo", "bye")
	if err != nil {
		t.Fatal(err)
	}
	if err := quick.WaitOutput(ctx, "never printed"); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Errorf("WaitOutput on an exited process: %v", err)
	}

	// Command runs inside the namespace and sees the bench's addresses.
	out, err := b.Command(ctx, b.Client, "ip", "-o", "addr", "show", "dev", netns.ClientIf).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{b.Client4.String(), b.Client4b.String(), b.Client6.String(), b.Client6b.String()} {
		if !strings.Contains(string(out), a) {
			t.Errorf("client addresses lack %s:\n%s", a, out)
		}
	}
	for _, line := range strings.Split(string(out), "\n") {
		// The kernel's link-local address does DAD; the bench's own must not.
		if strings.Contains(line, "tentative") && strings.Contains(line, "scope global") {
			t.Errorf("tentative bench address (nodad missing?): %s", line)
		}
	}
	if err := b.Command(ctx, "init", "true").Run(); !errors.Is(err, netns.ErrUnknownNS) {
		t.Errorf("Command in a foreign namespace: %v, want ErrUnknownNS", err)
	}

	// Close stops what is still running.
	left, err := b.Start(b.GW, "sleep", "30")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-left.Done():
	default:
		t.Error("Close left a process running")
	}
	if got := len(b.Procs()); got != 4 {
		t.Errorf("Procs: %d, want 4", got)
	}
}

package fwknopgw

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sesame-gw/sesame/internal/fwknop/accessconf"
)

func readState(t *testing.T, path string) []*pendingClose {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st.Closes
}

// CMD_CYCLE_OPEN runs at once, CMD_CYCLE_CLOSE after the timer; the close
// is in the state file until it has run.
func TestRunnerCycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		state := filepath.Join(t.TempDir(), CmdCycleStateFile)
		fx := &fakeExec{}
		r, err := NewRunner(RunnerOptions{State: state, Exec: fx.exec})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		start := time.Now()
		r.Cycle(cli, "s1", &accessconf.CmdCycle{Open: []string{"open", "10.99.0.2"}, Close: []string{"close", "10.99.0.2"}, CloseAfter: 30 * time.Second})
		synctest.Wait()
		if runs := fx.runs(); len(runs) != 1 || runs[0][0] != "open" {
			t.Fatalf("runs %v", runs)
		}
		if r.Pending() != 1 {
			t.Fatalf("pending %d", r.Pending())
		}
		if st := readState(t, state); len(st) != 1 || st[0].Argv[0] != "close" || !st[0].At.Equal(start.Add(30*time.Second)) || st[0].Src != "10.99.0.2" {
			t.Fatalf("state %+v", st)
		}
		time.Sleep(29 * time.Second)
		synctest.Wait()
		if len(fx.runs()) != 1 {
			t.Fatal("closed early")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if runs := fx.runs(); len(runs) != 2 || runs[1][0] != "close" || !fx.at[1].Equal(start.Add(30*time.Second)) {
			t.Fatalf("runs %v at %v", runs, fx.at)
		}
		if r.Pending() != 0 || len(readState(t, state)) != 0 {
			t.Fatal("close still pending after it ran")
		}
		// A failed open schedules no close; NONE schedules none either.
		r.Cycle(cli, "s1", &accessconf.CmdCycle{Open: []string{"false"}, Close: []string{"close"}, CloseAfter: time.Second})
		r.Cycle(cli, "s1", &accessconf.CmdCycle{Open: []string{"open"}, CloseAfter: time.Second})
		synctest.Wait()
		if r.Pending() != 0 || len(fx.runs()) != 4 {
			t.Fatalf("pending %d, runs %v", r.Pending(), fx.runs())
		}
	})
}

// Closes survive a restart: due ones run at once, later ones on time;
// Close leaves the unrun ones in the state file.
func TestRunnerRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		state := filepath.Join(t.TempDir(), CmdCycleStateFile)
		fx := &fakeExec{}
		r, err := NewRunner(RunnerOptions{State: state, Exec: fx.exec})
		if err != nil {
			t.Fatal(err)
		}
		r.Cycle(cli, "s1", &accessconf.CmdCycle{Open: []string{"open", "a"}, Close: []string{"close", "a"}, CloseAfter: 10 * time.Second})
		r.Cycle(cli, "s1", &accessconf.CmdCycle{Open: []string{"open", "b"}, Close: []string{"close", "b"}, CloseAfter: time.Hour})
		synctest.Wait()
		r.Close()
		if st := readState(t, state); len(st) != 2 || st[0].Argv[1] != "a" {
			t.Fatalf("state after Close %+v", st)
		}
		time.Sleep(time.Minute) // down for a minute: "a" fell due
		fx2 := &fakeExec{}
		r2, err := NewRunner(RunnerOptions{State: state, Exec: fx2.exec})
		if err != nil {
			t.Fatal(err)
		}
		defer r2.Close()
		synctest.Wait()
		if runs := fx2.runs(); len(runs) != 1 || runs[0][1] != "a" {
			t.Fatalf("after restart %v", runs)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if runs := fx2.runs(); len(runs) != 2 || runs[1][1] != "b" || r2.Pending() != 0 {
			t.Fatalf("later %v", runs)
		}
	})
}

func TestRunnerLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fx := &fakeExec{}
		r, _ := NewRunner(RunnerOptions{Exec: fx.exec, MaxPending: 1})
		cc := &accessconf.CmdCycle{Open: []string{"open"}, Close: []string{"close"}, CloseAfter: time.Minute}
		if !r.Cycle(cli, "s1", cc) {
			t.Fatal("first cycle refused")
		}
		if r.Cycle(cli, "s1", cc) {
			t.Fatal("cycle beyond MaxPending accepted")
		}
		if !r.Exec(cli, "s1", Cmd{Argv: []string{"cmd"}}) {
			t.Fatal("command refused")
		}
		synctest.Wait()
		r.Close()
		if r.Exec(cli, "s1", Cmd{Argv: []string{"cmd"}}) || r.Cycle(cli, "s1", &accessconf.CmdCycle{Open: []string{"x"}}) {
			t.Fatal("accepted after Close")
		}
		if len(fx.runs()) != 2 {
			t.Fatalf("runs %v", fx.runs())
		}
	})
}

// Queued commands give up when the runner closes; running ones finish.
func TestRunnerCloseWhileBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var started atomic.Int32
		exec := func(ctx context.Context, c Cmd) ([]byte, error) {
			started.Add(1)
			<-release
			return nil, nil
		}
		r, _ := NewRunner(RunnerOptions{Exec: exec})
		for range maxRunning + 3 {
			r.Exec(cli, "s1", Cmd{Argv: []string{"slow"}})
		}
		synctest.Wait()
		if started.Load() != maxRunning {
			t.Fatalf("%d started", started.Load())
		}
		go func() { time.Sleep(time.Second); close(release) }()
		r.Close()
		if started.Load() != maxRunning {
			t.Fatalf("%d started after Close", started.Load())
		}
	})
}

func TestRunnerBadState(t *testing.T) {
	state := filepath.Join(t.TempDir(), CmdCycleStateFile)
	os.WriteFile(state, []byte("{not json"), 0o600)
	if _, err := NewRunner(RunnerOptions{State: state}); err == nil {
		t.Fatal("corrupt state accepted")
	}
}

// OSExec runs argv without a shell and bounds the output.
func TestOSExec(t *testing.T) {
	out, err := OSExec(context.Background(), Cmd{Argv: []string{"echo", "$IP;", "`x`"}})
	if err != nil || string(out) != "$IP; `x`\n" {
		t.Fatalf("%q %v", out, err)
	}
	out, err = OSExec(context.Background(), Cmd{Argv: []string{"head", "-c", "10000", "/dev/zero"}})
	if err != nil || len(out) != maxOutput {
		t.Fatalf("%d bytes, %v", len(out), err)
	}
	if _, err := OSExec(context.Background(), Cmd{Argv: []string{"false"}}); err == nil {
		t.Fatal("false succeeded")
	}
	if _, err := OSExec(context.Background(), Cmd{Argv: []string{"true"}, User: "no-such-user-sesame"}); err == nil {
		t.Fatal("unknown user accepted")
	}
	if os.Geteuid() == 0 {
		out, err := OSExec(context.Background(), Cmd{Argv: []string{"id", "-u"}, User: "nobody"})
		if err != nil || string(out) == "0\n" {
			t.Fatalf("as nobody: %q %v", out, err)
		}
	}
}

package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Proc is a background process started by [Bench.Start] inside one of the
// bench's namespaces. Its stdout and stderr go, interleaved, to a buffer
// that keeps the last Options.OutputLimit bytes. All methods are safe for
// concurrent use.
type Proc struct {
	ns   string
	args []string
	cmd  *exec.Cmd
	out  *tailBuffer
	done chan struct{}
	err  error // cmd.Wait's result, set before done is closed
}

// PID returns the process ID of the command (ip netns exec execs it, so this
// is the command itself, not a wrapper).
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// NS returns the namespace the process runs in.
func (p *Proc) NS() string { return p.ns }

// String returns "argv... (pid N in NS)" for logs.
func (p *Proc) String() string {
	return fmt.Sprintf("%s (pid %d in %s)", strings.Join(p.args, " "), p.PID(), p.ns)
}

// Done is closed when the process has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err returns the process's exit error (nil for exit status 0) once Done is
// closed, and nil before.
func (p *Proc) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Output returns a copy of the captured stdout and stderr (the last
// Options.OutputLimit bytes), prefixed by a note when older bytes were dropped.
func (p *Proc) Output() []byte {
	b, dropped, _ := p.out.snapshot()
	if dropped > 0 {
		return append([]byte(fmt.Sprintf("[... %d bytes dropped ...]\n", dropped)), b...)
	}
	return b
}

// WaitOutput waits until the captured output contains substr (a readiness
// line such as "listening on"). It fails when ctx ends, or when the process
// exits without having printed it. Output dropped by the OutputLimit is not
// searched.
func (p *Proc) WaitOutput(ctx context.Context, substr string) error {
	for {
		b, _, changed := p.out.snapshot()
		if bytes.Contains(b, []byte(substr)) {
			return nil
		}
		select {
		case <-changed:
		case <-p.done:
			if b, _, _ := p.out.snapshot(); bytes.Contains(b, []byte(substr)) {
				return nil
			}
			return fmt.Errorf("netns: %s exited (%v) before printing %q", p, p.err, substr)
		case <-ctx.Done():
			return fmt.Errorf("netns: waiting for %q from %s: %w", substr, p, ctx.Err())
		}
	}
}

// stop sends SIGTERM, then SIGKILL when the process is still there after
// grace, and waits for it to be reaped. Signals go through the os.Process
// (a pidfd on Linux), so they never reach a reused PID.
func (p *Proc) stop(grace time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	// os.ErrProcessDone if it exited meanwhile: the wait below returns at once.
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("netns: kill %s: %w", p, err)
	}
	// Wait returns after WaitDelay at the latest, even if a child of the
	// process still holds the output pipe.
	<-p.done
	return nil
}

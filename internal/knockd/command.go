package knockd

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"

	"github.com/sesame-gw/sesame/internal/knockdconf"
)

// Runner runs one command line. ShellRunner is the real one; tests use a
// fake.
type Runner interface {
	// Run runs command and returns its exit status (0 = success); err is
	// set only when the command could not be run at all.
	Run(ctx context.Context, command string) (status int, err error)
}

// ShellRunner runs commands as knockd does: `/bin/sh -c COMMAND` (system(3))
// in a new session (setsid), with the daemon's environment, output to
// Output.
type ShellRunner struct {
	// Shell is the shell; "" means /bin/sh.
	Shell string
	// Output receives the commands' stdout and stderr; nil discards.
	Output io.Writer
}

// Run implements Runner. Cancelling ctx kills the command's whole process
// group.
func (r ShellRunner) Run(ctx context.Context, command string) (int, error) {
	sh := r.Shell
	if sh == "" {
		sh = "/bin/sh"
	}
	cmd := exec.Command(sh, "-c", command)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Stdout, cmd.Stderr = r.Output, r.Output
	if err := cmd.Start(); err != nil {
		return -1, err
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		case <-done:
		}
	}()
	err := cmd.Wait()
	close(done)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	if err != nil {
		return -1, err
	}
	return 0, nil
}

// Expand replaces every %IP% in command with src's text form (knockd's
// parse_cmd). src is a parsed address, so the result can hold no shell
// syntax from the packet. It reports false when the result is longer than
// knockd's PATH_MAX buffer (then knockd runs neither command).
func Expand(command string, src netip.Addr) (string, bool) {
	out := strings.ReplaceAll(command, "%IP%", src.Unmap().String())
	return out, len(out) <= knockdconf.MaxCommand
}

//go:build unix

package fwknopgw

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
	"time"
)

// maxOutput bounds the command output OSExec keeps.
const maxOutput = 4096

// OSExec runs c.Argv with os/exec: argv[0] looked up in PATH, no shell,
// the daemon's environment, as c.User and c.Group when set (their
// primary group when only the user is given). Output beyond 4 KiB is
// dropped; the command is killed when ctx ends.
func OSExec(ctx context.Context, c Cmd) ([]byte, error) {
	if len(c.Argv) == 0 {
		return nil, errors.New("empty command")
	}
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	cmd.WaitDelay = time.Second
	if c.User != "" || c.Group != "" {
		cred, err := credential(c.User, c.Group)
		if err != nil {
			return nil, err
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var out limited
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// credential resolves CMD_EXEC_USER / CMD_EXEC_GROUP (names or numbers).
func credential(userName, groupName string) (*syscall.Credential, error) {
	cred := &syscall.Credential{Uid: uint32(syscall.Getuid()), Gid: uint32(syscall.Getgid())}
	if userName != "" {
		u, err := user.Lookup(userName)
		if err != nil {
			if u, err = user.LookupId(userName); err != nil {
				return nil, fmt.Errorf("CMD_EXEC_USER %q: %w", userName, err)
			}
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("CMD_EXEC_USER %q: non-numeric ids %s/%s", userName, u.Uid, u.Gid)
		}
		cred.Uid, cred.Gid = uint32(uid), uint32(gid)
		cred.NoSetGroups = true
	}
	if groupName != "" {
		g, err := user.LookupGroup(groupName)
		if err != nil {
			if g, err = user.LookupGroupId(groupName); err != nil {
				return nil, fmt.Errorf("CMD_EXEC_GROUP %q: %w", groupName, err)
			}
		}
		gid, err := strconv.ParseUint(g.Gid, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("CMD_EXEC_GROUP %q: non-numeric id %s", groupName, g.Gid)
		}
		cred.Gid = uint32(gid)
		cred.NoSetGroups = true
	}
	return cred, nil
}

// limited keeps the first maxOutput bytes written to it.
type limited struct{ buf bytes.Buffer }

func (l *limited) Write(p []byte) (int, error) {
	if room := maxOutput - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (l *limited) Bytes() []byte { return l.buf.Bytes() }

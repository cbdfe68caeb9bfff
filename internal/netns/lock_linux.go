//go:build linux

package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// LockDir holds one lock file per bench index. It is on /run (a tmpfs,
// cleared at boot, like /run/netns). The files are never removed: unlinking a
// lock file while another process waits on it would let two holders coexist.
const LockDir = "/run/sesame-netns"

// lockIndex takes the exclusive, non-blocking flock(2) of index idx in dir.
// The lock lives as long as the returned file stays open, and the kernel
// drops it when the process dies. flock locks belong to the open file
// description, so two benches of one process exclude each other too.
func lockIndex(dir string, idx int) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("netns: lock dir: %w", err)
	}
	// os.OpenFile sets O_CLOEXEC: children started later never inherit the lock.
	f, err := os.OpenFile(filepath.Join(dir, "index-"+strconv.Itoa(idx)+".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("netns: lock index %d: %w", idx, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %d", ErrIndexBusy, idx)
		}
		return nil, fmt.Errorf("netns: lock index %d: %w", idx, err)
	}
	// For humans looking at a stuck index; nothing reads it back.
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package cadir

import (
	"fmt"
	"os"
	"syscall"
)

// lock takes an exclusive flock on f, waiting for another `sesame ca`
// working on the same directory.
func lock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		return nil
	}
}

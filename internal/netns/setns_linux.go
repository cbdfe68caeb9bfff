//go:build linux

package netns

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// inNS runs fn on a new OS thread that has joined the network namespace
// mounted at path, and returns fn's error. See the package doc: the thread
// is locked and never unlocked, so the runtime discards it when the
// goroutine ends and no other goroutine ever runs in that namespace. fn must
// create its sockets on its own goroutine (no name resolution, no helper
// goroutines); sockets keep the namespace they were created in.
func inNS(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No runtime.UnlockOSThread: this thread dies with the goroutine.
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("netns: open %s: %w", path, err)
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			errc <- fmt.Errorf("netns: setns %s: %w", path, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

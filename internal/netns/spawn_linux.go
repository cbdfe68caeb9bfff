//go:build linux

package netns

import (
	"os/exec"
	"runtime"
	"syscall"
)

// spawner starts the bench's background processes from one OS thread that
// stays locked for the bench's life. Each process gets PR_SET_PDEATHSIG
// SIGKILL, so it dies with the test or demo process even when that process
// dies without running Close (a `go test -timeout` panic, SIGKILL). The
// kernel sends the signal when the forking *thread* exits, not the process;
// an ordinary Go thread may be retired early (whenever a goroutine that
// locked it returns, as inNS's do), which would kill the children too soon.
// The spawner's thread is locked, so no other goroutine runs on it and it
// exits only when stop is called, after Close has stopped the processes.
type spawner struct {
	reqs chan spawnReq
}

type spawnReq struct {
	cmd   *exec.Cmd
	reply chan error
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnReq)}
	go func() {
		runtime.LockOSThread()
		// No unlock: the thread exits with this goroutine, in stop.
		for r := range s.reqs {
			r.reply <- r.cmd.Start()
		}
	}()
	return s
}

// start starts cmd with SIGKILL as its parent-death signal.
func (s *spawner) start(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	r := spawnReq{cmd: cmd, reply: make(chan error, 1)}
	s.reqs <- r
	return <-r.reply
}

// stop ends the spawner; any process it started that is still alive gets SIGKILL.
func (s *spawner) stop() { close(s.reqs) }

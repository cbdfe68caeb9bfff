//go:build !linux

package netns

import "os/exec"

// spawner starts processes; off Linux there is no parent-death signal.
type spawner struct{}

func newSpawner() *spawner               { return &spawner{} }
func (*spawner) start(c *exec.Cmd) error { return c.Start() }
func (*spawner) stop()                   {}

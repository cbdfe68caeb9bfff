//go:build !linux

package netns

import (
	"errors"
	"os"
)

// LockDir holds one lock file per bench index (Linux only).
const LockDir = "/run/sesame-netns"

func lockIndex(string, int) (*os.File, error) { return nil, errors.ErrUnsupported }

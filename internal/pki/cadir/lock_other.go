//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package cadir

import "os"

// lock is a no-op where flock is missing: run one `sesame ca` at a time.
func lock(*os.File) error { return nil }

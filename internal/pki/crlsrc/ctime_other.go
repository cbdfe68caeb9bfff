//go:build !linux

package crlsrc

import "os"

// sysID is not needed for correctness elsewhere (size and mtime change
// too); the daemon runs on Linux.
func sysID(os.FileInfo) (ino, ctime int64) { return 0, 0 }

package crlsrc

import (
	"os"
	"syscall"
)

// sysID is the inode and change time of fi: a rename over the file or a
// rewrite within the same mtime tick still changes them.
func sysID(fi os.FileInfo) (ino, ctime int64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int64(st.Ino), st.Ctim.Nano()
	}
	return 0, 0
}

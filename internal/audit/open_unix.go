//go:build unix

package audit

import "syscall"

// openFlags refuse a symbolic link (a root daemon must not be tricked into
// appending to another file) and do not block on a FIFO (Open then refuses
// it as not regular).
const openFlags = syscall.O_NOFOLLOW | syscall.O_NONBLOCK

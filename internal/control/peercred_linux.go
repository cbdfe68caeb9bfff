package control

import (
	"net"

	"golang.org/x/sys/unix"
)

type cred struct {
	uid uint32
	pid int32
}

// peerCred returns the connecting process's credentials (SO_PEERCRED, as
// the kernel recorded them at connect(2): they cannot be forged).
func peerCred(c *net.UnixConn) (cred, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return cred{uid: ^uint32(0)}, err
	}
	var uc *unix.Ucred
	var serr error
	if err := rc.Control(func(fd uintptr) {
		uc, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return cred{uid: ^uint32(0)}, err
	}
	if serr != nil {
		return cred{uid: ^uint32(0)}, serr
	}
	return cred{uid: uc.Uid, pid: uc.Pid}, nil
}

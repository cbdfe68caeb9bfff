//go:build linux

package client

import (
	"context"
	"net/netip"

	"golang.org/x/sys/unix"
)

// sendSYN sends exactly one SYN, as knockd's client does: a non-blocking
// connect() and an immediate close().
func sendSYN(ctx context.Context, dst netip.AddrPort) error {
	family, sa := sockaddr(dst)
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return sendSYNPortable(ctx, dst)
	}
	defer unix.Close(fd)
	err = unix.Connect(fd, sa)
	if err != nil && err != unix.EINPROGRESS {
		return err
	}
	return nil
}

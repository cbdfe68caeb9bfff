//go:build linux

package client

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// WaitTCP returns nil once a TCP connection to dst succeeds, starting a
// fresh non-blocking connect every interval (a dropped SYN is not
// retransmitted for a second, so waiting on one attempt would add up to a
// second of latency), or an error when timeout passes first.
//
// On Linux it drives the sockets itself with poll(2) in one goroutine, so
// the moment the port opens is seen within about one interval; each attempt
// is abandoned after attemptLife.
func WaitTCP(ctx context.Context, dst netip.AddrPort, interval, timeout time.Duration) error {
	const attemptLife = 500 * time.Millisecond
	type attempt struct {
		fd    int
		start time.Time
	}
	var live []attempt
	defer func() {
		for _, a := range live {
			unix.Close(a.fd)
		}
	}()
	family, sa := sockaddr(dst)
	deadline := time.Now().Add(timeout)
	next := time.Now()
	pfds := make([]unix.PollFd, 0, 64)
	for {
		now := time.Now()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if now.After(deadline) {
			return fmt.Errorf("%v did not answer within %v", dst, timeout)
		}
		if !now.Before(next) {
			next = now.Add(interval)
			fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("socket: %w", err)
			}
			if err := unix.Connect(fd, sa); err == nil {
				unix.Close(fd)
				return nil
			} else if err != unix.EINPROGRESS {
				unix.Close(fd) // refused or unreachable: try again next tick
			} else {
				live = append(live, attempt{fd, now})
			}
		}
		// Retire attempts past their life.
		kept := live[:0]
		for _, a := range live {
			if now.Sub(a.start) > attemptLife {
				unix.Close(a.fd)
				continue
			}
			kept = append(kept, a)
		}
		live = kept
		pfds = pfds[:0]
		for _, a := range live {
			pfds = append(pfds, unix.PollFd{Fd: int32(a.fd), Events: unix.POLLOUT})
		}
		wait := max(time.Until(next), 0)
		ts := unix.NsecToTimespec(wait.Nanoseconds())
		n, err := unix.Ppoll(pfds, &ts, nil)
		if err != nil && err != unix.EINTR {
			return fmt.Errorf("ppoll: %w", err)
		}
		if n <= 0 {
			continue
		}
		for i, p := range pfds {
			if p.Revents == 0 {
				continue
			}
			soerr, err := unix.GetsockoptInt(int(p.Fd), unix.SOL_SOCKET, unix.SO_ERROR)
			if err == nil && soerr == 0 {
				return nil
			}
			unix.Close(live[i].fd)
			live[i].start = time.Time{} // retired on the next pass
			live[i].fd = -1
		}
		kept = live[:0]
		for _, a := range live {
			if a.fd >= 0 {
				kept = append(kept, a)
			}
		}
		live = kept
	}
}

func sockaddr(dst netip.AddrPort) (int, unix.Sockaddr) {
	if dst.Addr().Is4() {
		return unix.AF_INET, &unix.SockaddrInet4{Port: int(dst.Port()), Addr: dst.Addr().As4()}
	}
	return unix.AF_INET6, &unix.SockaddrInet6{Port: int(dst.Port()), Addr: dst.Addr().As16()}
}

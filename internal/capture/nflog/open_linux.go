package nflog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"unsafe"

	nflog "github.com/florianl/go-nflog/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Open binds an NFLOG group and starts receiving; packets are parsed in the
// receive loop and wait for ReadPacket in a bounded queue. ctx bounds the
// opening only (like net.ListenConfig.Listen): the Source lives until Close.
//
// It needs CAP_NET_ADMIN in the namespace. When the group is already bound
// by another socket it returns an error wrapping ErrGroupBusy.
func Open(ctx context.Context, cfg Config) (*Source, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := newSource(cfg)
	if cfg.QThresh > 1 {
		// A batching group (the bulk group): the batched loop of
		// batch_linux.go reads it at a fraction of go-nflog's cost.
		if err := openBatch(ctx, cfg, s); err != nil {
			return nil, err
		}
		return s, nil
	}
	nf, err := nflog.Open(&nflog.Config{
		Group:    cfg.Group,
		Copymode: nflog.CopyPacket,
		Bufsize:  cfg.CopyRange, // the copy range, not a buffer size
		QThresh:  cfg.QThresh,
		Timeout:  cfg.timeoutCentis(),
		NetNS:    cfg.NetNS,
		Logger:   nflogLogger{s.log},
	})
	if err != nil {
		return nil, fmt.Errorf("nflog: open netfilter netlink socket: %w", err)
	}
	rcvbuf, err := setReadBuffer(nf.Con, cfg.ReadBuffer)
	if err != nil {
		nf.Close()
		return nil, fmt.Errorf("nflog: set receive buffer to %d bytes: %w", cfg.ReadBuffer, err)
	}
	if err := ctx.Err(); err != nil {
		nf.Close()
		return nil, err
	}
	if rc, err := nf.Con.SyscallConn(); err == nil {
		s.sockDrops = func() (uint64, error) { return socketDrops(rc) }
		if _, err := s.sockDrops(); err != nil {
			s.log.Debug("kernel drop count unavailable; counting ENOBUFS instead", "err", err)
			s.sockDrops = nil
		}
	}

	loopCtx, cancel := context.WithCancel(context.Background())
	if err := nf.RegisterWithErrorFunc(loopCtx, s.hook, s.onError); err != nil {
		cancel()
		nf.Close()
		return nil, bindError(cfg.Group, err)
	}
	s.stop = func() error {
		cancel() // go-nflog's watcher moves the read deadline; nf.Close waits for it
		if err := nf.Close(); err != nil {
			return fmt.Errorf("nflog: close group %d: %w", cfg.Group, err)
		}
		return nil
	}
	s.log.Info("nflog source open", "read_buffer", rcvbuf, "qthresh", cfg.QThresh,
		"queue", cfg.QueueLen, "copy_range", cfg.CopyRange)
	return s, nil
}

// onError is go-nflog's ErrorFunc, called for every failed receive. It
// returns 0 to keep receiving, non-zero to end the loop.
func (s *Source) onError(err error) int {
	select {
	case <-s.done:
		return 1 // Close: the socket is gone or going
	default:
	}
	switch {
	case errors.Is(err, unix.ENOBUFS):
		s.overflow()
		return 0
	case errors.Is(err, unix.EINTR), errors.Is(err, unix.EAGAIN):
		return 0
	}
	var op *netlink.OpError
	if errors.As(err, &op) && op.Timeout() {
		return 0 // only after Close cancelled the loop, which then ends itself
	}
	s.fail(err)
	return 1
}

// setReadBuffer sizes the socket receive buffer with SO_RCVBUFFORCE (not
// capped by net.core.rmem_max; needs CAP_NET_ADMIN), falling back to
// SO_RCVBUF, and returns the size the kernel reports (twice the request:
// the kernel counts its bookkeeping too).
func setReadBuffer(c *netlink.Conn, n int) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var forceErr error
	if err := rc.Control(func(fd uintptr) {
		forceErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n)
	}); err != nil {
		return 0, err
	}
	if forceErr != nil {
		if err := c.SetReadBuffer(n); err != nil {
			return 0, err
		}
	}
	var got int
	var getErr error
	if err := rc.Control(func(fd uintptr) {
		got, getErr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	}); err != nil {
		return 0, err
	}
	return got, getErr
}

// bindError explains a failed registration. go-nflog formats the netlink
// error with %v, so the errno survives only as text: an EPERM on the group
// bind (after the earlier family commands passed the capability check)
// means another socket holds the group (nfulnl_recv_config).
func bindError(group uint16, err error) error {
	msg := err.Error()
	if strings.Contains(msg, "could not bind to requested group") &&
		strings.Contains(msg, unix.EPERM.Error()) {
		return fmt.Errorf("%w: group %d is held by another process in this network namespace "+
			"(another sesame, ulogd2, or a stale daemon): %v", ErrGroupBusy, group, err)
	}
	if strings.Contains(msg, unix.EPERM.Error()) {
		return fmt.Errorf("nflog: bind group %d: %v (binding an NFLOG group needs CAP_NET_ADMIN)", group, err)
	}
	return fmt.Errorf("nflog: bind group %d: %v", group, err)
}

// socketDrops returns how many messages the kernel dropped on the socket
// because its receive buffer was full: SK_MEMINFO_DROPS of SO_MEMINFO
// (sk_drops, which netlink_overrun increments per lost message).
func socketDrops(rc syscall.RawConn) (uint64, error) {
	var mem [unix.SK_MEMINFO_DROPS + 1]uint32
	n := uint32(unsafe.Sizeof(mem))
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&mem[0])), uintptr(unsafe.Pointer(&n)), 0)
	}); err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, fmt.Errorf("getsockopt SO_MEMINFO: %w", errno)
	}
	if n < uint32(unsafe.Sizeof(mem)) {
		return 0, fmt.Errorf("getsockopt SO_MEMINFO: %d bytes", n)
	}
	return uint64(mem[unix.SK_MEMINFO_DROPS]), nil
}

package netns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// The methods in this file create sockets inside a namespace of the bench
// with the setns technique described in the package doc; no helper binary
// is run. Addresses are literal (no name resolution). A zero from lets the
// kernel pick the source address.

// DialTCP connects from namespace ns to to, with source address from (zero:
// the kernel's choice). ctx bounds the connect; the connection is the
// caller's to close.
func (b *Bench) DialTCP(ctx context.Context, ns string, from netip.Addr, to netip.AddrPort) (*net.TCPConn, error) {
	var c net.Conn
	err := b.inNS(ns, func() (err error) {
		d := net.Dialer{}
		if from.IsValid() {
			d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(from, 0))
		}
		c, err = d.DialContext(ctx, "tcp", to.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netns: dial tcp %s from %v in %s: %w", to, from, ns, err)
	}
	return c.(*net.TCPConn), nil
}

// Reachable reports whether a TCP connection from namespace ns to addr
// completes within timeout (and before ctx ends). The connection is closed
// at once. Under a default-drop policy a closed port gives no answer, so
// false then costs the whole timeout.
func (b *Bench) Reachable(ctx context.Context, ns string, addr netip.AddrPort, timeout time.Duration) bool {
	return b.ReachableFrom(ctx, ns, netip.Addr{}, addr, timeout)
}

// ReachableFrom is Reachable with source address from.
func (b *Bench) ReachableFrom(ctx context.Context, ns string, from netip.Addr, addr netip.AddrPort, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := b.DialTCP(ctx, ns, from, addr)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// waitAttempt bounds one connect of WaitReachable, so that a SYN dropped
// before a grant does not hold the poll for the kernel's 1 s retransmit.
const waitAttempt = 200 * time.Millisecond

// WaitReachable polls from namespace ns until a TCP connection to addr
// completes, each attempt bounded to 200 ms, for at most timeout. It
// returns nil on the first success, or an error wrapping
// context.DeadlineExceeded (or ctx's error) and the last dial error.
func (b *Bench) WaitReachable(ctx context.Context, ns string, addr netip.AddrPort, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		actx, acancel := context.WithTimeout(ctx, waitAttempt)
		c, err := b.DialTCP(actx, ns, netip.Addr{}, addr)
		acancel()
		if err == nil {
			c.Close()
			return nil
		}
		if errors.Is(err, ErrUnknownNS) || errors.Is(err, ErrClosed) {
			return err
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("netns: %s not reachable from %s: %w (last: %w)", addr, ns, ctx.Err(), last)
		case <-time.After(5 * time.Millisecond): // a refused connect returns at once
		}
	}
}

// ListenTCP listens on addr inside namespace ns (port 0: any free port, see
// the listener's Addr). The listener is closed by Close at the latest.
func (b *Bench) ListenTCP(ns string, addr netip.AddrPort) (*net.TCPListener, error) {
	var l *net.TCPListener
	err := b.inNS(ns, func() (err error) {
		l, err = net.ListenTCP("tcp", net.TCPAddrFromAddrPort(addr))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netns: listen tcp %s in %s: %w", addr, ns, err)
	}
	return l, b.track(l)
}

// ServeTCP is a tiny TCP service inside namespace ns: it listens on addr
// and answers every connection with banner, then closes it. It stops when
// the listener is closed (by the caller or by Close).
func (b *Bench) ServeTCP(ns string, addr netip.AddrPort, banner []byte) (*net.TCPListener, error) {
	l, err := b.ListenTCP(ns, addr)
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := l.AcceptTCP()
			if err != nil {
				return
			}
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.Write(banner)
			c.Close()
		}
	}()
	return l, nil
}

// ListenUDP opens a UDP socket bound to addr inside namespace ns. It is
// closed by Close at the latest.
func (b *Bench) ListenUDP(ns string, addr netip.AddrPort) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := b.inNS(ns, func() (err error) {
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netns: listen udp %s in %s: %w", addr, ns, err)
	}
	return c, b.track(c)
}

// DialUDP opens a UDP socket inside namespace ns connected to to, with
// source address from (zero: the kernel's choice). The caller closes it.
func (b *Bench) DialUDP(ns string, from netip.Addr, to netip.AddrPort) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := b.inNS(ns, func() (err error) {
		var laddr *net.UDPAddr
		if from.IsValid() {
			laddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(from, 0))
		}
		c, err = net.DialUDP("udp", laddr, net.UDPAddrFromAddrPort(to))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netns: dial udp %s from %v in %s: %w", to, from, ns, err)
	}
	return c, nil
}

// SendUDP sends one datagram with payload from namespace ns to to, with
// source address from (zero: the kernel's choice).
func (b *Bench) SendUDP(ns string, from netip.Addr, to netip.AddrPort, payload []byte) error {
	c, err := b.DialUDP(ns, from, to)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write(payload); err != nil {
		return fmt.Errorf("netns: send udp to %s from %v in %s: %w", to, from, ns, err)
	}
	return nil
}

// inNS runs fn in namespace ns of the bench (see setns_linux.go).
func (b *Bench) inNS(ns string, fn func() error) error {
	path, err := b.nsPath(ns)
	if err != nil {
		return err
	}
	if b.isClosed() {
		return ErrClosed
	}
	return inNS(path, fn)
}

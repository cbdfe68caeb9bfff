package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// HalfCloser is a connection whose sending side can be closed alone
// (*net.TCPConn).
type HalfCloser interface {
	io.ReadWriteCloser
	CloseWrite() error
}

// Splice carries a session between in/out (an ssh ProxyCommand's stdin and
// stdout) and conn until the remote side closes. End of input half-closes
// conn (the remote sees EOF, as with a direct connection) and Splice keeps
// copying the remote's output until it closes too. It closes conn before
// returning. A read from in still blocked then is abandoned (a process
// exiting after Splice does not care).
func Splice(conn HalfCloser, in io.Reader, out io.Writer) error {
	up := make(chan error, 1)
	go func() {
		_, err := io.Copy(conn, in)
		if err == nil {
			err = conn.CloseWrite()
		} else {
			conn.Close() // cannot send any more: end the session
		}
		up <- err
	}()
	_, err := io.Copy(out, conn)
	if errors.Is(err, net.ErrClosed) {
		// Only the sending side closes conn before this point: its error
		// is the one that ended the session.
		if uerr := <-up; uerr != nil {
			return fmt.Errorf("proxy: sending: %w", uerr)
		}
		return nil
	}
	conn.Close()
	if err != nil {
		return fmt.Errorf("proxy: receiving: %w", err)
	}
	return nil
}

// DialTCP connects to dst within timeout.
func DialTCP(ctx context.Context, dst netip.AddrPort, timeout time.Duration) (*net.TCPConn, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp", dst.String())
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// DialUntil connects to dst, starting a fresh attempt every interval (a
// dropped SYN is retransmitted only after a second, so one attempt would
// add up to a second once the port opens) until one succeeds or ctx is
// done. It returns the first connection; the others are closed. It is the
// ProxyCommand's counterpart of WaitTCP: the connection that proves the
// port open is the one the session uses.
func DialUntil(ctx context.Context, dst netip.AddrPort, interval time.Duration) (*net.TCPConn, error) {
	const attemptLife = time.Second
	ctx, cancel := context.WithCancel(ctx)
	won := make(chan *net.TCPConn, 1)
	var wg sync.WaitGroup
	try := func() {
		defer wg.Done()
		actx, acancel := context.WithTimeout(ctx, attemptLife)
		defer acancel()
		var d net.Dialer
		c, err := d.DialContext(actx, "tcp", dst.String())
		if err != nil {
			return
		}
		select {
		case won <- c.(*net.TCPConn):
		default:
			c.Close()
		}
	}
	finish := func() {
		cancel()
		wg.Wait()
		select { // an attempt that won after the first
		case c := <-won:
			c.Close()
		default:
		}
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	wg.Add(1)
	go try()
	for {
		select {
		case c := <-won:
			finish()
			return c, nil
		case <-ctx.Done():
			finish()
			return nil, fmt.Errorf("connecting to %v: %w", dst, ctx.Err())
		case <-tick.C:
			wg.Add(1)
			go try()
		}
	}
}

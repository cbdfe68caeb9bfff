package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
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

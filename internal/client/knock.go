// Package client sends knocks and SPA packets and waits for a service to
// answer. It builds on every OS; only the single-SYN TCP knock is
// Linux-specific (knock_linux.go), with a portable fallback.
package client

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/sesame-gw/sesame/internal/service"
)

// Resolve looks host up once and picks an address of the wanted family
// ("ip", "ip4" or "ip6"). knockd's client resolves again for every port,
// which spreads one knock over several servers behind round-robin DNS.
func Resolve(ctx context.Context, host, network string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		a = a.Unmap()
		if (network == "ip4" && !a.Is4()) || (network == "ip6" && !a.Is6()) {
			return netip.Addr{}, fmt.Errorf("%s is not an %s address", host, network)
		}
		return a, nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, network, host)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("resolving %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return netip.Addr{}, fmt.Errorf("resolving %s: no %s address", host, network)
	}
	return addrs[0].Unmap(), nil
}

// Knock sends one packet per step to addr, delay apart: a single TCP SYN
// (connect, then close at once) for TCP steps, a one-byte datagram for UDP.
// Nothing is expected back.
func Knock(ctx context.Context, addr netip.Addr, steps []service.Service, delay time.Duration) error {
	for i, s := range steps {
		if i > 0 && delay > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(delay):
			}
		}
		dst := netip.AddrPortFrom(addr, s.Port)
		var err error
		switch s.Proto {
		case service.TCP:
			err = sendSYN(ctx, dst)
		case service.UDP:
			err = sendUDP(dst, []byte{0})
		default:
			err = fmt.Errorf("cannot knock on %v", s)
		}
		if err != nil {
			return fmt.Errorf("knock %v: %w", s, err)
		}
	}
	return nil
}

func sendUDP(dst netip.AddrPort, payload []byte) error {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write(payload)
	return err
}

// SendUDP sends one datagram (an SPA packet) to dst.
func SendUDP(dst netip.AddrPort, payload []byte) error { return sendUDP(dst, payload) }

// sendSYNPortable starts a connection and abandons it after a moment: the
// SYN has left, and closing a socket in SYN-SENT sends nothing more.
func sendSYNPortable(ctx context.Context, dst netip.AddrPort) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", dst.String())
	if err == nil {
		c.Close() // the port was open anyway
	}
	return nil
}

// waitTCPPortable is WaitTCP with the net package: a fresh connect every
// interval in its own goroutine.
func waitTCPPortable(ctx context.Context, dst netip.AddrPort, interval, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ok := make(chan struct{}, 1)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	try := func() {
		actx, acancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer acancel()
		var d net.Dialer
		c, err := d.DialContext(actx, "tcp", dst.String())
		if err == nil {
			c.Close()
			select {
			case ok <- struct{}{}:
			default:
			}
		}
	}
	go try()
	for {
		select {
		case <-ok:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("%v did not answer within %v", dst, timeout)
		case <-tick.C:
			go try()
		}
	}
}

// ParseWait reads the --wait argument "tcp/22" or "tcp/22=10s".
func ParseWait(s string) (service.Service, time.Duration, error) {
	timeout := 10 * time.Second
	spec, t, hasT := cutLast(s, '=')
	if hasT {
		d, err := time.ParseDuration(t)
		if err != nil || d <= 0 {
			return service.Service{}, 0, fmt.Errorf("--wait %q: bad timeout %q", s, t)
		}
		timeout = d
	}
	svc, err := service.Parse(spec, service.TCP)
	if err != nil {
		return service.Service{}, 0, fmt.Errorf("--wait %q: %w", s, err)
	}
	if svc.Proto != service.TCP {
		return service.Service{}, 0, fmt.Errorf("--wait %q: only tcp services can be waited for", s)
	}
	return svc, timeout, nil
}

func cutLast(s string, c byte) (string, string, bool) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == c {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// FormatPort is a helper for messages: "host:port".
func FormatPort(a netip.Addr, p uint16) string {
	return net.JoinHostPort(a.String(), strconv.Itoa(int(p)))
}

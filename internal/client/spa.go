package client

import (
	"context"
	"crypto/ecdh"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/sesame-gw/sesame/internal/policy"
	"github.com/sesame-gw/sesame/internal/spa"
)

// SPA sends native SPA requests (docs/protocol.md) to one gateway. The
// gateway never answers: a client learns that a request worked by trying
// the service (OpenAndWait). Every packet is sealed afresh (a new HPKE
// ephemeral key and timestamp), so sending again after a loss is never
// refused as a replay. An SPA is safe for concurrent use if Send is.
type SPA struct {
	// Identity signs the requests: LoadIdentity, a raw key
	// (spa.KeyIdentity) or a certificate (spa.CertIdentity).
	Identity spa.Identity
	// Gateway is the gateway's public key: packets for another gateway are
	// useless there.
	Gateway *ecdh.PublicKey
	// Dst is the gateway's address and SPA port (UDP).
	Dst netip.AddrPort
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Send sends one datagram; nil means a UDP socket (SendUDP).
	Send func(dst netip.AddrPort, payload []byte) error
}

// Packet seals req into a new datagram.
func (s *SPA) Packet(req policy.Request) ([]byte, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	return spa.Seal(s.Identity, s.Gateway, req, now())
}

// Open seals req and sends it once.
func (s *SPA) Open(req policy.Request) error {
	pkt, err := s.Packet(req)
	if err != nil {
		return err
	}
	send := SendUDP
	if s.Send != nil {
		send = s.Send
	}
	if err := send(s.Dst, pkt); err != nil {
		return fmt.Errorf("sending SPA packet to %v: %w", s.Dst, err)
	}
	return nil
}

// WaitOptions say how OpenAndWait waits.
type WaitOptions struct {
	// Interval is how often a fresh TCP connection attempt starts (see
	// WaitTCP); 0 means 5ms.
	Interval time.Duration
	// Resend is how long to wait for the service before sending a fresh
	// packet, in case the last one was lost; 0 means 1s.
	Resend time.Duration
	// Timeout bounds the whole wait; 0 means 10s.
	Timeout time.Duration
	// Wait waits for a TCP service; nil means WaitTCP. Tests inject it.
	Wait func(ctx context.Context, dst netip.AddrPort, interval, timeout time.Duration) error
}

// ErrNoAnswer is wrapped by OpenAndWait when the service never answered:
// the packets were lost, refused by the gateway (its log says why), or the
// service is down.
var ErrNoAnswer = errors.New("service did not answer")

// OpenAndWait sends req and waits until a TCP connection to svc succeeds.
// If svc has not answered after Resend, it sends a fresh packet and keeps
// waiting, until Timeout. It returns the number of packets sent.
func (s *SPA) OpenAndWait(ctx context.Context, req policy.Request, svc netip.AddrPort, o WaitOptions) (int, error) {
	if o.Interval <= 0 {
		o.Interval = 5 * time.Millisecond
	}
	if o.Resend <= 0 {
		o.Resend = time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Wait == nil {
		o.Wait = WaitTCP
	}
	deadline := time.Now().Add(o.Timeout)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	sent := 0
	for {
		if err := s.Open(req); err != nil {
			return sent, err
		}
		sent++
		// Wait's own timeout is longer than wctx's, so that a timeout shows
		// as wctx being done and any other error is a real failure.
		wctx, wcancel := context.WithTimeout(ctx, o.Resend)
		err := o.Wait(wctx, svc, o.Interval, o.Resend+time.Second)
		timedOut := wctx.Err() != nil
		wcancel()
		switch {
		case err == nil:
			return sent, nil
		case errors.Is(ctx.Err(), context.Canceled):
			return sent, ctx.Err()
		case !timedOut:
			return sent, err
		case !time.Now().Before(deadline):
			return sent, fmt.Errorf("%w: %v after %v and %d packets", ErrNoAnswer, svc, o.Timeout, sent)
		}
	}
}

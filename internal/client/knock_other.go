//go:build !linux

package client

import (
	"context"
	"net/netip"
	"time"
)

func sendSYN(ctx context.Context, dst netip.AddrPort) error { return sendSYNPortable(ctx, dst) }

// WaitTCP: see wait_linux.go.
func WaitTCP(ctx context.Context, dst netip.AddrPort, interval, timeout time.Duration) error {
	return waitTCPPortable(ctx, dst, interval, timeout)
}

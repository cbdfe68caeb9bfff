//go:build !linux

package client

import (
	"context"
	"net/netip"
)

func sendSYN(ctx context.Context, dst netip.AddrPort) error { return sendSYNPortable(ctx, dst) }

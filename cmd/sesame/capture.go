package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/sesame-gw/sesame/internal/capture"
	"github.com/sesame-gw/sesame/internal/capture/nflog"
	"github.com/sesame-gw/sesame/internal/config"
	"github.com/sesame-gw/sesame/internal/firewall"
)

// openCapture opens the NFLOG groups of the daemon's table: the
// one-packet-at-a-time group, and when configured the bulk group that takes
// a flood's excess in batches (docs/firewall.md), merged into one source.
func openCapture(ctx context.Context, cfg *config.Config, log *slog.Logger) (capture.Source, error) {
	fast, err := nflog.Open(ctx, nflog.Config{Group: uint16(cfg.Gateway.NFLogGroup), Logger: log})
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	if cfg.Gateway.NFLogBulkGroup <= 0 {
		return fast, nil
	}
	bulk, err := nflog.Open(ctx, nflog.Config{
		Group:    uint16(cfg.Gateway.NFLogBulkGroup),
		QThresh:  firewall.BulkQueueThreshold,
		Timeout:  10 * time.Millisecond,
		QueueLen: 4096,
		Logger:   log,
	})
	if err != nil {
		fast.Close()
		return nil, fmt.Errorf("capture (bulk group): %w", err)
	}
	return capture.Merge(fast, bulk), nil
}

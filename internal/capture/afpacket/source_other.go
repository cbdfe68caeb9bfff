//go:build !linux

package afpacket

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/sesame-gw/sesame/internal/capture"
)

// Config configures Open (see the Linux build).
type Config struct {
	Interfaces []string
	Filter     Filter
	ReadBuffer int
	Logger     *slog.Logger
	Now        func() time.Time
}

// Source is unavailable outside Linux.
type Source struct{}

// Open fails with errors.ErrUnsupported outside Linux.
func Open(Config) (*Source, error) { return nil, errors.ErrUnsupported }

// SetFilter fails with errors.ErrUnsupported.
func (*Source) SetFilter(Filter) error { return errors.ErrUnsupported }

// ReadPacket fails with errors.ErrUnsupported.
func (*Source) ReadPacket(context.Context) (capture.Packet, error) {
	return capture.Packet{}, errors.ErrUnsupported
}

// Stats returns zero counters.
func (*Source) Stats() capture.Stats { return capture.Stats{} }

// Close does nothing.
func (*Source) Close() error { return nil }

//go:build !linux

package nflog

import (
	"context"
	"errors"
)

// Open fails: NFLOG exists only on Linux.
func Open(ctx context.Context, cfg Config) (*Source, error) {
	return nil, errors.New("nflog: NFLOG capture needs Linux")
}

func (s *Source) onError(err error) int { return 1 }

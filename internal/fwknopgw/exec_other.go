//go:build !unix

package fwknopgw

import (
	"context"
	"errors"
)

// OSExec is not available on this system: fwknop commands need a Unix
// gateway.
func OSExec(context.Context, Cmd) ([]byte, error) {
	return nil, errors.ErrUnsupported
}

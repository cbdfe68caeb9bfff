package spagw

import (
	"github.com/sesame-gw/sesame/internal/firewall"
	"github.com/sesame-gw/sesame/internal/gateway"
	"github.com/sesame-gw/sesame/internal/spa"
)

var _ gateway.Shaper = (*Handler)(nil)

// Shape implements gateway.Shaper: a native SPA datagram is spa.MinSize to
// spa.MaxSize bytes and starts with spa.Magic (docs/protocol.md §4). The
// kernel drops anything else on the SPA port before it is logged.
func (h *Handler) Shape() firewall.DatagramShape { return DatagramShape() }

// DatagramShape is what every native SPA datagram looks like (length range
// and magic byte), for the in-kernel pre-filter and `serve --check`.
func DatagramShape() firewall.DatagramShape {
	return firewall.DatagramShape{MinLen: spa.MinSize, MaxLen: spa.MaxSize, FirstBytes: []byte{spa.Magic}}
}

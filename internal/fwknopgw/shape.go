package fwknopgw

import (
	"github.com/sesame-gw/sesame/internal/firewall"
	"github.com/sesame-gw/sesame/internal/fwknop"
	"github.com/sesame-gw/sesame/internal/gateway"
)

var _ gateway.Shaper = (*Handler)(nil)

// Shape implements gateway.Shaper with the outline of
// fwknop.LooksLikeFwknop (what Match accepts): fwknop.MinPacketLen to
// fwknop.MaxPacketLen bytes starting with '8', '9', '+' or '/'. The kernel
// drops anything else on the SPA port before it is logged.
func (h *Handler) Shape() firewall.DatagramShape {
	return firewall.DatagramShape{MinLen: fwknop.MinPacketLen, MaxLen: fwknop.MaxPacketLen, FirstBytes: []byte("89+/")}
}

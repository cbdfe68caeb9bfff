package gateway

import (
	"maps"
	"slices"

	"github.com/sesame-gw/sesame/internal/firewall"
)

// Shaper is implemented by datagram handlers that can say, without keys,
// what their datagrams look like (payload length and first byte). When
// every handler does, the engine installs the union of the shapes as the
// in-kernel pre-filter of the SPA ports (firewall.Layout.Datagrams):
// datagrams no handler could match are dropped before NFLOG, so a flood of
// random UDP to the SPA port costs the daemon nothing. A handler whose
// Match may accept a payload outside its Shape would lose those datagrams.
type Shaper interface {
	Shape() firewall.DatagramShape
}

// withDatagramFilter returns l with Datagrams set from cfg's SPA ports and
// handlers: no filter when there is no UDP SPA port, no handler, or a
// handler that does not implement Shaper (its format is unknown, so
// nothing may be dropped for it). A filter already set in l is kept.
// kernelLayout is l as the engine installs it: with the datagram
// pre-filter (withDatagramFilter) and, unless set, the watch timeout: the
// longest knock sequence timeout, so that the kernel keeps marking a
// knocking source (firewall.Layout.WatchTimeout) for as long as its
// attempt may last after its latest knock.
func kernelLayout(l firewall.Layout, cfg Config) firewall.Layout {
	l = withDatagramFilter(l, cfg)
	if l.WatchTimeout == 0 {
		for _, d := range cfg.Doors {
			l.WatchTimeout = max(l.WatchTimeout, d.Timeout)
		}
	}
	return l
}

func withDatagramFilter(l firewall.Layout, cfg Config) firewall.Layout {
	if l.Datagrams.Active() || len(cfg.Handlers) == 0 {
		return l
	}
	var f firewall.DatagramFilter
	for _, h := range cfg.Handlers {
		s, ok := h.(Shaper)
		if !ok {
			return l
		}
		f.Shapes = append(f.Shapes, s.Shape())
	}
	if f.Ports = newDatagramConfig(cfg).sortedPorts(); len(f.Ports) == 0 {
		return l
	}
	l.Datagrams = f
	return l
}

// sortedPorts returns the UDP SPA ports in increasing order.
func (d *datagramConfig) sortedPorts() []uint16 {
	return slices.Sorted(maps.Keys(d.ports))
}

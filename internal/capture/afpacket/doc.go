// Package afpacket is a capture.Source over an AF_PACKET socket with a
// classic BPF filter: it watches packets to this host the way knockd's
// libpcap does, without owning any firewall rule, so it serves `sesame serve
// --knockd-conf` where the user's own firewall decides what is dropped.
//
// Unlike knockd's capture (one interface, Ethernet framing only for IPv6,
// 802.1Q frames dropped, knockd issues #21, #83, #89), one socket watches
// any number of interfaces (or all but loopback) in cooked mode
// (SOCK_DGRAM), so every link type delivers IPv4 and IPv6 alike; a frame
// still carrying an in-band 802.1Q/802.1ad tag is unwrapped; packets sent
// by this host are ignored; and a frame seen twice (on a bridge port and on
// the bridge, on a VLAN's parent and on the VLAN device) is delivered once.
// Interfaces are matched by name on every packet, so an interface that goes
// down and comes back, or is created after start, is watched without a
// restart.
//
// The package builds on every OS; Open fails with errors.ErrUnsupported
// outside Linux.
package afpacket

package afpacket

import "time"

// dedupWindow is how long an identical packet counts as the same frame
// seen on a second interface. A real retransmission differs (IPv4 ID) or
// comes much later (TCP's minimum RTO is 200 ms).
const dedupWindow = 20 * time.Millisecond

// dedup remembers the last few packets to drop a frame delivered twice by
// the kernel (bridge port and bridge, VLAN parent and VLAN device).
type dedup struct {
	ring [16]struct {
		sum uint64
		at  time.Time
	}
	next int
}

// seen reports whether data is a copy of a packet seen within dedupWindow
// before at, and records it.
func (d *dedup) seen(data []byte, at time.Time) bool {
	sum := uint64(14695981039346656037) // FNV-1a, inline: no allocation per packet
	for _, b := range data[:min(len(data), 256)] {
		sum = (sum ^ uint64(b)) * 1099511628211
	}
	sum ^= uint64(len(data))
	for _, e := range d.ring {
		if e.sum == sum && !e.at.IsZero() && at.Sub(e.at) < dedupWindow && at.Sub(e.at) >= 0 {
			return true
		}
	}
	d.ring[d.next].sum, d.ring[d.next].at = sum, at
	d.next = (d.next + 1) % len(d.ring)
	return false
}

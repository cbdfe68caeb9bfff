package knock

import (
	"time"

	"github.com/sesame-gw/sesame/internal/service"
)

// Rotator derives a rotating door's sequence from the time. internal/totp
// implements it with RFC 6238 arithmetic. Implementations must be
// deterministic and pure (the machine calls them on its own goroutine, on
// the packet path: Counter on every packet, Sequence once per period), and
// Sequence must return a valid, scan-safe sequence of 1 to MaxSequence steps
// or nil when the period has none.
type Rotator interface {
	// Counter is the period number at t (RFC 6238's T).
	Counter(t time.Time) uint64
	// Sequence is the door's sequence in period c. The machine keeps the
	// slice: it must not be modified afterwards.
	Sequence(c uint64) []service.Service
}

// rotation is the machine's state for one rotating door.
type rotation struct {
	door    int
	counter uint64          // current period
	valid   bool            // counter has been computed once
	used    map[uint64]bool // periods whose sequence opened the door
}

// rotate brings the rotating doors' tracks to the period of now: the
// current and the previous period's sequences are accepted, unless used.
// Attempts on a period that fell out are reset on their next packet.
func (m *Machine) rotate(now time.Time) {
	for i := range m.rot {
		r := &m.rot[i]
		d := &m.doors[r.door]
		c := d.Rotator.Counter(now)
		if r.valid && c == r.counter {
			continue
		}
		r.counter, r.valid = c, true
		for k := range r.used {
			if k+1 < c {
				delete(r.used, k)
			}
		}
		want := []uint64{c}
		if c > 0 {
			want = append(want, c-1)
		}
		have := map[uint64]bool{}
		for _, tr := range m.tracks {
			if tr.door != r.door || tr.dead != "" {
				continue
			}
			if tr.counter != c && (c == 0 || tr.counter != c-1) {
				tr.dead = ReasonRotated
				continue
			}
			have[tr.counter] = true
		}
		for _, k := range want {
			if have[k] || r.used[k] {
				continue
			}
			if seq := d.Rotator.Sequence(k); len(seq) > 0 {
				m.tracks = append(m.tracks, &track{door: r.door, seq: seq, counter: k})
			}
		}
		m.dirty = true
	}
	if m.dirty {
		m.rebuild()
	}
}

// completed retires a track whose sequence may open only once: a rotating
// door's period. Fixed sequences stay (knockd's One_Time_Sequences are
// replaced by the caller with SetSequence).
func (m *Machine) completed(tr *track) {
	d := &m.doors[tr.door]
	if d.Rotator == nil {
		return
	}
	for i := range m.rot {
		if r := &m.rot[i]; r.door == tr.door {
			if r.used == nil {
				r.used = map[uint64]bool{}
			}
			r.used[tr.counter] = true
		}
	}
	tr.dead = ReasonUsed
	m.dirty = true
}

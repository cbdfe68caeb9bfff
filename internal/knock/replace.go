package knock

import (
	"reflect"
	"slices"
)

// Replace returns a new machine for doors (and maxSources) that carries over
// the attempts in progress of every door whose definition is unchanged
// (same name, sequence, timeout, flags and sources). Attempts of removed
// or changed doors are dropped. m is not modified. Used by a config reload:
// a client half-way through a sequence of an untouched door is not reset.
func (m *Machine) Replace(doors []Door, maxSources int) *Machine {
	opts := m.opts
	opts.MaxSources = maxSources
	n := NewWithOptions(doors, opts)
	remap := make(map[int]int)
	for i := range m.doors {
		for j := range n.doors {
			if reflect.DeepEqual(m.doors[i], n.doors[j]) {
				remap[i] = j
				break
			}
		}
	}
	// An attempt follows its track to the new machine when the door is
	// unchanged and still accepts the same sequence.
	trackFor := func(old *track) *track {
		j, ok := remap[old.door]
		if !ok || old.dead != "" {
			return nil
		}
		for _, tr := range n.tracks {
			if tr.door == j && tr.counter == old.counter && slices.Equal(tr.seq, old.seq) {
				return tr
			}
		}
		return nil
	}
	for _, l := range []*lru{&m.fresh, &m.advanced} {
		for s := l.head; s != nil; s = s.next {
			var kept []attempt
			for _, a := range s.attempts {
				if tr := trackFor(a.tr); tr != nil {
					a.tr = tr
					kept = append(kept, a)
				}
			}
			if len(kept) == 0 || len(n.sources) >= n.max {
				continue
			}
			ns := &source{addr: s.addr, attempts: kept}
			n.sources[s.addr] = ns
			n.settle(ns, s.last)
		}
	}
	return n
}

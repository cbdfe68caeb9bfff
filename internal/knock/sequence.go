package knock

import "github.com/sesame-gw/sesame/internal/service"

// SetSequence replaces the sequence of door (an index into the doors the
// machine was built with; not a rotating door), as knockd does after a
// One_Time_Sequences knock. An empty seq disables the door. Attempts on the
// old sequence are reset (ReasonReplaced) on their next packet or sweep;
// knockd instead lets them go on at the same stage of the new sequence.
// The caller validates seq like Door.Validate; the machine keeps the slice.
func (m *Machine) SetSequence(door int, seq []service.Service) {
	if door < 0 || door >= len(m.doors) || m.doors[door].Rotator != nil {
		return
	}
	for _, tr := range m.tracks {
		if tr.door == door && tr.dead == "" {
			tr.dead = ReasonReplaced
		}
	}
	m.doors[door].Sequence = seq
	if len(seq) > 0 {
		m.tracks = append(m.tracks, &track{door: door, seq: seq})
	}
	m.rebuild()
}

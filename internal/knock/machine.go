package knock

import (
	"net/netip"
	"time"

	"github.com/sesame-gw/sesame/internal/packet"
	"github.com/sesame-gw/sesame/internal/service"
)

// DefaultMaxSources bounds the number of sources tracked at once.
const DefaultMaxSources = 65536

// Machine tracks knock attempts per source. The zero value is not usable;
// call New.
type Machine struct {
	doors      []Door
	first      map[service.Service][]int    // doors whose first step is the key
	stepFlags  map[service.Service][]Flags  // flag conditions of TCP steps, per port
	steps      map[service.Service]struct{} // every step of every door
	sources    map[netip.Addr]*source       // live attempts
	fresh      lru                          // sources whose attempts are all at stage 1
	advanced   lru                          // sources with an attempt past stage 1
	touched    []bool                       // scratch, per door
	max        int                          // MaxSources
	maxTimeout time.Duration                // longest door timeout
}

type source struct {
	addr       netip.Addr
	attempts   []attempt
	last       time.Time
	prev, next *source
	list       *lru
}

type attempt struct {
	door  int
	stage int // steps matched so far, ≥ 1
	start time.Time
}

// New builds a machine for doors (validated by the caller with
// Door.Validate). maxSources ≤ 0 means DefaultMaxSources.
func New(doors []Door, maxSources int) *Machine {
	if maxSources <= 0 {
		maxSources = DefaultMaxSources
	}
	m := &Machine{
		doors:     append([]Door(nil), doors...),
		first:     make(map[service.Service][]int),
		stepFlags: make(map[service.Service][]Flags),
		steps:     make(map[service.Service]struct{}),
		sources:   make(map[netip.Addr]*source),
		touched:   make([]bool, len(doors)),
		max:       maxSources,
	}
	for i := range m.doors {
		d := &m.doors[i]
		m.first[d.Sequence[0]] = append(m.first[d.Sequence[0]], i)
		for _, s := range d.Sequence {
			m.steps[s] = struct{}{}
			if s.Proto == service.TCP && !containsFlags(m.stepFlags[s], d.Flags) {
				m.stepFlags[s] = append(m.stepFlags[s], d.Flags)
			}
		}
		if d.Timeout > m.maxTimeout {
			m.maxTimeout = d.Timeout
		}
	}
	return m
}

func containsFlags(list []Flags, f Flags) bool {
	for _, x := range list {
		if x == f {
			return true
		}
	}
	return false
}

// Doors returns the doors the machine was built with (do not modify).
func (m *Machine) Doors() []Door { return m.doors }

// Len is the number of sources with an attempt in progress.
func (m *Machine) Len() int { return len(m.sources) }

// IsStep reports whether s is a step of some door (a knock port).
func (m *Machine) IsStep(s service.Service) bool {
	_, ok := m.steps[s]
	return ok
}

// Observe feeds one packet from src to svc with TCP flags (ignored for UDP)
// seen at now, appends the resulting events to dst and returns it.
func (m *Machine) Observe(dst []Event, now time.Time, src netip.Addr, svc service.Service, flags packet.TCPFlags) []Event {
	src = src.Unmap()
	if conds, isStep := m.stepFlags[svc]; isStep && svc.Proto == service.TCP {
		ok := false
		for _, c := range conds {
			ok = ok || c.Match(flags)
		}
		if !ok {
			return dst // knockd ignores a knock whose flags match no door
		}
	}
	s := m.sources[src]
	if s != nil {
		dst = m.expireSource(dst, s, now)
		kept := s.attempts[:0]
		for _, a := range s.attempts {
			d := &m.doors[a.door]
			next := d.Sequence[a.stage]
			switch {
			case svc == next && d.flagsOK(svc, flags):
				m.touched[a.door] = true
				a.stage++
				if a.stage == len(d.Sequence) {
					dst = append(dst, Event{Kind: Completed, Src: src, Door: a.door, Stage: a.stage, Service: svc})
					continue
				}
				dst = append(dst, Event{Kind: Advanced, Src: src, Door: a.door, Stage: a.stage, Service: svc})
			case svc == next:
				// The right port with another door's flags: not for us.
				m.touched[a.door] = true
			case svc == d.Sequence[a.stage-1]:
				m.touched[a.door] = true
				dst = append(dst, Event{Kind: Repeated, Src: src, Door: a.door, Stage: a.stage, Service: svc})
			default:
				dst = append(dst, Event{Kind: Reset, Src: src, Door: a.door, Service: svc, Reason: ReasonWrongPort})
				continue
			}
			kept = append(kept, a)
		}
		s.attempts = kept
	}
	for _, di := range m.first[svc] {
		if m.touched[di] {
			continue
		}
		d := &m.doors[di]
		if !d.allows(src) || !d.flagsOK(svc, flags) {
			continue
		}
		if len(d.Sequence) == 1 {
			dst = append(dst, Event{Kind: Completed, Src: src, Door: di, Stage: 1, Service: svc})
			continue
		}
		if s == nil {
			var evicted []Event
			s, evicted = m.newSource(src)
			dst = append(dst, evicted...)
		}
		s.attempts = append(s.attempts, attempt{door: di, stage: 1, start: now})
		dst = append(dst, Event{Kind: Started, Src: src, Door: di, Stage: 1, Service: svc})
	}
	for i := range m.touched {
		m.touched[i] = false
	}
	if s != nil {
		m.settle(s, now)
	}
	return dst
}

// expireSource drops the attempts of s that ran past their door's timeout.
func (m *Machine) expireSource(dst []Event, s *source, now time.Time) []Event {
	kept := s.attempts[:0]
	for _, a := range s.attempts {
		if now.Sub(a.start) > m.doors[a.door].Timeout {
			dst = append(dst, Event{Kind: Reset, Src: s.addr, Door: a.door, Reason: ReasonTimeout})
			continue
		}
		kept = append(kept, a)
	}
	s.attempts = kept
	return dst
}

// settle files s in the right list after a change, or forgets it.
func (m *Machine) settle(s *source, now time.Time) {
	if len(s.attempts) == 0 {
		m.remove(s)
		return
	}
	s.last = now
	target := &m.fresh
	for _, a := range s.attempts {
		if a.stage > 1 {
			target = &m.advanced
		}
	}
	s.list.unlink(s)
	target.pushBack(s)
}

func (m *Machine) newSource(addr netip.Addr) (*source, []Event) {
	var ev []Event
	if len(m.sources) >= m.max {
		victim := m.fresh.head
		if victim == nil {
			victim = m.advanced.head
		}
		for _, a := range victim.attempts {
			ev = append(ev, Event{Kind: Reset, Src: victim.addr, Door: a.door, Reason: ReasonEvicted})
		}
		m.remove(victim)
	}
	s := &source{addr: addr}
	m.sources[addr] = s
	m.fresh.pushBack(s)
	return s, ev
}

func (m *Machine) remove(s *source) {
	s.list.unlink(s)
	delete(m.sources, s.addr)
}

// Expire forgets sources idle for longer than the longest door timeout
// (their attempts have all timed out), appending a Reset per attempt. Work is
// proportional to what it removes. Shorter door timeouts are also enforced
// lazily, on the source's next packet.
func (m *Machine) Expire(dst []Event, now time.Time) []Event {
	for _, l := range []*lru{&m.fresh, &m.advanced} {
		for s := l.head; s != nil && now.Sub(s.last) > m.maxTimeout; s = l.head {
			dst = m.expireSource(dst, s, now.Add(m.maxTimeout+time.Nanosecond))
			m.remove(s)
		}
	}
	return dst
}

// NextExpiry is when Expire next has work, or the zero time if nothing is
// tracked.
func (m *Machine) NextExpiry() time.Time {
	var t time.Time
	for _, l := range []*lru{&m.fresh, &m.advanced} {
		if l.head != nil {
			if e := l.head.last.Add(m.maxTimeout + time.Nanosecond); t.IsZero() || e.Before(t) {
				t = e
			}
		}
	}
	return t
}

// Progress reports, for src, the stage reached in each door with an attempt
// in progress (door index → steps matched).
func (m *Machine) Progress(src netip.Addr) map[int]int {
	s := m.sources[src.Unmap()]
	if s == nil {
		return nil
	}
	out := make(map[int]int, len(s.attempts))
	for _, a := range s.attempts {
		out[a.door] = a.stage
	}
	return out
}

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
// call New or NewWithOptions.
type Machine struct {
	doors      []Door
	opts       Options
	tracks     []*track                     // sequences accepted now
	first      map[service.Service][]*track // tracks whose first step is the key
	stepFlags  map[service.Service][]Flags  // flag conditions of TCP steps, per port
	steps      map[service.Service]struct{} // every step of every track
	sources    map[netip.Addr]*source       // live attempts
	fresh      lru                          // sources whose attempts are all at stage 1
	advanced   lru                          // sources with an attempt past stage 1
	touched    []*track                     // scratch: tracks a packet matched
	rot        []rotation                   // state of the rotating doors
	dirty      bool                         // tracks changed: rebuild the indexes
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
	tr    *track
	stage int // steps matched so far, ≥ 1
	start time.Time
}

// track is one sequence a door accepts now. A fixed door has one for its
// life; SetSequence replaces it; a rotating door has one per accepted period.
// Attempts point at their track, so a retired track resets them on their
// next packet.
type track struct {
	door    int
	seq     []service.Service
	counter uint64 // rotating doors: the period seq belongs to
	dead    string // non-empty once retired: the reset reason
	touched bool   // scratch for Observe
}

// New builds a machine for doors (validated by the caller with
// Door.Validate) with Sesame's scan-proof semantics. maxSources ≤ 0 means
// DefaultMaxSources. It is NewWithOptions with only MaxSources set.
func New(doors []Door, maxSources int) *Machine {
	return NewWithOptions(doors, Options{MaxSources: maxSources})
}

// NewWithOptions builds a machine for doors (validated by the caller with
// Door.Validate).
func NewWithOptions(doors []Door, opts Options) *Machine {
	if opts.MaxSources <= 0 {
		opts.MaxSources = DefaultMaxSources
	}
	m := &Machine{
		doors:   append([]Door(nil), doors...),
		opts:    opts,
		sources: make(map[netip.Addr]*source),
		max:     opts.MaxSources,
	}
	for i := range m.doors {
		d := &m.doors[i]
		if d.Rotator != nil {
			m.rot = append(m.rot, rotation{door: i})
		} else {
			m.tracks = append(m.tracks, &track{door: i, seq: d.Sequence})
		}
		if d.Timeout > m.maxTimeout {
			m.maxTimeout = d.Timeout
		}
	}
	m.rebuild()
	return m
}

// rebuild drops retired tracks and recomputes the indexes from the live ones.
func (m *Machine) rebuild() {
	m.first = make(map[service.Service][]*track)
	m.stepFlags = make(map[service.Service][]Flags)
	m.steps = make(map[service.Service]struct{})
	live := m.tracks[:0]
	for _, tr := range m.tracks {
		if tr.dead != "" {
			continue
		}
		live = append(live, tr)
		d := &m.doors[tr.door]
		m.first[tr.seq[0]] = append(m.first[tr.seq[0]], tr)
		for _, s := range tr.seq {
			m.steps[s] = struct{}{}
			if s.Proto == service.TCP && !containsFlags(m.stepFlags[s], d.Flags) {
				m.stepFlags[s] = append(m.stepFlags[s], d.Flags)
			}
		}
	}
	clear(m.tracks[len(live):])
	m.tracks = live
	m.dirty = false
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

// IsStep reports whether s is a step of some sequence the machine accepts
// now (a knock port). Rotating doors' steps are known after the first
// Observe.
func (m *Machine) IsStep(s service.Service) bool {
	_, ok := m.steps[s]
	return ok
}

// Observe feeds one packet from src to svc with TCP flags (ignored for UDP)
// seen at now, appends the resulting events to dst and returns it.
func (m *Machine) Observe(dst []Event, now time.Time, src netip.Addr, svc service.Service, flags packet.TCPFlags) []Event {
	src = src.Unmap()
	if len(m.rot) > 0 {
		m.rotate(now)
	}
	if m.opts.Knockd && !m.IsStep(svc) {
		return dst // knockd's capture filter never shows it other ports
	}
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
	busy := false
	if s != nil {
		dst = m.expireSource(dst, s, now)
		busy = len(s.attempts) > 0
		kept := s.attempts[:0]
		for _, a := range s.attempts {
			var keep bool
			if dst, keep = m.step(dst, &a, src, svc, flags); keep {
				kept = append(kept, a)
			}
		}
		clear(s.attempts[len(kept):])
		s.attempts = kept
	}
	// knockd consumes the packet that ends an attempt: a source with an
	// attempt in progress starts nothing new.
	if !busy || !m.opts.Knockd {
		for _, tr := range m.first[svc] {
			if tr.touched || tr.dead != "" {
				continue
			}
			d := &m.doors[tr.door]
			if !d.allows(src) || !d.flagsOK(svc, flags) {
				continue
			}
			if len(tr.seq) == 1 {
				dst = append(dst, Event{Kind: Completed, Src: src, Door: tr.door, Stage: 1, Service: svc})
				m.completed(tr)
				continue
			}
			if s == nil {
				var evicted []Event
				s, evicted = m.newSource(src)
				dst = append(dst, evicted...)
			}
			s.attempts = append(s.attempts, attempt{tr: tr, stage: 1, start: now})
			dst = append(dst, Event{Kind: Started, Src: src, Door: tr.door, Stage: 1, Service: svc})
		}
	}
	for _, tr := range m.touched {
		tr.touched = false
	}
	m.touched = m.touched[:0]
	if s != nil {
		m.settle(s, now)
	}
	if m.dirty {
		m.rebuild()
	}
	return dst
}

// step applies one packet to one attempt of src and reports whether the
// attempt goes on.
func (m *Machine) step(dst []Event, a *attempt, src netip.Addr, svc service.Service, flags packet.TCPFlags) ([]Event, bool) {
	tr := a.tr
	if tr.dead != "" {
		return append(dst, Event{Kind: Reset, Src: src, Door: tr.door, Service: svc, Reason: tr.dead, Reached: a.stage}), false
	}
	d := &m.doors[tr.door]
	next := tr.seq[a.stage]
	touch := func() {
		if !tr.touched {
			tr.touched = true
			m.touched = append(m.touched, tr)
		}
	}
	if m.opts.Knockd {
		switch {
		case !d.flagsOK(svc, flags):
			return dst, true // knockd: flags not for this door, ignored
		case svc == next:
		case svc == tr.seq[a.stage-1]:
			return append(dst, Event{Kind: Reset, Src: src, Door: tr.door, Service: svc, Reason: ReasonRepeatedKnock, Reached: a.stage}), false
		default:
			return append(dst, Event{Kind: Reset, Src: src, Door: tr.door, Service: svc, Reason: ReasonWrongPort, Reached: a.stage}), false
		}
	} else {
		switch {
		case svc == next && d.flagsOK(svc, flags):
		case svc == next:
			// The right port with another door's flags: not for us.
			touch()
			return dst, true
		case svc == tr.seq[a.stage-1]:
			touch()
			return append(dst, Event{Kind: Repeated, Src: src, Door: tr.door, Stage: a.stage, Service: svc}), true
		default:
			return append(dst, Event{Kind: Reset, Src: src, Door: tr.door, Service: svc, Reason: ReasonWrongPort, Reached: a.stage}), false
		}
	}
	touch()
	a.stage++
	if a.stage == len(tr.seq) {
		m.completed(tr)
		return append(dst, Event{Kind: Completed, Src: src, Door: tr.door, Stage: a.stage, Service: svc}), false
	}
	return append(dst, Event{Kind: Advanced, Src: src, Door: tr.door, Stage: a.stage, Service: svc}), true
}

// expired reports whether a ran past its door's timeout at now.
func (m *Machine) expired(a *attempt, now time.Time) bool {
	timeout := m.doors[a.tr.door].Timeout
	if m.opts.Knockd {
		// knockd: (pkt_secs - seq_start) >= seq_timeout, in whole seconds
		// of the capture timestamps.
		return now.Unix()-a.start.Unix() >= int64(timeout/time.Second)
	}
	return now.Sub(a.start) > timeout
}

// expireSource drops the attempts of s that ran past their door's timeout.
func (m *Machine) expireSource(dst []Event, s *source, now time.Time) []Event {
	kept := s.attempts[:0]
	for _, a := range s.attempts {
		if m.expired(&a, now) {
			dst = append(dst, Event{Kind: Reset, Src: s.addr, Door: a.tr.door, Reason: ReasonTimeout, Reached: a.stage})
			continue
		}
		kept = append(kept, a)
	}
	clear(s.attempts[len(kept):])
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
			ev = append(ev, Event{Kind: Reset, Src: victim.addr, Door: a.tr.door, Reason: ReasonEvicted, Reached: a.stage})
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
		out[a.tr.door] = max(out[a.tr.door], a.stage)
	}
	return out
}

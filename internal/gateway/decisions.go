package gateway

import (
	"net/netip"
	"sync"
	"time"
)

// Decision is one logged decision, kept for `sesame status`.
type Decision struct {
	Time     time.Time  `json:"time"`
	Kind     string     `json:"kind"` // grant, reject, reset, revoke
	Src      netip.Addr `json:"src"`
	Door     string     `json:"door,omitempty"`
	Proto    string     `json:"proto,omitempty"`
	Client   string     `json:"client,omitempty"`
	Services []string   `json:"services,omitempty"`
	Reason   string     `json:"reason,omitempty"`
	// Latency is packet arrival (knock: decision) → grant committed.
	Latency time.Duration `json:"latency_ns,omitempty"`
}

// decisionRing keeps the last n decisions. Safe for concurrent use.
type decisionRing struct {
	sink func(Decision) // Config.OnDecision, may be nil
	mu   sync.Mutex
	buf  []Decision
	next int
	full bool
}

func newDecisionRing(n int, sink func(Decision)) *decisionRing {
	return &decisionRing{buf: make([]Decision, n), sink: sink}
}

func (r *decisionRing) add(d Decision) {
	if r.sink != nil {
		r.sink(d)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf[r.next] = d
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
}

// list returns the decisions, oldest first.
func (r *decisionRing) list() []Decision {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full {
		return append([]Decision(nil), r.buf[:r.next]...)
	}
	return append(append([]Decision(nil), r.buf[r.next:]...), r.buf[:r.next]...)
}

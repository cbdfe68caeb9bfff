package gateway

import (
	"net/netip"
	"sync"
	"time"
)

// sourceLimiter is a per-source token bucket for SPA datagrams, checked
// before any cryptography so that one source cannot monopolise the
// verification workers. IPv6 sources are grouped by /64 (one host usually
// owns a whole /64). The table is bounded; when full, the least recently
// used bucket is forgotten (a forgotten source starts again with a full
// bucket, which errs on the side of letting a legitimate client through).
// Safe for concurrent use.
type sourceLimiter struct {
	mu      sync.Mutex
	rate    float64 // tokens per second
	burst   float64
	max     int
	buckets map[netip.Addr]*bucket
	head    *bucket // least recently used
	tail    *bucket
}

type bucket struct {
	key        netip.Addr
	tokens     float64
	last       time.Time
	prev, next *bucket
}

// maxLimitedSources bounds the limiter's table. Only datagrams that passed
// a handler's pre-check reach it, and a flood of those from spoofed
// sources defeats any per-source limit anyway (each source sends few), so
// the table only needs to hold the sources that are actually busy: 16,384
// buckets are about 2 MB of live heap, where 65,536 were 8 MB (which the
// garbage collector's headroom doubles in resident memory; bench/ memory
// scenario). An evicted source starts again with a full bucket.
const maxLimitedSources = 16384

func newSourceLimiter(rate, burst float64, max int) *sourceLimiter {
	return &sourceLimiter{rate: rate, burst: burst, max: max, buckets: make(map[netip.Addr]*bucket)}
}

func limiterKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// allow takes one token for src at now.
func (l *sourceLimiter) allow(src netip.Addr, now time.Time) bool {
	k := limiterKey(src)
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[k]
	if b == nil {
		if len(l.buckets) >= l.max {
			old := l.head
			l.unlink(old)
			delete(l.buckets, old.key)
		}
		b = &bucket{key: k, tokens: l.burst, last: now}
		l.buckets[k] = b
	} else {
		l.unlink(b)
		if dt := now.Sub(b.last).Seconds(); dt > 0 {
			b.tokens = min(l.burst, b.tokens+dt*l.rate)
		}
		b.last = now
	}
	l.pushBack(b)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (l *sourceLimiter) pushBack(b *bucket) {
	b.prev, b.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = b
	} else {
		l.head = b
	}
	l.tail = b
}

func (l *sourceLimiter) unlink(b *bucket) {
	if b.prev != nil {
		b.prev.next = b.next
	} else {
		l.head = b.next
	}
	if b.next != nil {
		b.next.prev = b.prev
	} else {
		l.tail = b.prev
	}
	b.prev, b.next = nil, nil
}

package gateway

import (
	"sync"
	"time"
)

// logLimiter caps info-level per-packet decision lines (a knock flood must
// not flood the journal): a token bucket of burst lines refilled at rate
// per second; what it refuses is counted and reported in one line.
type logLimiter struct {
	mu         sync.Mutex
	now        func() time.Time
	rate       float64
	burst      float64
	tokens     float64
	last       time.Time
	suppressed uint64
	reportedAt time.Time
}

func newLogLimiter(now func() time.Time, rate, burst float64) *logLimiter {
	return &logLimiter{now: now, rate: rate, burst: burst, tokens: burst}
}

func (l *logLimiter) allow() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.now()
	if !l.last.IsZero() {
		l.tokens = min(l.burst, l.tokens+t.Sub(l.last).Seconds()*l.rate)
	}
	l.last = t
	if l.tokens >= 1 {
		l.tokens--
		return true
	}
	l.suppressed++
	return false
}

// takeSuppressed returns the count to report, at most once per 10 s.
func (l *logLimiter) takeSuppressed() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.suppressed == 0 || l.now().Sub(l.reportedAt) < 10*time.Second {
		return 0
	}
	n := l.suppressed
	l.suppressed, l.reportedAt = 0, l.now()
	return n
}

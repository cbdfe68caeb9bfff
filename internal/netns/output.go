package netns

import (
	"bytes"
	"sync"
)

// tailBuffer is an io.Writer that keeps the last limit bytes written to it
// and wakes waiters on every write. It is safe for concurrent use.
type tailBuffer struct {
	mu      sync.Mutex
	limit   int
	buf     []byte
	dropped int64         // bytes discarded from the front
	changed chan struct{} // closed and replaced on every write
}

func newTailBuffer(limit int) *tailBuffer {
	return &tailBuffer{limit: limit, changed: make(chan struct{})}
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.limit; over > 0 {
		t.dropped += int64(over)
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	close(t.changed)
	t.changed = make(chan struct{})
	return len(p), nil
}

// snapshot returns a copy of the kept bytes, how many were dropped before
// them, and a channel closed at the next write.
func (t *tailBuffer) snapshot() ([]byte, int64, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return bytes.Clone(t.buf), t.dropped, t.changed
}

// Package replay remembers the packets a gateway accepted, so that the same
// packet is refused again until it is stale anyway (docs/protocol.md §6 step
// 11 and §6.1).
//
// Cache is the pure, in-memory core: bounded, never evicting a live entry.
// Store adds a small append-only file in the state directory so that a
// daemon restart does not reopen the window. Both are safe for concurrent
// use. Callers add a key only after the packet is fully authenticated.
package replay

import (
	"container/heap"
	"errors"
	"sync"
	"time"
)

// Key identifies an accepted packet (spa.ReplayKey, or a digest for other
// doors). It must be unforgeable: derived from authenticated bytes.
type Key [16]byte

// Reason is a stable, log-friendly token; the sentinel errors are Reasons.
type Reason string

func (r Reason) Error() string { return string(r) }

// Errors returned by Add.
const (
	// ErrReplay: the key was already accepted and is still live.
	ErrReplay Reason = "replay"
	// ErrFull: the cache holds Capacity live entries. The packet must be
	// refused: evicting a live entry would reopen a replay.
	ErrFull Reason = "replay-cache-full"
	// ErrPersist: the key is recorded in memory but could not be written
	// to the state file, so a restart would forget it. Callers should
	// refuse the packet (fail closed).
	ErrPersist Reason = "replay-persist"
)

// ReasonOf returns the Reason wrapped by err, or "" if there is none.
func ReasonOf(err error) Reason {
	var r Reason
	if errors.As(err, &r) {
		return r
	}
	return ""
}

// DefaultCapacity is the number of live entries a cache holds by default.
const DefaultCapacity = 65536

// Cache is a bounded set of keys, each live until its expiry. The zero
// value is not usable; call New.
type Cache struct {
	mu  sync.Mutex
	max int
	m   map[Key]int64 // key -> expiry, Unix milliseconds
	h   expiries
}

// New returns an empty cache holding at most capacity live entries
// (DefaultCapacity if capacity <= 0).
func New(capacity int) *Cache {
	if capacity <= 0 {
		capacity = DefaultCapacity
	}
	return &Cache{max: capacity, m: make(map[Key]int64)}
}

// Add records k as accepted until `until` (inclusive), checked at now. It
// returns ErrReplay if k is already live, ErrFull if the cache holds
// Capacity live entries (after forgetting the expired ones), and nil once k
// is recorded. A key whose until is already past is not recorded (the
// packet is stale) and Add returns nil. Expiries are kept in whole
// milliseconds, rounded up.
func (c *Cache) Add(k Key, until, now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.add(k, ceilMilli(until), now.UnixMilli())
}

func (c *Cache) add(k Key, exp, now int64) error {
	c.prune(now)
	if _, ok := c.m[k]; ok {
		return ErrReplay
	}
	if exp < now {
		return nil
	}
	if len(c.m) >= c.max {
		return ErrFull
	}
	c.insert(k, exp)
	return nil
}

// insert adds k without checks (used when loading saved state).
func (c *Cache) insert(k Key, exp int64) {
	if old, ok := c.m[k]; ok {
		if exp <= old {
			return
		}
		// Keep the later expiry; the heap keeps the old entry too, which
		// prune skips (it checks the map).
	}
	c.m[k] = exp
	heap.Push(&c.h, entry{k, exp})
}

// prune forgets entries that expired before now.
func (c *Cache) prune(now int64) {
	for len(c.h) > 0 && c.h[0].exp < now {
		e := heap.Pop(&c.h).(entry)
		if c.m[e.key] == e.exp {
			delete(c.m, e.key)
		}
	}
}

// Contains reports whether k is live at now.
func (c *Cache) Contains(k Key, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.m[k]
	return ok && exp >= now.UnixMilli()
}

// Len is the number of entries held, including expired ones not yet
// forgotten.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// Capacity is the most live entries the cache holds.
func (c *Cache) Capacity() int { return c.max }

// live returns the live entries at now, in no particular order.
func (c *Cache) live(now int64) []entry {
	c.prune(now)
	out := make([]entry, 0, len(c.m))
	for k, exp := range c.m {
		out = append(out, entry{k, exp})
	}
	return out
}

func ceilMilli(t time.Time) int64 {
	ms := t.UnixMilli()
	if t.Sub(time.UnixMilli(ms)) > 0 {
		ms++
	}
	return ms
}

type entry struct {
	key Key
	exp int64
}

// expiries is a min-heap of entries by expiry.
type expiries []entry

func (h expiries) Len() int           { return len(h) }
func (h expiries) Less(i, j int) bool { return h[i].exp < h[j].exp }
func (h expiries) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiries) Push(x any)        { *h = append(*h, x.(entry)) }
func (h *expiries) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

package replay

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func key(i int) Key {
	var k Key
	k[0], k[1], k[2] = byte(i), byte(i>>8), byte(i>>16)
	return k
}

func TestCacheReplay(t *testing.T) {
	c := New(10)
	until := t0.Add(time.Minute)
	if err := c.Add(key(1), until, t0); err != nil {
		t.Fatal(err)
	}
	if err := c.Add(key(1), until, t0.Add(time.Second)); !errors.Is(err, ErrReplay) || ReasonOf(err) != ErrReplay {
		t.Fatalf("second Add: %v, want replay", err)
	}
	if err := c.Add(key(2), until, t0); err != nil {
		t.Fatalf("another key: %v", err)
	}
	// Live through `until` inclusive, forgotten after.
	if err := c.Add(key(1), until, until); !errors.Is(err, ErrReplay) {
		t.Fatalf("at until: %v, want replay", err)
	}
	if !c.Contains(key(1), until) || c.Contains(key(1), until.Add(time.Millisecond)) {
		t.Error("Contains disagrees with the expiry")
	}
	if err := c.Add(key(1), until.Add(time.Minute), until.Add(time.Millisecond)); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
}

func TestCacheStaleNotRecorded(t *testing.T) {
	c := New(1)
	if err := c.Add(key(1), t0.Add(-time.Millisecond), t0); err != nil {
		t.Fatal(err)
	}
	if c.Len() != 0 {
		t.Fatalf("a stale key was recorded")
	}
}

func TestCacheSubMillisecondUntil(t *testing.T) {
	c := New(1)
	until := t0.Add(1500 * time.Microsecond) // rounds up to +2ms
	if err := c.Add(key(1), until, t0); err != nil {
		t.Fatal(err)
	}
	if err := c.Add(key(1), until, until); !errors.Is(err, ErrReplay) {
		t.Fatalf("at a sub-millisecond until: %v, want replay", err)
	}
}

// A full cache refuses new keys rather than evicting a live one, and makes
// room as entries expire, soonest first.
func TestCacheBounded(t *testing.T) {
	const n = 100
	c := New(n)
	for i := range n {
		// key i lives until t0 + i seconds.
		if err := c.Add(key(i), t0.Add(time.Duration(i)*time.Second), t0); err != nil {
			t.Fatalf("Add %d: %v", i, err)
		}
	}
	if err := c.Add(key(n), t0.Add(time.Hour), t0); !errors.Is(err, ErrFull) || ReasonOf(err) != ErrFull {
		t.Fatalf("Add to a full cache: %v, want replay-cache-full", err)
	}
	for i := range n {
		if err := c.Add(key(i), t0.Add(time.Hour), t0); !errors.Is(err, ErrReplay) {
			t.Fatalf("live key %d evicted: %v", i, err)
		}
	}
	// At t0+10.5s keys 0..10 expired: 11 free slots.
	now := t0.Add(10500 * time.Millisecond)
	for i := range 11 {
		if err := c.Add(key(1000+i), t0.Add(time.Hour), now); err != nil {
			t.Fatalf("after expiry, Add %d: %v", i, err)
		}
	}
	if err := c.Add(key(2000), t0.Add(time.Hour), now); !errors.Is(err, ErrFull) {
		t.Fatalf("12th new key: %v, want full", err)
	}
	if c.Len() != n || c.Capacity() != n {
		t.Errorf("Len %d Capacity %d, want %d", c.Len(), c.Capacity(), n)
	}
	if err := c.Add(key(11), t0.Add(time.Hour), now); !errors.Is(err, ErrReplay) {
		t.Errorf("key 11 (live until +11s) was evicted: %v", err)
	}
	if New(0).Capacity() != DefaultCapacity {
		t.Error("New(0) is not DefaultCapacity")
	}
}

func TestCacheConcurrentSameKey(t *testing.T) {
	c := New(100)
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if c.Add(key(7), t0.Add(time.Minute), t0) == nil {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Fatalf("%d goroutines added the same key, want exactly 1", ok.Load())
	}
}

package gateway

import (
	"net/netip"
	"testing"
	"time"
)

// The table never holds more than its bound; the least recently used
// source goes first and comes back with a full bucket.
func TestSourceLimiterBounded(t *testing.T) {
	l := newSourceLimiter(1, 1, maxLimitedSources)
	now := time.Unix(1_800_000_000, 0)
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}) }
	first := addr(0)
	if !l.allow(first, now) || l.allow(first, now) {
		t.Fatal("a burst of 1 allows exactly one datagram")
	}
	for i := 1; i <= 2*maxLimitedSources; i++ {
		l.allow(addr(i), now)
	}
	if n := len(l.buckets); n != maxLimitedSources {
		t.Fatalf("%d buckets, want the bound %d", n, maxLimitedSources)
	}
	if !l.allow(first, now) {
		t.Fatal("an evicted source does not start with a full bucket")
	}
}

// BenchmarkSourceLimiterDistinct: every datagram from a new source (a
// spoofed flood that passed the pre-checks): insert and evict.
func BenchmarkSourceLimiterDistinct(b *testing.B) {
	l := newSourceLimiter(20, 40, maxLimitedSources)
	now := time.Unix(1_800_000_000, 0)
	i := 0
	for b.Loop() {
		l.allow(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), now)
		i++
	}
}

package replay

import (
	"path/filepath"
	"testing"
	"time"
)

func BenchmarkCacheAdd(b *testing.B) {
	c := New(DefaultCapacity)
	now := t0
	i := 0
	for b.Loop() {
		now = now.Add(time.Millisecond) // ~60k live at a 60 s lifetime
		if err := c.Add(key(i), now.Add(60*time.Second), now); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func benchStore(b *testing.B, sync bool) {
	s, err := OpenStore(filepath.Join(b.TempDir(), "spa-replay"), Options{Sync: sync}, t0)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	now := t0
	i := 0
	for b.Loop() {
		now = now.Add(time.Millisecond)
		if err := s.Add(key(i), now.Add(60*time.Second), now); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkStoreAdd(b *testing.B)     { benchStore(b, false) }
func BenchmarkStoreAddSync(b *testing.B) { benchStore(b, true) }

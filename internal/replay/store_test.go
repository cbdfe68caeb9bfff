package replay

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func openStore(t *testing.T, path string, opt Options, now time.Time) *Store {
	t.Helper()
	s, err := OpenStore(path, opt, now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStoreSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spa-replay")
	s := openStore(t, path, Options{Capacity: 10}, t0)
	if err := s.Add(key(1), t0.Add(time.Minute), t0); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(key(2), t0.Add(5*time.Second), t0); err != nil {
		t.Fatal(err)
	}
	// No Close: a SIGKILL loses nothing that write(2) returned.
	s2 := openStore(t, path, Options{Capacity: 10}, t0.Add(10*time.Second))
	if err := s2.Add(key(1), t0.Add(time.Minute), t0.Add(10*time.Second)); !errors.Is(err, ErrReplay) {
		t.Fatalf("after restart: %v, want replay", err)
	}
	if s2.Contains(key(2), t0.Add(10*time.Second)) || s2.Len() != 1 {
		t.Errorf("expired entry reloaded: len %d", s2.Len())
	}
	// The restart compacted the file to the live entry.
	if fi, err := os.Stat(path); err != nil || fi.Size() != int64(len(fileHeader)+recordSize) || fi.Mode().Perm() != 0o600 {
		t.Errorf("state file after compaction: %v, %v", fi, err)
	}
}

func TestStoreFileBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spa-replay")
	const capacity = 50
	s := openStore(t, path, Options{Capacity: capacity}, t0)
	now := t0
	limit := int64(len(fileHeader) + 2*capacity*recordSize)
	for i := range 20 * capacity {
		now = now.Add(100 * time.Millisecond) // each key lives 2s: ~20 live
		if err := s.Add(key(i), now.Add(2*time.Second), now); err != nil {
			t.Fatalf("Add %d: %v", i, err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > limit {
			t.Fatalf("after %d adds the file is %d bytes, over %d", i+1, fi.Size(), limit)
		}
	}
	// Everything live is still refused after a restart.
	s.Close()
	s2 := openStore(t, path, Options{Capacity: capacity}, now)
	for i := 20*capacity - 20; i < 20*capacity; i++ {
		if err := s2.Add(key(i), now.Add(time.Hour), now); !errors.Is(err, ErrReplay) {
			t.Fatalf("key %d after restart: %v, want replay", i, err)
		}
	}
}

func TestStoreTornAndCorruptRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spa-replay")
	var b []byte
	b = append(b, fileHeader...)
	b = appendRecord(b, key(1), t0.Add(time.Minute).UnixMilli())
	bad := appendRecord(nil, key(2), t0.Add(time.Minute).UnixMilli())
	bad[3] ^= 0xFF // checksum mismatch
	b = append(b, bad...)
	b = appendRecord(b, key(3), t0.Add(time.Minute).UnixMilli())
	b = append(b, appendRecord(nil, key(4), t0.Add(time.Minute).UnixMilli())[:recordSize-5]...) // torn
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, path, Options{}, t0)
	if !s.Contains(key(1), t0) || !s.Contains(key(3), t0) || s.Contains(key(2), t0) || s.Contains(key(4), t0) || s.Len() != 2 {
		t.Fatalf("loaded %d entries; want keys 1 and 3 only", s.Len())
	}
}

func TestStoreRejectsForeignFile(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"foreign": "[spa]\nport = 62201\n", "wrong header": "SESRPL9\nxxxxxxxxxxxxxxxxxxxxxxxxxxxx"} {
		path := filepath.Join(dir, name)
		os.WriteFile(path, []byte(content), 0o600)
		if _, err := OpenStore(path, Options{}, t0); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v, want ErrFormat", name, err)
		}
	}
	// A header cut short by a crash is an empty store.
	path := filepath.Join(dir, "torn header")
	os.WriteFile(path, []byte(fileHeader[:3]), 0o600)
	s := openStore(t, path, Options{}, t0)
	if s.Len() != 0 {
		t.Error("torn header produced entries")
	}
}

func TestStoreCapacityLowered(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spa-replay")
	s := openStore(t, path, Options{Capacity: 10}, t0)
	for i := range 10 {
		if err := s.Add(key(i), t0.Add(time.Minute), t0); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s2 := openStore(t, path, Options{Capacity: 3}, t0)
	if s2.Len() != 10 {
		t.Fatalf("a lowered capacity dropped live entries: %d left", s2.Len())
	}
	if err := s2.Add(key(9), t0.Add(time.Minute), t0); !errors.Is(err, ErrReplay) {
		t.Errorf("key 9: %v, want replay", err)
	}
	if err := s2.Add(key(99), t0.Add(time.Minute), t0); !errors.Is(err, ErrFull) {
		t.Errorf("new key over capacity: %v, want full", err)
	}
}

func TestStoreSyncAndClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spa-replay")
	s := openStore(t, path, Options{Sync: true}, t0)
	if err := s.Add(key(1), t0.Add(time.Minute), t0); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(key(2), t0.Add(time.Minute), t0); ReasonOf(err) != ErrPersist {
		t.Errorf("Add after Close: %v, want replay-persist", err)
	}
	if _, err := OpenStore(filepath.Join(t.TempDir(), "missing-dir", "x"), Options{}, t0); err == nil {
		t.Error("OpenStore in a missing directory succeeded")
	}
}

func TestStoreWriteFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spa-replay")
	s := openStore(t, path, Options{}, t0)
	s.f.Close() // the next write fails
	if err := s.Add(key(1), t0.Add(time.Minute), t0); ReasonOf(err) != ErrPersist {
		t.Fatalf("Add with a broken file: %v, want replay-persist", err)
	}
	if !s.Contains(key(1), t0) {
		t.Error("a key that failed to persist was forgotten in memory")
	}
}

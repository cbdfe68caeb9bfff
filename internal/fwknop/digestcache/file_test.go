package digestcache

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func testEntry(i int) Entry {
	return Entry{Digest: fmt.Sprintf("digest%037d", i), Proto: 17,
		Src: netip.MustParseAddrPort("10.0.0.2:0"), Dst: netip.MustParseAddrPort("10.0.0.1:62201"), Created: time.Unix(1795310881, 0)}
}

// countSyncs replaces c's fsync by one that counts (and fails with err).
func countSyncs(c *File, err error) *atomic.Int32 {
	var n atomic.Int32
	orig := c.sync
	c.sync = func() error {
		n.Add(1)
		if err != nil {
			return err
		}
		return orig()
	}
	return &n
}

// A process killed right after Append (no Close, no fsync yet) leaves the
// entry in the file: Append wrote it with write(2).
func TestFileAppendSurvivesCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "digest.cache")
	c, err := OpenFile(path, Options{SyncDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 3 {
		if err := c.Append(testEntry(i)); err != nil {
			t.Fatal(err)
		}
	}
	es, sk, err := Load(path) // what a restarted daemon reads
	if err != nil || len(sk) != 0 || len(es) != 3 || es[2] != testEntry(2) {
		t.Fatalf("Load without Close = %+v %v %v", es, sk, err)
	}
}

// Without a SyncDelay every Append fsyncs before it returns.
func TestFileSyncEachAppend(t *testing.T) {
	c, err := OpenFile(filepath.Join(t.TempDir(), "digest.cache"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := countSyncs(c, nil)
	for i := range 3 {
		if err := c.Append(testEntry(i)); err != nil {
			t.Fatal(err)
		}
		if got := n.Load(); got != int32(i+1) {
			t.Fatalf("after %d appends: %d fsyncs", i+1, got)
		}
	}
	if err := c.Close(); err != nil || n.Load() != 3 {
		t.Fatalf("Close: %v, %d fsyncs", err, n.Load())
	}
}

// The group commit: the first entry is synced at once, the entries of
// the next SyncDelay with one fsync, nothing when idle, the rest on Close.
func TestFileGroupCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const delay = 50 * time.Millisecond
		c, err := OpenFile(filepath.Join(t.TempDir(), "digest.cache"), Options{SyncDelay: delay})
		if err != nil {
			t.Fatal(err)
		}
		n := countSyncs(c, nil)
		check := func(step string, want int32) {
			t.Helper()
			synctest.Wait()
			if got := n.Load(); got != want {
				t.Fatalf("%s: %d fsyncs, want %d", step, got, want)
			}
		}
		check("idle", 0)
		c.Append(testEntry(0))
		check("first append", 1)
		for i := 1; i < 10; i++ {
			c.Append(testEntry(i))
		}
		check("within the delay", 1)
		time.Sleep(delay)
		check("after the delay", 2)
		time.Sleep(10 * delay)
		check("idle again", 2)
		c.Append(testEntry(10))
		check("append after idle", 3)
		c.Append(testEntry(11)) // waits for the delay ...
		check("pending", 3)
		if err := c.Close(); err != nil { // ... or for Close
			t.Fatal(err)
		}
		check("Close", 4)
		if err := c.Append(testEntry(12)); !errors.Is(err, ErrClosed) {
			t.Fatalf("Append after Close: %v", err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
}

// A failed background fsync is reported and counted; appends go on
// (the entries are written), and Close returns the final fsync's error.
func TestFileSyncError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var reported []error
		var mu sync.Mutex
		c, err := OpenFile(filepath.Join(t.TempDir(), "digest.cache"), Options{SyncDelay: time.Millisecond, OnSyncError: func(err error) {
			mu.Lock()
			reported = append(reported, err)
			mu.Unlock()
		}})
		if err != nil {
			t.Fatal(err)
		}
		eio := errors.New("input/output error")
		countSyncs(c, eio)
		if err := c.Append(testEntry(0)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if err := c.Append(testEntry(1)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		mu.Lock()
		if len(reported) != 2 || !errors.Is(reported[0], eio) || c.SyncErrors() != 2 {
			t.Fatalf("reported %v, counted %d", reported, c.SyncErrors())
		}
		mu.Unlock()
		c.Append(testEntry(2))
		synctest.Wait()
		c.Append(testEntry(3))
		if err := c.Close(); !errors.Is(err, eio) {
			t.Fatalf("Close: %v", err)
		}
	})
}

// Appends from many goroutines while the committer syncs: every line
// whole, none lost (run with -race).
func TestFileConcurrentAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "digest.cache")
	c, err := OpenFile(path, Options{SyncDelay: 100 * time.Microsecond})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				if err := c.Append(testEntry(g*1000 + i)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	es, sk, err := Load(path)
	if err != nil || len(sk) != 0 || len(es) != 1600 {
		t.Fatalf("%d entries, skipped %v, %v", len(es), sk, err)
	}
}

// A last line torn by a power loss is skipped on Load, and the next
// entry still gets a line of its own.
func TestFileAfterTornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "digest.cache")
	if err := os.WriteFile(path, []byte(Header+testEntry(0).String()+"\n"+"digest0000 17 10.0"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := OpenFile(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Append(testEntry(1)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	es, sk, err := Load(path)
	if err != nil || len(es) != 2 || es[1] != testEntry(1) || len(sk) != 1 || sk[0].Line != 3 {
		t.Fatalf("Load = %+v %v %v", es, sk, err)
	}
}

package fwknopgw

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/fwknop/digestcache"
)

func entry(i int, at time.Time) digestcache.Entry {
	return digestcache.Entry{Digest: fmt.Sprintf("digest%037d", i), Proto: 17,
		Src: netip.MustParseAddrPort("10.99.0.2:0"), Dst: netip.MustParseAddrPort("10.99.0.1:62201"), Created: at}
}

// A digest.cache written by fwknopd is read; entries out of the window
// are dropped from memory and from the file; unreadable lines are
// reported and dropped too.
func TestOpenDigestsReadsFwknopdFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "digest.cache")
	old, live := entry(1, t0.Add(-time.Hour)), entry(2, t0.Add(-time.Minute))
	src := digestcache.Header + old.String() + "\n" + "garbage line\n" + live.String() + " trailing fields\n"
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	d, skipped, err := OpenDigests(path, 4*time.Minute, 0, t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if len(skipped) != 1 || skipped[0].Line != 3 {
		t.Fatalf("skipped %v", skipped)
	}
	if _, ok := d.Seen(old.Digest, t0); ok {
		t.Fatal("old digest kept")
	}
	if _, ok := d.Seen(live.Digest, t0); !ok {
		t.Fatal("live digest lost")
	}
	b, _ := os.ReadFile(path)
	if string(b) != digestcache.Header+live.String()+"\n" {
		t.Fatalf("file not rewritten:\n%s", b)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	// New digests are appended in fwknopd's format.
	e := entry(3, t0)
	if err := d.Add(e); err != nil {
		t.Fatal(err)
	}
	if err := d.Add(e); !errors.Is(err, ErrReplay) {
		t.Fatalf("second add: %v", err)
	}
	b, _ = os.ReadFile(path)
	entries, skipped2, _ := digestcache.Parse(strings.NewReader(string(b)))
	if len(entries) != 2 || len(skipped2) != 0 || entries[1] != e {
		t.Fatalf("file %q", b)
	}
}

func TestDigestsWindowAndForever(t *testing.T) {
	d := NewDigests(time.Minute, 0)
	if err := d.Add(entry(1, t0)); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.Seen(entry(1, t0).Digest, t0.Add(time.Minute)); !ok {
		t.Fatal("forgotten at the window's end")
	}
	// Past the window the same digest may be stored again (its packet
	// is stale anyway), and pruning forgets the old ones.
	if err := d.Add(entry(1, t0.Add(61*time.Second))); err != nil {
		t.Fatal(err)
	}
	for i := 2; i < 10; i++ {
		d.Add(entry(i, t0.Add(61*time.Second)))
	}
	d.Add(entry(100, t0.Add(3*time.Minute)))
	if d.Len() != 1 {
		t.Fatalf("%d digests after pruning", d.Len())
	}
	// Aging off: kept forever, as fwknopd does.
	f := NewDigests(0, 2)
	f.Add(entry(1, t0))
	if _, ok := f.Seen(entry(1, t0).Digest, t0.Add(1000*time.Hour)); !ok {
		t.Fatal("forgotten with aging off")
	}
	f.Add(entry(2, t0))
	if err := f.Add(entry(3, t0.Add(1000*time.Hour))); !errors.Is(err, ErrFull) {
		t.Fatalf("full: %v", err)
	}
	if err := f.Add(digestcache.Entry{Digest: "x"}); err == nil {
		t.Fatal("invalid entry accepted")
	}
}

// The file is compacted once it holds many pruned lines, and appends go
// on to the new file.
func TestDigestsCompaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "digest.cache")
	d, _, err := OpenDigests(path, time.Second, 0, t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	now := t0
	for i := range 1100 {
		now = now.Add(time.Second)
		if err := d.Add(entry(i, now)); err != nil {
			t.Fatal(err)
		}
	}
	entries, _, err := digestcache.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) > 100 || d.Len() > 3 {
		t.Fatalf("%d lines in the file, %d digests in memory", len(entries), d.Len())
	}
	if entries[len(entries)-1] != entry(1099, now) {
		t.Fatalf("last line %v", entries[len(entries)-1])
	}
	// Close, then Add reopens the file.
	d.Close()
	if err := d.Add(entry(5000, now)); err != nil {
		t.Fatal(err)
	}
	entries, _, _ = digestcache.Load(path)
	if entries[len(entries)-1].Digest != entry(5000, now).Digest {
		t.Fatal("append after reopen lost")
	}
}

func TestOpenDigestsErrors(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := OpenDigests(dir, time.Minute, 0, t0, nil); err == nil {
		t.Fatal("a directory accepted as digest.cache")
	}
	if _, _, err := OpenDigests(filepath.Join(dir, "missing", "digest.cache"), time.Minute, 0, t0, nil); err == nil {
		t.Fatal("missing directory accepted")
	}
}

// Adds from many goroutines while compactions replace the file and the
// committers sync it: every digest held in memory is in the file, and
// Close leaves a file that reads back whole (run with -race). Exactly
// one grant per packet: TestConcurrentCopies.
func TestDigestsConcurrentCompaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "digest.cache")
	d, _, err := OpenDigests(path, time.Hour, 0, t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.window = 50 * time.Millisecond // a short window: many compactions
	d.syncDelay = 100 * time.Microsecond
	var clock atomic.Int64 // milliseconds after t0, shared: roughly in order
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := range 2000 {
				now := t0.Add(time.Duration(clock.Add(1)) * time.Millisecond)
				e := entry(i, now) // the 4 goroutines add the same digests
				err := d.Add(e)
				if err != nil && !errors.Is(err, ErrReplay) {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	d.mu.Lock()
	held := make([]string, 0, len(d.m))
	for k := range d.m {
		held = append(held, k)
	}
	d.mu.Unlock()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	entries, skipped, err := digestcache.Load(path)
	if err != nil || len(skipped) != 0 {
		t.Fatalf("%v %v", skipped, err)
	}
	if len(entries) > 4*2000/2 {
		t.Errorf("%d lines: no compaction", len(entries))
	}
	inFile := map[string]bool{}
	for _, e := range entries {
		inFile[e.Digest] = true
	}
	for _, k := range held {
		if !inFile[k] {
			t.Errorf("digest %s held in memory, not in the file", k)
		}
	}
}

// Close syncs the digests the committer had not synced yet; a failed
// background fsync is counted.
func TestDigestsSyncErrorsCounted(t *testing.T) {
	d, _, err := OpenDigests(filepath.Join(t.TempDir(), "digest.cache"), time.Minute, 0, t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.syncFailed(errors.New("input/output error"))
	if d.SyncErrors() != 1 {
		t.Fatalf("SyncErrors = %d", d.SyncErrors())
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/gateway"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func readRecords(t *testing.T, path string) []Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %d %q: %v", len(out)+1, sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

func TestRecordsGrantsAndRejects(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "audit.log")
	l, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	l.Record(gateway.Decision{Time: t0, Kind: "grant", Src: netip.MustParseAddr("192.0.2.7"), Door: "ssh",
		Services: []string{"22/tcp"}, Latency: 1500 * time.Microsecond})
	l.Record(gateway.Decision{Time: t0.Add(time.Second), Kind: "reject", Src: netip.MustParseAddr("2001:db8::1"),
		Proto: "spa", Client: "alice", Reason: "replay"})
	l.Record(gateway.Decision{Time: t0.In(time.FixedZone("X", 3600)), Kind: "reset", Src: netip.MustParseAddr("198.51.100.1"), Door: "ssh", Reason: "wrong-port"})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	want := `{"time":"2026-05-01T12:00:00Z","kind":"grant","src":"192.0.2.7","door":"ssh","services":["22/tcp"],"latency_us":1500}
{"time":"2026-05-01T12:00:01Z","kind":"reject","src":"2001:db8::1","proto":"spa","client":"alice","reason":"replay"}
{"time":"2026-05-01T12:00:00Z","kind":"reset","src":"198.51.100.1","door":"ssh","reason":"wrong-port"}
`
	if string(raw) != want {
		t.Fatalf("log:\n%s\nwant:\n%s", raw, want)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != DefaultPerm {
		t.Fatalf("mode %v %v", st.Mode(), err)
	}
}

func TestAppendsAndConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte(`{"time":"2026-01-01T00:00:00Z","kind":"grant"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, each = 8, 400 // fewer than DefaultQueue: nothing can drop
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				l.Record(gateway.Decision{Time: t0, Kind: "grant", Door: fmt.Sprint(g), Reason: fmt.Sprint(i)})
			}
		}()
	}
	wg.Wait()
	l.Close()
	recs := readRecords(t, path)
	if len(recs) != 1+goroutines*each || l.Dropped() != 0 {
		t.Fatalf("%d records, %d dropped; want %d, 0", len(recs), l.Dropped(), 1+goroutines*each)
	}
	if !recs[0].Time.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("existing content not kept: %+v", recs[0])
	}
	// Per writer, records keep their order.
	next := map[string]int{}
	for _, r := range recs[1:] {
		if r.Reason != fmt.Sprint(next[r.Door]) {
			t.Fatalf("writer %s: record %s after %d", r.Door, r.Reason, next[r.Door])
		}
		next[r.Door]++
	}
}

func TestReopenAfterRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Write(Record{Time: t0, Kind: "grant", Src: "192.0.2.1"})
	if err := os.Rename(path, path+".1"); err != nil { // logrotate
		t.Fatal(err)
	}
	l.Write(Record{Time: t0, Kind: "grant", Src: "192.0.2.2"}) // still goes to the moved file
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	l.Write(Record{Time: t0, Kind: "reject", Src: "192.0.2.3"})
	l.Close()
	old, cur := readRecords(t, path+".1"), readRecords(t, path)
	if len(old) != 2 || old[1].Src != "192.0.2.2" || len(cur) != 1 || cur[0].Src != "192.0.2.3" {
		t.Fatalf("old %+v, new %+v", old, cur)
	}
	if err := l.Reopen(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Reopen after Close: %v", err)
	}
	l.Write(Record{Kind: "grant"}) // after Close: ignored, no panic
}

func TestReopenFailureKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	os.Rename(path, path+".1")
	if err := os.Mkdir(path, 0o700); err != nil { // something in the way
		t.Fatal(err)
	}
	if err := l.Reopen(); err == nil {
		t.Fatal("Reopen onto a directory succeeded")
	}
	l.Write(Record{Time: t0, Kind: "grant", Src: "192.0.2.9"})
	l.Close()
	if r := readRecords(t, path+".1"); len(r) != 1 || r[0].Src != "192.0.2.9" {
		t.Fatalf("records after a failed reopen: %+v", r)
	}
}

func TestFullQueueDropsAndReports(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := open(path, Options{Queue: 2, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 { // the writer is not running yet: 2 fit, 3 drop
		l.Write(Record{Time: t0, Kind: "reject", Reason: fmt.Sprint(i)})
	}
	if l.Dropped() != 3 {
		t.Fatalf("dropped %d, want 3", l.Dropped())
	}
	go l.run()
	l.Close()
	recs := readRecords(t, path)
	if len(recs) != 3 || recs[0].Reason != "0" || recs[1].Reason != "1" ||
		recs[2].Kind != "audit-dropped" || recs[2].Count != 3 {
		t.Fatalf("records %+v", recs)
	}
}

func TestRefusesNonRegularFiles(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	os.WriteFile(target, nil, 0o600)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{link, fifo, dir} {
		if l, err := Open(p, Options{}); err == nil {
			l.Close()
			t.Errorf("Open(%s) succeeded", p)
		}
	}
}

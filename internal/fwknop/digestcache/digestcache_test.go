package digestcache

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/fwknop"
)

// sample is a cache as fwknopd 2.6.10 wrote it (research note §4), plus
// lines it skips.
var sample = Header +
	"NQpsOyzw4RB8ZAJHh4HpWsArw+2lgMVyw4BGtE7rZ6Q 17 127.0.0.1 34065 127.0.0.1 62201 1795310881\n" +
	"\n" +
	"; a comment\n" +
	"mE0IyNZLdetgLkGuYqp5kPngjEyYPdqD4+cen2FNOc0 17 10.99.0.2 36981 10.99.0.1 62201 1795311687 trailing text\n" +
	"short line\n" +
	"abc 17 ::1 1 127.0.0.1 2 3\n" +
	"abc 300 1.2.3.4 1 127.0.0.1 2 3\n" +
	"abc 6 1.2.3.4 70000 127.0.0.1 2 3\n" +
	"abc 6 1.2.3.4 1 127.0.0.1 2 soon\n" +
	strings.Repeat("x", 2000) + " 17 1.2.3.4 1 1.2.3.4 2 3\n" +
	"lastline 6 192.0.2.1 1000 192.0.2.2 80 0"

func TestParse(t *testing.T) {
	entries, skipped, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 {
		t.Fatalf("%d entries: %+v", len(entries), entries)
	}
	want := Entry{
		Digest: "mE0IyNZLdetgLkGuYqp5kPngjEyYPdqD4+cen2FNOc0", Proto: 17,
		Src: netip.MustParseAddrPort("10.99.0.2:36981"), Dst: netip.MustParseAddrPort("10.99.0.1:62201"),
		Created: time.Unix(1795311687, 0),
	}
	if entries[1] != want {
		t.Errorf("entry 2 = %+v, want %+v", entries[1], want)
	}
	if entries[2].Digest != "lastline" || entries[2].Proto != 6 {
		t.Errorf("entry 3 = %+v", entries[2])
	}
	var lines []int
	for _, s := range skipped {
		if !errors.Is(s.Err, ErrSyntax) {
			t.Errorf("skipped %v does not wrap ErrSyntax", s)
		}
		lines = append(lines, s.Line)
	}
	if want := []int{6, 7, 8, 9, 10, 11}; !equalInts(lines, want) {
		t.Errorf("skipped lines %v, want %v", lines, want)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestWriteRoundTrip(t *testing.T) {
	entries, _, _ := Parse(strings.NewReader(sample))
	var buf bytes.Buffer
	if err := Write(&buf, entries); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(buf.String(), Header) ||
		!strings.Contains(buf.String(), "\nNQpsOyzw4RB8ZAJHh4HpWsArw+2lgMVyw4BGtE7rZ6Q 17 127.0.0.1 34065 127.0.0.1 62201 1795310881\n") {
		t.Errorf("written:\n%s", buf.String())
	}
	back, skipped, err := Parse(&buf)
	if err != nil || len(skipped) != 0 || len(back) != len(entries) {
		t.Fatalf("reparse: %d entries, %v, %v", len(back), skipped, err)
	}
	for i := range back {
		if back[i] != entries[i] {
			t.Errorf("entry %d: %+v != %+v", i, back[i], entries[i])
		}
	}
	if err := Write(&buf, []Entry{{Digest: "a b", Src: entries[0].Src, Dst: entries[0].Dst}}); err == nil {
		t.Error("digest with a blank written")
	}
	if err := Write(&buf, []Entry{{Digest: "ab", Src: netip.MustParseAddrPort("[::1]:1"), Dst: entries[0].Dst}}); err == nil {
		t.Error("IPv6 entry written")
	}
}

func TestPrune(t *testing.T) {
	base := time.Unix(1000, 0)
	var es []Entry
	for i := range 5 {
		es = append(es, Entry{Digest: string(rune('a' + i)), Created: base.Add(time.Duration(i) * time.Minute)})
	}
	got := Prune(es, base.Add(2*time.Minute))
	if len(got) != 3 || got[0].Digest != "c" {
		t.Errorf("Prune = %+v", got)
	}
}

func TestFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "digest.cache")
	if es, sk, err := Load(path); err != nil || es != nil || sk != nil {
		t.Fatalf("Load(missing) = %v %v %v", es, sk, err)
	}
	f, err := OpenFile(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	pkt := []byte("8PB3Te7XHndSMvh5a699")
	e := Entry{Digest: fwknop.ReplayDigest(pkt), Proto: 17,
		Src: netip.MustParseAddrPort("10.0.0.2:5000"), Dst: netip.MustParseAddrPort("10.0.0.1:62201"), Created: time.Unix(1795310881, 0)}
	if err := f.Append(e); err != nil {
		t.Fatal(err)
	}
	if err := f.Append(Entry{Digest: "x"}); err == nil {
		t.Error("appended an invalid entry")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopening must not write a second header.
	f, err = OpenFile(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	e2 := e
	e2.Digest = fwknop.ReplayDigest([]byte("other"))
	if err := f.Append(e2); err != nil {
		t.Fatal(err)
	}
	f.Close()
	b, _ := os.ReadFile(path)
	if strings.Count(string(b), "#") != 1 || !strings.HasPrefix(string(b), Header) {
		t.Errorf("file:\n%s", b)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	es, sk, err := Load(path)
	if err != nil || len(sk) != 0 || len(es) != 2 || es[0] != e || es[1] != e2 {
		t.Fatalf("Load = %+v %v %v", es, sk, err)
	}
	if err := Rewrite(path, es[1:]); err != nil {
		t.Fatal(err)
	}
	es, _, _ = Load(path)
	st, _ = os.Stat(path)
	if len(es) != 1 || es[0] != e2 || st.Mode().Perm() != 0o600 {
		t.Errorf("after Rewrite: %+v, mode %v", es, st.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte(Header))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 64<<10 {
			return
		}
		entries, _, err := Parse(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		var valid []Entry
		for _, e := range entries {
			if e.Validate() == nil {
				valid = append(valid, e)
			}
		}
		var buf bytes.Buffer
		if err := Write(&buf, valid); err != nil {
			t.Fatal(err)
		}
		back, skipped, _ := Parse(&buf)
		if len(skipped) != 0 || len(back) != len(valid) {
			t.Fatalf("rewrite of %d entries reparsed as %d (%v)", len(valid), len(back), skipped)
		}
		for i := range back {
			if back[i] != valid[i] {
				t.Fatalf("entry %d: %+v != %+v", i, back[i], valid[i])
			}
		}
	})
}

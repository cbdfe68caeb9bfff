package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sesame runs the command line in-process and returns stdout, stderr and
// the exit status.
func sesame(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return out.String(), errb.String(), code
}

func TestKeygenAndPubkey(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args   []string
		prefix string
	}{
		{[]string{"keygen", "-o", filepath.Join(dir, "new", "id.key")}, "sesame-id1:"},
		{[]string{"keygen", "--gateway", "-o", filepath.Join(dir, "gw.key")}, "sesame-gw1:"},
	} {
		out, errs, code := sesame(t, tc.args...)
		path := tc.args[len(tc.args)-1]
		if code != 0 || strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, tc.prefix) || len(strings.TrimSpace(out)) != 54 {
			t.Fatalf("%v: %d %q %q", tc.args, code, out, errs)
		}
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", path, fi, err)
		}
		again, _, code := sesame(t, "pubkey", path)
		if code != 0 || again != out {
			t.Fatalf("pubkey printed %q, keygen %q", again, out)
		}
		// Never overwrites.
		before, _ := os.ReadFile(path)
		if _, errs, code := sesame(t, tc.args...); code != 1 || !strings.Contains(errs, "exists") {
			t.Fatalf("overwrite: %d %q", code, errs)
		}
		if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
			t.Fatal("key file changed")
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, "new")); fi.Mode().Perm() != 0o700 {
		t.Fatalf("created directory mode %v", fi.Mode())
	}
	// A key readable by others is refused.
	os.Chmod(filepath.Join(dir, "gw.key"), 0o640)
	if _, errs, code := sesame(t, "pubkey", filepath.Join(dir, "gw.key")); code != 1 || !strings.Contains(errs, "accessible by others") {
		t.Fatalf("pubkey of a 0640 key: %d %q", code, errs)
	}
	for _, args := range [][]string{{"keygen"}, {"keygen", "-o", "x", "extra"}, {"pubkey"}, {"pubkey", "a", "b"}} {
		if _, _, code := sesame(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

//go:build unix

package spakey

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestWriteFileUmask(t *testing.T) {
	// Whatever the process umask (here permissive), the file is 0600.
	old := setUmask(0)
	defer setUmask(old)
	path := filepath.Join(t.TempDir(), "gw.key")
	k, _ := Generate(Gateway)
	if err := WriteFile(path, k); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v with umask 0", fi.Mode())
	}
}

func setUmask(m int) int { return syscall.Umask(m) }

package netns

import (
	"errors"
	"testing"
)

func TestLockIndex(t *testing.T) {
	dir := t.TempDir()
	a, err := lockIndex(dir, 5)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockIndex(dir, 5); !errors.Is(err, ErrIndexBusy) {
		t.Fatalf("second lock of index 5: %v, want ErrIndexBusy", err)
	}
	b, err := lockIndex(dir, 6)
	if err != nil {
		t.Fatalf("index 6: %v", err)
	}
	b.Close()
	a.Close()
	c, err := lockIndex(dir, 5)
	if err != nil {
		t.Fatalf("index 5 after release: %v", err)
	}
	c.Close()
}

package netns

import (
	"strings"
	"testing"
)

func TestTailBuffer(t *testing.T) {
	tb := newTailBuffer(8)
	_, _, changed := tb.snapshot()
	tb.Write([]byte("hello "))
	select {
	case <-changed:
	default:
		t.Fatal("write did not signal")
	}
	tb.Write([]byte("world!"))
	b, dropped, _ := tb.snapshot()
	if string(b) != "o world!" || dropped != 4 {
		t.Errorf("snapshot = %q, %d dropped; want %q, 4", b, dropped, "o world!")
	}
	tb.Write([]byte(strings.Repeat("x", 20)))
	b, dropped, _ = tb.snapshot()
	if string(b) != strings.Repeat("x", 8) || dropped != 24 {
		t.Errorf("snapshot = %q, %d dropped", b, dropped)
	}
}

package spagw

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sesame-gw/sesame/internal/replay"
)

// Every datagram Match accepts fits Shape: the in-kernel pre-filter built
// from it never drops a packet the handler would have looked at.
func TestShapeCoversMatch(t *testing.T) {
	f := newFixture(t)
	h := f.handler(t, replay.New(0))
	s := h.Shape()
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		p := make([]byte, r.IntN(1600))
		for j := range p {
			p[j] = byte(r.Uint32())
		}
		if len(p) > 0 && i%2 == 0 {
			p[0] = 0xD3
		}
		fits := len(p) >= s.MinLen && len(p) <= s.MaxLen && len(p) > 0 && slices.Contains(s.FirstBytes, p[0])
		if h.Precheck(p) == "" && !fits {
			t.Fatalf("%d-byte payload passes Precheck but not the shape", len(p))
		}
		if h.Match(p) && len(p) > 0 && !slices.Contains(s.FirstBytes, p[0]) {
			t.Fatalf("Match accepts first byte %#x outside the shape", p[0])
		}
	}
}

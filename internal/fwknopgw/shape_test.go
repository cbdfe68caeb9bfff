package fwknopgw

import (
	"encoding/base64"
	"math/rand/v2"
	"slices"
	"testing"
)

// Every payload Match accepts fits Shape, so the in-kernel pre-filter
// never drops a datagram the handler would have looked at.
func TestShapeCoversMatch(t *testing.T) {
	h := newHandler(t, settings(t, baseConf), nil)
	s := h.Shape()
	r := rand.New(rand.NewPCG(3, 4))
	matched := 0
	for i := 0; i < 20000; i++ {
		raw := make([]byte, r.IntN(1200))
		for j := range raw {
			raw[j] = byte(r.Uint32())
		}
		p := []byte(base64.RawStdEncoding.EncodeToString(raw))
		if len(p) > 0 && i%2 == 0 {
			p[0] = "89+/"[r.IntN(4)]
		}
		if !h.Match(p) {
			continue
		}
		matched++
		if len(p) < s.MinLen || len(p) > s.MaxLen || !slices.Contains(s.FirstBytes, p[0]) {
			t.Fatalf("Match accepts a %d-byte payload starting %q outside the shape", len(p), p[0])
		}
	}
	if matched == 0 {
		t.Fatal("no payload matched: the test proves nothing")
	}
}

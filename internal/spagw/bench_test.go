package spagw

import (
	"crypto/rand"
	"encoding/binary"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/benchcpu"
	"github.com/sesame-gw/sesame/internal/replay"
)

// freshKeys stands in for the packets a benchmark cannot seal fast enough:
// it records a distinct key for every Add (the packet's key with a counter
// in its first bytes) in the real persisted store, so a packet handed
// again costs what a new valid one does (a write(2) and an insert) instead
// of being refused as a replay before the policy.
type freshKeys struct {
	s *replay.Store
	n uint64
}

func (r *freshKeys) Add(k replay.Key, until, now time.Time) error {
	r.n++
	binary.LittleEndian.PutUint64(k[:8], r.n)
	return r.s.Add(k, until, now)
}

// Full verification and grant of valid packets (one X25519, one Ed25519
// verification, a persisted replay record, the policy), and the cost of
// garbage. Packets verified per core-second: the pkts/core-s metric, or
// 1e9 / ns/op with -cpu 1 on an idle machine.
func BenchmarkHandleValid(b *testing.B) {
	f := newFixture(b)
	h := f.handler(b, &freshKeys{s: f.store(b, replay.Options{Capacity: 1 << 22}, t0)})
	pkts := make([][]byte, 4096)
	for i := range pkts {
		pkts[i] = seal(b, f.alice, f.gw.PublicKey(), req(b, 30*time.Second, "22/tcp"), t0)
	}
	b.ReportAllocs()
	start := benchcpu.Now()
	for i := 0; b.Loop(); i++ {
		if v := h.Handle(t0, src4, gwIP, pkts[i%len(pkts)]); v.Reason != "" || len(v.Grants) == 0 {
			b.Fatal(v)
		}
	}
	benchcpu.Report(b, start)
}

func BenchmarkHandleGarbage(b *testing.B) {
	f := newFixture(b)
	h := f.handler(b, replay.New(0))
	pkt := make([]byte, 200)
	rand.Read(pkt)
	pkt[0], pkt[1] = 0xD3, 1
	for b.Loop() {
		if v := h.Handle(t0, src4, gwIP, pkt); v.Reason != "prefilter" {
			b.Fatal(v)
		}
	}
}

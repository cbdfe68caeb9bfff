package fwknopgw

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sesame-gw/sesame/internal/benchcpu"
)

// Full verification and grant of distinct valid packets: source match,
// replay lookup, HMAC-SHA256, AES-256-CBC, SHA-256 digest, fields,
// stanza checks, replay insert (memory; BenchmarkHandleValidPersisted
// for digest.cache). Packets verified per core-second: the pkts/core-s
// metric, or 1e9 / ns/op with -cpu 1 on an idle machine:
//
//	go test -run '^$' -bench Handle -cpu 1 ./internal/fwknopgw
func BenchmarkHandleValid(b *testing.B) {
	s := settings(b, baseConf)
	h := newHandler(b, s, nil)
	pkts := make([][]byte, 4096)
	for i := range pkts {
		pkts[i] = packet(b, keyA, "10.99.0.2,tcp/2222", t0)
	}
	start := benchcpu.Now()
	for i := 0; b.Loop(); i++ {
		if i > 0 && i%len(pkts) == 0 {
			b.StopTimer() // a fresh replay cache: every packet is new again
			h = newHandler(b, s, nil)
			b.StartTimer()
		}
		if v := h.Handle(t0, cli, gwIP, pkts[i%len(pkts)]); v.Reason != "" {
			b.Fatal(v)
		}
	}
	benchcpu.Report(b, start)
}

// BenchmarkHandleValid with digest.cache (ENABLE_DIGEST_PERSISTENCE Y,
// fwknopd's default): each accepted packet's line is written before the
// grant; the fsync is a group commit in the background. The wall time
// per packet is the grant path's; run it in parallel to see whether
// accepted packets serialise on the file:
//
//	go test -run '^$' -bench HandleValidPersisted -cpu 1,2 ./internal/fwknopgw
func BenchmarkHandleValidPersisted(b *testing.B) {
	s := settings(b, baseConf)
	const n = 4096
	pkts := make([][]byte, n)
	for i := range pkts {
		pkts[i] = packet(b, keyA, "10.99.0.2,tcp/2222", t0)
	}
	dir := b.TempDir()
	var d *Digests
	round := 0
	fresh := func() *Handler { // a fresh replay cache: every packet is new again
		if d != nil {
			d.Close()
		}
		round++
		var err error
		d, _, err = OpenDigests(fmt.Sprintf("%s/digest%d.cache", dir, round), Window(s.MaxPacketAge), 0, t0, nil)
		if err != nil {
			b.Fatal(err)
		}
		h, err := New(s, d, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		return h
	}
	h := fresh()
	defer func() { d.Close() }()
	var next atomic.Int64 // packets handed out in this round
	var mu sync.RWMutex   // held for writing while the round changes
	start := benchcpu.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.RLock()
			i := next.Add(1) - 1
			if i >= n {
				mu.RUnlock()
				mu.Lock()
				if next.Load() >= n {
					h = fresh()
					next.Store(0)
				}
				mu.Unlock()
				mu.RLock()
				i = next.Add(1) - 1
			}
			if v := h.Handle(t0, cli, gwIP, pkts[i%n]); v.Reason != "" {
				mu.RUnlock()
				b.Error(v)
				return
			}
			mu.RUnlock()
		}
	})
	benchcpu.Report(b, start)
}

// A packet with a valid shape and a wrong HMAC: what base64-looking
// garbage from a matching source costs (one HMAC per stanza tried).
func BenchmarkHandleWrongHMAC(b *testing.B) {
	h := newHandler(b, settings(b, baseConf), nil)
	wrong := keyA
	wrong.HMACKey = []byte("wrong hmac key")
	p := packet(b, wrong, "10.99.0.2,tcp/2222", t0)
	start := benchcpu.Now()
	for b.Loop() {
		if v := h.Handle(t0, cli, gwIP, p); v.Reason != ReasonHMAC {
			b.Fatal(v)
		}
	}
	benchcpu.Report(b, start)
}

// Garbage the engine's Match refuses: the cost on a shared port.
func BenchmarkMatchGarbage(b *testing.B) {
	h := newHandler(b, settings(b, baseConf), nil)
	p := []byte("+" + strings.Repeat("A", 150) + "\x00" + strings.Repeat("A", 50))
	for b.Loop() {
		if h.Match(p) {
			b.Fatal("matched")
		}
	}
}

package spa

import (
	"crypto/ed25519"
	"math/rand/v2"
	"testing"

	"github.com/sesame-gw/sesame/internal/benchcpu"
)

// BenchmarkOpen is the full per-packet cost on the gateway for a valid
// packet: mac1, X25519, ChaCha20-Poly1305, parse, lookup, Ed25519 verify.
func BenchmarkOpen(b *testing.B) {
	gw := gatewayKey(b, 1)
	alice := clientKey(10)
	o := newOpener(b, gw, clients{"alice": alice.Public().(ed25519.PublicKey)})
	pkt := seal(b, alice, gw, req22(), t0)
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	start := benchcpu.Now()
	for b.Loop() {
		if _, err := o.Open(pkt, t0); err != nil {
			b.Fatal(err)
		}
	}
	benchcpu.Report(b, start)
}

// BenchmarkOpenForgedMAC is the cost of a packet that passes mac1 (anyone
// with the gateway public key can compute it) but is garbage inside: one
// X25519 and a failed AEAD, no signature work.
func BenchmarkOpenForgedMAC(b *testing.B) {
	gw := gatewayKey(b, 1)
	o := newOpener(b, gw, clients{})
	r := rand.New(rand.NewPCG(1, 2))
	pkt := make([]byte, 200)
	for i := range pkt {
		pkt[i] = byte(r.Uint32())
	}
	pkt[0], pkt[1] = Magic, Version
	pkt = remac(pkt, gw.PublicKey())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := o.Open(pkt, t0); ReasonOf(err) != ErrDecrypt {
			b.Fatal(err)
		}
	}
}

func garbage(n, size int, header bool) [][]byte {
	r := rand.New(rand.NewPCG(3, 4))
	out := make([][]byte, n)
	for i := range out {
		l := size
		if l == 0 {
			l = 1 + r.IntN(1400)
		}
		p := make([]byte, l)
		for j := range p {
			p[j] = byte(r.Uint32())
		}
		if header && l >= 2 {
			p[0], p[1] = Magic, Version
		}
		out[i] = p
	}
	return out
}

// BenchmarkPrefilterGarbage: random datagrams of random length (what a UDP
// flood tool sends): rejected by length, magic or version.
func BenchmarkPrefilterGarbage(b *testing.B) {
	benchPrefilter(b, garbage(1024, 0, false))
}

// BenchmarkPrefilterForged200: 200-byte garbage with the right magic and
// version, rejected by mac1 (one HMAC-SHA256).
func BenchmarkPrefilterForged200(b *testing.B) {
	benchPrefilter(b, garbage(1024, 200, true))
}

// BenchmarkPrefilterForgedMax: the worst case, MaxSize bytes with the right
// magic and version.
func BenchmarkPrefilterForgedMax(b *testing.B) {
	benchPrefilter(b, garbage(1024, MaxSize, true))
}

func benchPrefilter(b *testing.B, pkts [][]byte) {
	o := newOpener(b, gatewayKey(b, 1), clients{})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if o.Prefilter(pkts[i%len(pkts)]) == nil {
			b.Fatal("garbage passed the pre-filter")
		}
		i++
	}
}

func BenchmarkSeal(b *testing.B) {
	gw := gatewayKey(b, 1).PublicKey()
	id := KeyIdentity(clientKey(10))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Seal(id, gw, req22(), t0); err != nil {
			b.Fatal(err)
		}
	}
}

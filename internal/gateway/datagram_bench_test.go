package gateway_test

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/base64"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/benchcpu"
	"github.com/sesame-gw/sesame/internal/capture"
	"github.com/sesame-gw/sesame/internal/fwknop/accessconf"
	"github.com/sesame-gw/sesame/internal/fwknopgw"
	"github.com/sesame-gw/sesame/internal/gateway"
	"github.com/sesame-gw/sesame/internal/packet"
	"github.com/sesame-gw/sesame/internal/policy"
	"github.com/sesame-gw/sesame/internal/replay"
	"github.com/sesame-gw/sesame/internal/service"
	"github.com/sesame-gw/sesame/internal/spagw"
)

// The datagram path of the engine with the real handlers (native SPA and
// fwknop on one port, as `sesame serve` runs them): what garbage costs
// before any public-key work. The pkts/core-s metric is measured in CPU
// time, so it stays meaningful on a shared machine:
//
//	go test -run '^$' -bench Datagram -cpu 1 ./internal/gateway

func benchEngine(b *testing.B) *gateway.Engine {
	b.Helper()
	gwKey, err := ecdh.X25519().NewPrivateKey(make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	set, err := policy.NewSet([]policy.Client{{Name: "c", Key: pub, Allow: []service.Range{{Proto: service.TCP, First: 22, Last: 22}}}})
	if err != nil {
		b.Fatal(err)
	}
	native, err := spagw.New(spagw.Settings{Key: gwKey, Clients: set}, replay.New(0), nil)
	if err != nil {
		b.Fatal(err)
	}
	ac, err := accessconf.Parse("access.conf", []byte("SOURCE ANY\nKEY_BASE64 a2V5a2V5a2V5a2V5\nHMAC_KEY_BASE64 aG1hY2htYWNobWFjaG1hYw==\nOPEN_PORTS tcp/22\n"), accessconf.Options{})
	if err != nil {
		b.Fatal(err)
	}
	s := fwknopgw.Settings{Stanzas: ac.Stanzas, MaxPacketAge: 120 * time.Second, Port: 62201}
	fwk, err := fwknopgw.New(s, fwknopgw.NewDigests(fwknopgw.Window(s.MaxPacketAge), 0), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	return gateway.New(gateway.Config{
		SPAPorts: []service.Service{{Proto: service.UDP, Port: 62201}},
		Handlers: []gateway.DatagramHandler{native, fwk},
	}, nil, nil)
}

// garbagePackets are n datagrams from n distinct sources, made by kind:
// random binary of random length, or 200 bytes with the native magic and
// version (they fail mac1: one HMAC-SHA256 each).
func garbagePackets(n int, magic bool) []capture.Packet {
	r := rand.New(rand.NewPCG(5, 6))
	out := make([]capture.Packet, n)
	for i := range out {
		size := 1 + r.IntN(1400)
		if magic {
			size = 200
		}
		p := make([]byte, size)
		for j := range p {
			p[j] = byte(r.Uint32())
		}
		if magic {
			p[0], p[1] = 0xD3, 0x01
		}
		src := netip.AddrFrom4([4]byte{10, 224, byte(i >> 8), byte(i)})
		out[i] = capture.Packet{Packet: packet.Packet{Src: src, Dst: netip.MustParseAddr("192.0.2.1"),
			Proto: service.UDP, DstPort: 62201, Payload: p}, Time: time.Unix(1_800_000_000, 0)}
	}
	return out
}

func benchDatagrams(b *testing.B, pkts []capture.Packet) {
	e := benchEngine(b)
	b.ReportAllocs() // garbage rejected at the default log level builds no log attributes
	start := benchcpu.Now()
	i := 0
	for b.Loop() {
		e.HandleDatagram(pkts[i%len(pkts)])
		i++
	}
	benchcpu.Report(b, start)
	if st := e.Stats(); st.Grants.Load() != 0 {
		b.Fatal("garbage was granted")
	}
}

// BenchmarkDatagramGarbage: random binary datagrams (what a UDP flood tool
// sends), rejected by Match (neither handler's shape) or the pre-checks.
func BenchmarkDatagramGarbage(b *testing.B) { benchDatagrams(b, garbagePackets(4096, false)) }

// BenchmarkDatagramForgedMagic: the native magic and version with a wrong
// mac1: one HMAC-SHA256 before the packet is dropped, no rate-limit token
// spent, no public-key work.
func BenchmarkDatagramForgedMagic(b *testing.B) { benchDatagrams(b, garbagePackets(4096, true)) }

// BenchmarkDatagramFwknopShaped: base64 text that passes
// fwknop.LooksLikeFwknop, from distinct sources: format pre-check, the
// per-source token bucket, then one HMAC per stanza.
func BenchmarkDatagramFwknopShaped(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 8))
	pkts := garbagePackets(4096, false)
	for i := range pkts {
		raw := make([]byte, 150)
		for j := range raw {
			raw[j] = byte(r.Uint32())
		}
		p := []byte(base64.RawStdEncoding.EncodeToString(raw))
		p[0] = '+'
		pkts[i].Payload = p
	}
	benchDatagrams(b, pkts)
}

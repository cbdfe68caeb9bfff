package capture_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/capture"
	"github.com/sesame-gw/sesame/internal/capture/capturetest"
	"github.com/sesame-gw/sesame/internal/packet"
	"github.com/sesame-gw/sesame/internal/service"
)

func pkt(port uint16, payload string) capture.Packet {
	return capture.Packet{Packet: packet.Packet{Src: netip.MustParseAddr("10.0.0.1"), Proto: service.UDP, DstPort: port, Payload: []byte(payload)}}
}

func TestMerge(t *testing.T) {
	a, b := capturetest.New(0), capturetest.New(0)
	m := capture.Merge(a, b)
	a.Inject(pkt(1, "a1"))
	a.Inject(pkt(2, "a2"))
	b.Inject(pkt(3, "b1"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := map[uint16]string{}
	var order []uint16
	for range 3 {
		p, err := m.ReadPacket(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got[p.DstPort] = string(p.Payload) // valid until the next read
		order = append(order, p.DstPort)
	}
	if got[1] != "a1" || got[2] != "a2" || got[3] != "b1" {
		t.Fatalf("payloads %v", got)
	}
	for i, p := range order {
		if p == 2 {
			for _, q := range order[i:] {
				if q == 1 {
					t.Fatalf("source a reordered: %v", order)
				}
			}
		}
	}
	if st := m.Stats(); st.Received != 3 {
		t.Fatalf("stats %+v", st)
	}
	short, c2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer c2()
	if _, err := m.ReadPacket(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("idle read = %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := m.ReadPacket(context.Background()); done <- err }()
	time.Sleep(10 * time.Millisecond)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, capture.ErrClosed) {
		t.Fatalf("read after close = %v", err)
	}
	m.Close() // idempotent
}

func TestMergeOneIsIdentity(t *testing.T) {
	a := capturetest.New(0)
	if capture.Merge(a) != capture.Source(a) {
		t.Fatal("Merge of one source wraps it")
	}
}

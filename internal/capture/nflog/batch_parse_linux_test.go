package nflog

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// nflogMsg builds one NFULNL_MSG_PACKET as the kernel sends it, with the
// given attributes, followed by its netlink header.
func nflogMsg(tb testing.TB, attrs map[uint16][]byte) []byte {
	ae := netlink.NewAttributeEncoder()
	for _, typ := range []uint16{nfulaTimestamp, nfulaIfindexIn, nfulaPayload} {
		if v, ok := attrs[typ]; ok {
			ae.Bytes(typ, v)
		}
	}
	a, err := ae.Encode()
	if err != nil {
		tb.Fatal(err)
	}
	data := append([]byte{unix.AF_INET, 0, 0, 7}, a...)
	m := netlink.Message{Header: netlink.Header{Type: nfnlSubsysULOG<<8 | nfulnlMsgPacket, Length: uint32(16 + len(data))},
		Data: data}
	b, err := m.MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func ts(sec, usec uint64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, sec), usec)
}

func TestParseBatch(t *testing.T) {
	var batch []byte
	batch = append(batch, nflogMsg(t, map[uint16][]byte{nfulaTimestamp: ts(1_800_000_000, 250_000), nfulaIfindexIn: {0, 0, 0, 3}, nfulaPayload: []byte("first")})...)
	batch = append(batch, nflogMsg(t, map[uint16][]byte{nfulaPayload: []byte("second")})...)
	batch = append(batch, nflogMsg(t, map[uint16][]byte{nfulaTimestamp: ts(1, 2)})...) // no payload: malformed
	type got struct {
		p      string
		t      time.Time
		dev    uint32
		hasDev bool
	}
	var out []got
	bad := parseBatch(batch, func(p []byte, t time.Time, dev uint32, has bool) { out = append(out, got{string(p), t, dev, has}) })
	if bad != 1 || len(out) != 2 {
		t.Fatalf("malformed %d, delivered %+v", bad, out)
	}
	if out[0].p != "first" || !out[0].t.Equal(time.Unix(1_800_000_000, 250_000_000)) || out[0].dev != 3 || !out[0].hasDev {
		t.Errorf("first: %+v", out[0])
	}
	if out[1].p != "second" || !out[1].t.IsZero() || out[1].hasDev {
		t.Errorf("second: %+v", out[1])
	}
	never := func([]byte, time.Time, uint32, bool) { t.Error("delivered from junk") }
	parseBatch([]byte{1, 2, 3}, never) // shorter than a header: nothing
	cut := nflogMsg(t, map[uint16][]byte{nfulaPayload: []byte("cut short")})
	if bad := parseBatch(cut[:len(cut)-4], never); bad != 1 {
		t.Errorf("a message longer than the buffer: %d malformed, want 1", bad)
	}
}

// FuzzParseBatch: any bytes (the kernel's framing around attacker
// payloads) are walked without panicking, and every payload delivered lies
// inside the buffer.
func FuzzParseBatch(f *testing.F) {
	f.Add(nflogMsg(f, map[uint16][]byte{nfulaTimestamp: ts(5, 6), nfulaIfindexIn: {0, 0, 0, 1}, nfulaPayload: []byte("knock")}))
	f.Add(append(nflogMsg(f, map[uint16][]byte{nfulaPayload: {0x45}}), nflogMsg(f, map[uint16][]byte{nfulaPayload: nil})...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<16 {
			return
		}
		parseBatch(b, func(p []byte, _ time.Time, _ uint32, _ bool) {
			if len(p) > len(b) {
				t.Fatalf("payload of %d bytes from a %d-byte buffer", len(p), len(b))
			}
		})
	})
}

// BenchmarkParseBatch: one kernel batch of 64 logged SYNs.
func BenchmarkParseBatch(b *testing.B) {
	syn := make([]byte, 40)
	syn[0] = 0x45
	var batch []byte
	for range 64 {
		batch = append(batch, nflogMsg(b, map[uint16][]byte{nfulaTimestamp: ts(5, 6), nfulaIfindexIn: {0, 0, 0, 1}, nfulaPayload: syn})...)
	}
	n := 0
	for b.Loop() {
		parseBatch(batch, func([]byte, time.Time, uint32, bool) { n++ })
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
}

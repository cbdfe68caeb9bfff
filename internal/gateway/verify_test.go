package gateway

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/capture"
	"github.com/sesame-gw/sesame/internal/packet"
	"github.com/sesame-gw/sesame/internal/service"
)

// quietHandler rejects "q:" as unauthenticated garbage (Quiet) and "n:" as
// an authenticated client's refused request.
type quietHandler struct{}

func (quietHandler) Name() string { return "quiet" }
func (quietHandler) Match(payload []byte) bool {
	return bytes.HasPrefix(payload, []byte("q:")) || bytes.HasPrefix(payload, []byte("n:"))
}
func (quietHandler) Handle(_ time.Time, _, _ netip.Addr, payload []byte) Verdict {
	if payload[0] == 'q' {
		return Verdict{Reason: "hmac", Detail: "no stanza's key", Quiet: true}
	}
	return Verdict{Client: "mallory", Reason: "service-not-allowed", Detail: "22/tcp"}
}

func datagramEngine(level slog.Level, log *bytes.Buffer) *Engine {
	return New(Config{
		SPAPorts:   []service.Service{spaP},
		Handlers:   []DatagramHandler{quietHandler{}, &fakeHandler{}},
		Logger:     slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: level})),
		SourceRate: 1e9, SourceBurst: 1e9,
	}, nil, nil)
}

func dgram(payload string) capture.Packet {
	return capture.Packet{Packet: packet.Packet{Src: alice, Dst: gw, Proto: service.UDP, DstPort: spaP.Port, Payload: []byte(payload)},
		Time: time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)}
}

// At the default level a flood of garbage builds no log records: rejects
// that would only be logged at debug allocate nothing in the engine.
func TestGarbageRejectsDoNotAllocate(t *testing.T) {
	var log bytes.Buffer
	e := datagramEngine(slog.LevelInfo, &log)
	for _, payload := range []string{"q:forged", "no:junk", "garbage"} {
		p := dgram(payload)
		e.HandleDatagram(p) // the source's bucket is made once
		if n := testing.AllocsPerRun(100, func() { e.HandleDatagram(p) }); n != 0 {
			t.Errorf("%q: %v allocations per reject, want 0", payload, n)
		}
	}
	if log.Len() != 0 {
		t.Errorf("debug-only rejects logged at info:\n%s", &log)
	}
	if got := e.Stats().Rejected.Load(); got != 3*102 {
		t.Errorf("rejected %d, want %d", got, 3*102)
	}
}

// The log lines are unchanged: an authenticated client's reject at info
// (with its detail), garbage at debug only.
func TestRejectLogLevels(t *testing.T) {
	var info bytes.Buffer
	e := datagramEngine(slog.LevelInfo, &info)
	e.HandleDatagram(dgram("n:1"))
	e.HandleDatagram(dgram("q:1"))
	if s := info.String(); !strings.Contains(s, "level=INFO msg=reject proto=quiet src=192.0.2.10 reason=service-not-allowed client=mallory detail=22/tcp") ||
		strings.Contains(s, "reason=hmac") {
		t.Errorf("info log:\n%s", s)
	}
	var debug bytes.Buffer
	e = datagramEngine(slog.LevelDebug, &debug)
	for _, p := range []string{"q:1", "no:junk", "garbage"} {
		e.HandleDatagram(dgram(p))
	}
	for _, want := range []string{
		"level=DEBUG msg=reject proto=quiet src=192.0.2.10 reason=hmac detail=\"no stanza's key\"",
		"level=DEBUG msg=reject proto=fake src=192.0.2.10 reason=prefilter",
		"level=DEBUG msg=reject src=192.0.2.10 reason=unknown-format size=7",
	} {
		if !strings.Contains(debug.String(), want) {
			t.Errorf("debug log lacks %q:\n%s", want, &debug)
		}
	}
}

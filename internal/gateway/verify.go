package gateway

import (
	"context"
	"log/slog"
	"sync"

	"github.com/sesame-gw/sesame/internal/capture"
)

// maxDatagram bounds what is copied from a capture into the verification
// queue; larger datagrams are no SPA packet of any supported format.
const maxDatagram = 2048

type datagram struct {
	p   capture.Packet
	buf *[maxDatagram]byte
}

var bufPool = sync.Pool{New: func() any { return new([maxDatagram]byte) }}

// queueDatagram copies p's payload and queues it for the workers, or drops
// it (counted) when the queue is full: the capture loop never waits.
func (e *Engine) queueDatagram(p capture.Packet) {
	e.stats.Datagrams.Add(1)
	if len(p.Payload) > maxDatagram {
		e.stats.Rejected.Add(1)
		if e.debugEnabled() {
			e.log.Debug("reject", "src", p.Src, "reason", "too-long", "size", len(p.Payload))
		}
		return
	}
	buf := bufPool.Get().(*[maxDatagram]byte)
	n := copy(buf[:], p.Payload)
	p.Payload = buf[:n]
	select {
	case e.datagrams <- datagram{p: p, buf: buf}:
	default:
		bufPool.Put(buf)
		e.stats.DatagramsDropped.Add(1)
	}
}

// verify is one worker: rate limit, then the first matching handler.
func (e *Engine) verify(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-e.datagrams:
			e.handleDatagram(d.p)
			bufPool.Put(d.buf)
		}
	}
}

// HandleDatagram runs one datagram through the same path as the workers
// (for tests). Safe for concurrent use.
func (e *Engine) HandleDatagram(p capture.Packet) { e.handleDatagram(p) }

func (e *Engine) handleDatagram(p capture.Packet) {
	now := p.Time
	if now.IsZero() {
		now = e.now()
	}
	for _, h := range e.dgram.Load().handlers {
		if !h.Match(p.Payload) {
			continue
		}
		if pc, ok := h.(Prechecker); ok {
			if r := pc.Precheck(p.Payload); r != "" {
				e.stats.Rejected.Add(1)
				if e.debugEnabled() {
					e.log.Debug("reject", "proto", h.Name(), "src", p.Src, "reason", r)
				}
				return
			}
		}
		if !e.perSource.allow(p.Src, now) {
			e.stats.RateLimited.Add(1)
			if e.debugEnabled() {
				e.log.Debug("reject", "proto", h.Name(), "src", p.Src, "reason", "rate-limited")
			}
			return
		}
		v := h.Handle(now, p.Src, p.Dst, p.Payload)
		if v.Reason != "" {
			e.stats.Rejected.Add(1)
			if !v.Quiet {
				e.decisions.add(Decision{Time: now, Kind: "reject", Src: p.Src, Proto: h.Name(), Client: v.Client, Reason: v.Reason})
			}
			info := !v.Quiet && e.limit.allow()
			if !info && !e.debugEnabled() {
				return // nothing to log: build no attributes (a garbage flood's hot path)
			}
			attrs := []any{"proto", h.Name(), "src", p.Src, "reason", v.Reason}
			if v.Client != "" {
				attrs = append(attrs, "client", v.Client)
			}
			if v.Detail != "" {
				attrs = append(attrs, "detail", v.Detail)
			}
			if info {
				e.log.Info("reject", attrs...)
			} else {
				e.log.Debug("reject", attrs...)
			}
			return
		}
		e.stats.Grants.Add(1)
		e.writer.grant(grantRequest{grants: v.Grants, proto: h.Name(), client: v.Client, at: now, after: v.After})
		return
	}
	e.stats.Rejected.Add(1)
	if e.debugEnabled() {
		e.log.Debug("reject", "src", p.Src, "reason", "unknown-format", "size", len(p.Payload))
	}
}

// debugEnabled reports whether debug records are logged. Reject paths ask
// first, so a flood of garbage at the default level builds no log
// attributes (boxing the source address alone allocates).
func (e *Engine) debugEnabled() bool {
	return e.log.Enabled(context.Background(), slog.LevelDebug)
}

package gateway

import (
	"context"
	"log/slog"
	"time"

	"github.com/sesame-gw/sesame/internal/firewall"
)

// writer owns every firewall change. One goroutine drains the queued
// requests and coalesces them into one transaction per kind, so a burst of
// grants costs about one netlink round trip, and a slow transaction never
// blocks packet processing (floor.md: a Flush can stall for milliseconds).
type writer struct {
	rec    *decisionRing
	fw     firewall.Firewall
	log    *slog.Logger
	stats  *Stats
	grants chan grantRequest
}

type grantRequest struct {
	grants []firewall.Grant
	door   string    // knock door, or
	proto  string    // the SPA protocol ("spa", "fwknop")
	client string    // and the authenticated client
	at     time.Time // when the packet arrived, for the latency log
	after  func(error)
}

const maxBatch = 1024

func newWriter(fw firewall.Firewall, log *slog.Logger, stats *Stats, rec *decisionRing) *writer {
	return &writer{rec: rec, fw: fw, log: log, stats: stats, grants: make(chan grantRequest, 4096)}
}

// grant queues a grant. It blocks only when 4096 grants are already
// waiting: a legitimate grant is never dropped.
func (w *writer) grant(r grantRequest) { w.grants <- r }

func (w *writer) run(ctx context.Context) {
	var reqs []grantRequest
	for {
		reqs = reqs[:0]
		select {
		case <-ctx.Done():
			// Grants decided before shutdown still go in.
			reqs = drainGrants(w.grants, reqs)
			if len(reqs) > 0 {
				fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				w.applyGrants(fctx, reqs)
				cancel()
			}
			return
		case r := <-w.grants:
			reqs = append(reqs, r)
		}
		reqs = drainGrants(w.grants, reqs)
		w.applyGrants(ctx, reqs)
	}
}

func drainGrants(ch chan grantRequest, reqs []grantRequest) []grantRequest {
	for len(reqs) < maxBatch {
		select {
		case r := <-ch:
			reqs = append(reqs, r)
		default:
			return reqs
		}
	}
	return reqs
}

func (w *writer) applyGrants(ctx context.Context, reqs []grantRequest) {
	var all []firewall.Grant
	for _, r := range reqs {
		all = append(all, r.grants...)
	}
	err := w.fw.Grant(ctx, all)
	if err != nil && len(reqs) > 1 {
		// One bad request must not sink the others: retry one by one.
		for _, r := range reqs {
			w.report(r, w.fw.Grant(ctx, r.grants))
		}
		return
	}
	for _, r := range reqs {
		w.report(r, err)
	}
}

func (w *writer) report(r grantRequest, err error) {
	if r.after != nil {
		defer r.after(err)
	}
	if len(r.grants) == 0 {
		return
	}
	g := r.grants[0]
	services := make([]string, len(r.grants))
	for i, x := range r.grants {
		services[i] = x.Service.String()
	}
	attrs := []any{"src", g.Addr}
	if r.door != "" {
		attrs = append(attrs, "door", r.door)
	} else {
		attrs = append(attrs, "proto", r.proto, "client", r.client)
	}
	attrs = append(attrs, "services", services)
	d := Decision{Time: time.Now(), Kind: "grant", Src: g.Addr, Door: r.door, Proto: r.proto, Client: r.client, Services: services, Latency: time.Since(r.at)}
	if err != nil {
		w.stats.GrantErrors.Add(1)
		d.Kind, d.Reason = "grant-failed", err.Error()
		w.rec.add(d)
		w.log.Error("grant failed", append(attrs, "err", err)...)
		return
	}
	w.rec.add(d)
	w.log.Info("grant", append(attrs, "ttl", g.TTL, "latency", d.Latency.Round(time.Microsecond))...)
}

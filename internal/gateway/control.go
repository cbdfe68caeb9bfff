package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/sesame-gw/sesame/internal/firewall"
	"github.com/sesame-gw/sesame/internal/knock"
	"github.com/sesame-gw/sesame/internal/service"
)

// ErrNotRunning is returned by the control methods when Run is not active.
var ErrNotRunning = errors.New("gateway: engine not running")

// do runs fn on the engine's goroutine (which owns the knock machine) and
// waits for it.
func (e *Engine) do(ctx context.Context, fn func()) error {
	done := make(chan struct{})
	select {
	case e.control <- func() { fn(); close(done) }:
	case <-ctx.Done():
		return ctx.Err()
	case <-e.stopped:
		return ErrNotRunning
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Reload applies a new configuration atomically: the firewall layout is
// replaced in one transaction (live grants survive), then doors, handlers
// and SPA ports are swapped. Knock progress on doors whose definition did
// not change survives. If the firewall refuses the new layout, nothing
// changes and the error is returned. cfg.Logger and cfg.Now are ignored
// (the engine keeps its own).
func (e *Engine) Reload(ctx context.Context, cfg Config) error {
	var err error
	derr := e.do(ctx, func() {
		if err = e.fw.Setup(ctx, kernelLayout(cfg.Layout, cfg)); err != nil {
			err = fmt.Errorf("firewall setup: %w", err)
			return
		}
		doors := make([]knock.Door, len(cfg.Doors))
		for i, d := range cfg.Doors {
			doors[i] = d.Door
		}
		e.knock = e.knock.Replace(doors, cfg.MaxSources)
		cfg.Logger, cfg.Now = e.cfg.Logger, e.cfg.Now
		if cfg.Workers <= 0 {
			cfg.Workers = e.cfg.Workers
		}
		if cfg.SourceRate <= 0 {
			cfg.SourceRate, cfg.SourceBurst = e.cfg.SourceRate, e.cfg.SourceBurst
		}
		e.cfg = cfg
		e.dgram.Store(newDatagramConfig(cfg))
	})
	if derr != nil {
		return derr
	}
	if err == nil {
		e.log.Info("configuration reloaded", "doors", len(cfg.Doors), "protected", len(cfg.Layout.Protected), "handlers", len(cfg.Handlers))
	}
	return err
}

// Revoke ends grants early: every grant of addr, or only svc when valid.
// It returns the grants removed.
func (e *Engine) Revoke(ctx context.Context, addr netip.Addr, svc service.Service) ([]firewall.Grant, error) {
	live, err := e.fw.List(ctx)
	if err != nil {
		return nil, err
	}
	var gone []firewall.Grant
	for _, g := range live {
		if g.Addr == addr.Unmap() && (!svc.Valid() || g.Service == svc) {
			gone = append(gone, g)
		}
	}
	if len(gone) == 0 {
		return nil, nil
	}
	if err := e.fw.Revoke(ctx, gone); err != nil {
		return nil, err
	}
	services := make([]string, len(gone))
	for i, g := range gone {
		services[i] = g.Service.String()
	}
	e.decisions.add(Decision{Time: e.now(), Kind: "revoke", Src: addr, Services: services, Reason: "revoked by admin"})
	e.log.Info("revoke", "src", addr, "services", services)
	return gone, nil
}

// Status is a snapshot of the engine for `sesame status`.
type Status struct {
	Started  time.Time         `json:"started"`
	Doors    []DoorStatus      `json:"doors"`
	Clients  []string          `json:"clients,omitempty"`
	Grants   []GrantStatus     `json:"grants"`
	Tracking int               `json:"tracking"` // sources part-way through a sequence
	Recent   []Decision        `json:"recent"`
	Counters map[string]uint64 `json:"counters"`
}

// DoorStatus describes one door.
type DoorStatus struct {
	Name     string   `json:"name"`
	Sequence []string `json:"sequence"`
	Open     []string `json:"open"`
	Duration string   `json:"duration"`
}

// GrantStatus is one live grant.
type GrantStatus struct {
	Src       netip.Addr `json:"src"`
	Service   string     `json:"service"`
	Remaining string     `json:"remaining"`
}

// ClientLister is implemented by handlers that know their clients by name.
type ClientLister interface{ Clients() []string }

// Status returns a snapshot.
func (e *Engine) Status(ctx context.Context) (Status, error) {
	var st Status
	err := e.do(ctx, func() {
		st.Started = e.started
		st.Tracking = e.knock.Len()
		for _, d := range e.cfg.Doors {
			ds := DoorStatus{Name: d.Name, Duration: d.Duration.String()}
			for _, s := range d.Sequence {
				ds.Sequence = append(ds.Sequence, s.String())
			}
			for _, s := range d.Open {
				ds.Open = append(ds.Open, s.String())
			}
			st.Doors = append(st.Doors, ds)
		}
		for _, h := range e.cfg.Handlers {
			if cl, ok := h.(ClientLister); ok {
				st.Clients = append(st.Clients, cl.Clients()...)
			}
		}
	})
	if err != nil {
		return st, err
	}
	live, err := e.fw.List(ctx)
	if err != nil {
		return st, err
	}
	sort.Slice(live, func(i, j int) bool { return live[i].TTL < live[j].TTL })
	for _, g := range live {
		st.Grants = append(st.Grants, GrantStatus{Src: g.Addr, Service: g.Service.String(), Remaining: g.TTL.Round(time.Second).String()})
	}
	st.Recent = e.decisions.list()
	s := &e.stats
	st.Counters = map[string]uint64{
		"packets": s.Packets.Load(), "knocks": s.Knocks.Load(), "resets": s.Resets.Load(),
		"grants": s.Grants.Load(), "grant_errors": s.GrantErrors.Load(), "capture_queue_drops": s.Dropped.Load(),
		"datagrams": s.Datagrams.Load(), "datagrams_dropped": s.DatagramsDropped.Load(),
		"rate_limited": s.RateLimited.Load(), "rejected": s.Rejected.Load(),
	}
	if e.src != nil {
		cs := e.src.Stats()
		st.Counters["capture_received"] = cs.Received
		st.Counters["capture_malformed"] = cs.Malformed
		st.Counters["capture_dropped"] = cs.Dropped
	}
	return st, nil
}

package main

import (
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/sesame-gw/sesame/internal/config"
	"github.com/sesame-gw/sesame/internal/gateway"
	"github.com/sesame-gw/sesame/internal/replay"
	"github.com/sesame-gw/sesame/internal/spagw"
	"github.com/sesame-gw/sesame/internal/spakey"
)

// addSPA wires native SPA into gc when the config has an [spa] table: it
// reads the gateway key and the clients (and, with [pki], the certificate
// verifier: serve_pki.go), and adds a handler and its UDP
// port (the firewall layout already watches the port: config.Watched
// includes it). It is called at start and again on every reload; the
// replay state is shared by all of them (see sharedReplay), and so is the
// certificate verifier while the CA and the CRL stay the same. The returned
// function releases this call's hold on it: call it when gc is no longer
// in use (after a successful reload replaced it, after a refused one, or
// when the engine has stopped).
func addSPA(gc *gateway.Config, cfg *config.Config, log *slog.Logger) (func(), error) {
	port, ok := cfg.SPAPort()
	if !ok {
		return func() {}, nil
	}
	settings, err := spagw.FromConfig(cfg)
	if err != nil {
		return nil, err
	}
	releasePKI, err := addPKI(&settings, cfg, log) // serve_pki.go
	if err != nil {
		return nil, err
	}
	now := time.Now()
	store, releaseReplay, err := replays.acquire(cfg, now, log)
	if err != nil {
		releasePKI()
		return nil, err
	}
	release := func() { releaseReplay(); releasePKI() }
	h, err := spagw.New(settings, store, log)
	if err != nil {
		release()
		return nil, err
	}
	if expired := settings.Clients.Expired(now); len(expired) > 0 {
		log.Warn("expired clients are refused", "clients", expired)
	}
	gc.SPAPorts = append(gc.SPAPorts, port)
	gc.Handlers = append(gc.Handlers, h)
	log.Info("native SPA", "port", port, "clients", settings.Clients.Len(), "window", settings.Window,
		"replay_entries", store.Len(), "gateway_key", publicOf(settings))
	return release, nil
}

func publicOf(s spagw.Settings) string {
	k, err := spakey.NewGateway(s.Key)
	if err != nil {
		return ""
	}
	return k.Public().String()
}

// sharedReplay keeps one replay.Store per state file for the life of the
// daemon. A reload builds its new handler while the old one still runs;
// opening the file a second time would compact it under the first Store,
// whose later records would go to the unlinked file and be forgotten
// (reopening a replay). So handlers share the Store, counted; the file is
// closed when the last configuration using it is released.
type sharedReplay struct {
	mu sync.Mutex
	m  map[string]*replayRef
}

type replayRef struct {
	s    *replay.Store
	opt  replay.Options
	refs int
}

var replays = sharedReplay{m: map[string]*replayRef{}}

func (r *sharedReplay) acquire(cfg *config.Config, now time.Time, log *slog.Logger) (*replay.Store, func(), error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	path := filepath.Join(cfg.Gateway.StateDir, spagw.ReplayFile)
	opt := replay.Options{Capacity: cfg.SPA.ReplayCapacity, Sync: cfg.SPA.ReplaySync}
	ref, ok := r.m[path]
	if ok {
		if ref.opt != opt {
			log.Warn("changed setting applies at the next restart", "key", "spa.replay_capacity, spa.replay_sync")
		}
	} else {
		s, err := spagw.OpenReplay(cfg, now)
		if err != nil {
			return nil, nil, err
		}
		ref = &replayRef{s: s, opt: opt}
		r.m[path] = ref
	}
	ref.refs++
	var once sync.Once
	release := func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			if ref.refs--; ref.refs == 0 {
				ref.s.Close()
				delete(r.m, path)
			}
		})
	}
	return ref.s, release, nil
}

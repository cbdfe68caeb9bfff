package main

import (
	"log/slog"
	"time"

	"github.com/sesame-gw/sesame/internal/config"
	"github.com/sesame-gw/sesame/internal/gateway"
	"github.com/sesame-gw/sesame/internal/spagw"
	"github.com/sesame-gw/sesame/internal/spakey"
)

// addSPA wires native SPA into gc when the config has an [spa] table: it
// reads the gateway key, opens the replay state in state_dir, and adds the
// handler and its UDP port (the firewall layout already watches the port:
// config.Watched includes it). The returned function closes the replay
// state; call it when the engine has stopped.
func addSPA(gc *gateway.Config, cfg *config.Config, log *slog.Logger) (func(), error) {
	port, ok := cfg.SPAPort()
	if !ok {
		return func() {}, nil
	}
	settings, err := spagw.FromConfig(cfg)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	store, err := spagw.OpenReplay(cfg, now)
	if err != nil {
		return nil, err
	}
	h, err := spagw.New(settings, store, log)
	if err != nil {
		store.Close()
		return nil, err
	}
	if expired := settings.Clients.Expired(now); len(expired) > 0 {
		log.Warn("expired clients are refused", "clients", expired)
	}
	gc.SPAPorts = append(gc.SPAPorts, port)
	gc.Handlers = append(gc.Handlers, h)
	log.Info("native SPA", "port", port, "clients", settings.Clients.Len(), "window", settings.Window,
		"replay_entries", store.Len(), "gateway_key", publicOf(settings))
	return func() { store.Close() }, nil
}

func publicOf(s spagw.Settings) string {
	k, err := spakey.NewGateway(s.Key)
	if err != nil {
		return ""
	}
	return k.Public().String()
}

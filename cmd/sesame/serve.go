package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/sesame-gw/sesame/internal/config"
	"github.com/sesame-gw/sesame/internal/firewall"
	"github.com/sesame-gw/sesame/internal/firewall/nftables"
	"github.com/sesame-gw/sesame/internal/gateway"
)

func init() {
	register("serve", command{summary: "run the gateway (root): serve -c /etc/sesame/sesame.toml", run: runServe})
}

func runServe(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	path := fs.String("c", "/etc/sesame/sesame.toml", "configuration file")
	fs.StringVar(path, "config", "/etc/sesame/sesame.toml", "configuration file")
	kd := addKnockdFlags(fs) // serve_knockd.go
	fk := addFwknopFlags(fs) // serve_fwknop.go
	check := fs.Bool("check", false, "validate the configuration and print the nftables table it would install; touch nothing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, err: fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if *check {
		return runCheck(*path, kd, stdout, stderr) // check.go
	}
	if kd.enabled() {
		return runServeKnockd(kd, stderr)
	}
	cfg, err := fk.loadConfig(fs, path, kd) // config.Load, or none with --fwknop-access alone
	if err != nil {
		return err
	}
	defer fk.close()
	log, err := newLogger(stderr, cfg.Gateway.LogFormat, cfg.Gateway.LogLevel)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	fw, err := nftables.New(nftables.WithLogger(log))
	if err != nil {
		return fmt.Errorf("firewall: %w", err)
	}
	defer fw.Close()
	src, err := openCapture(ctx, cfg, log) // capture.go
	if err != nil {
		return err
	}
	defer src.Close()

	// serve_ops.go: reload, control socket, audit log, metrics, sd_notify.
	ops, gc, err := startOps(opsSetup{path: *path, cfg: cfg, log: log, src: src,
		build: fk.wrap(func(cfg *config.Config) (gateway.Config, func(), error) {
			gc := engineConfig(cfg, log)
			closeSPA, err := addSPA(&gc, cfg, log) // serve_spa.go
			return gc, closeSPA, err
		}, log), digestSyncErrors: fk.syncErrors()})
	if err != nil {
		return err
	}
	defer ops.close()
	eng := gateway.New(gc, fw, src)
	ops.attach(ctx, eng)
	if err := eng.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	st := eng.Stats()
	log.Info("stopped; grants in the kernel keep expiring on their own (sesame cleanup removes everything)",
		"packets", st.Packets.Load(), "grants", st.Grants.Load())
	return nil
}

func engineConfig(cfg *config.Config, log *slog.Logger) gateway.Config {
	doors := make([]gateway.Door, len(cfg.Doors))
	for i := range cfg.Doors {
		doors[i] = gateway.Door{Door: cfg.KnockDoor(i), Open: cfg.OpenServices(i), Duration: cfg.Doors[i].Duration.D()}
	}
	gc := gateway.Config{
		Doors:      doors,
		MaxSources: cfg.Gateway.MaxSources,
		Logger:     log,
		Layout: firewall.Layout{
			Protected:   cfg.Protected(),
			Watched:     cfg.Watched(),
			LogGroup:    uint16(cfg.Gateway.NFLogGroup),
			LogRate:     uint32(cfg.Gateway.NFLogRate),
			AlwaysAllow: cfg.AlwaysAllow(),
			Interfaces:  cfg.Gateway.Interfaces,
		},
	}
	if cfg.Gateway.NFLogBulkGroup > 0 {
		gc.Layout.BulkLogGroup = uint16(cfg.Gateway.NFLogBulkGroup)
	}
	// The kernel marks knocking sources for the longest sequence timeout
	// (the engine derives the same; set here so that --check prints it).
	for _, d := range doors {
		gc.Layout.WatchTimeout = max(gc.Layout.WatchTimeout, d.Timeout)
	}
	return gc
}

package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"slices"

	"github.com/sesame-gw/sesame/internal/config"
	"github.com/sesame-gw/sesame/internal/fwknopgw"
	"github.com/sesame-gw/sesame/internal/gateway"
	"github.com/sesame-gw/sesame/internal/service"
)

// fwknopFlags are serve's options for serving stock fwknop clients
// (docs/fwknop.md): fwknopd's access.conf and fwknopd.conf, alone or
// alongside a sesame.toml.
type fwknopFlags struct {
	access, conf  string
	allowCommands bool

	srv   *fwknopgw.Server // opened by the first build, kept across reloads
	first *fwknopgw.Config
}

// addFwknopFlags registers the fwknop flags on serve's flag set.
func addFwknopFlags(fs *flag.FlagSet) *fwknopFlags {
	f := &fwknopFlags{}
	fs.StringVar(&f.access, "fwknop-access", "", "serve stock fwknop clients from this fwknopd access.conf (without -c: no sesame.toml needed)")
	fs.StringVar(&f.conf, "fwknop-conf", "", "fwknopd.conf for --fwknop-access (SPA port, packet age, digest.cache); default: fwknopd's defaults")
	fs.BoolVar(&f.allowCommands, "fwknop-allow-commands", false, "let access.conf stanzas with ENABLE_CMD_EXEC Y run fwknop command messages (off: always refused)")
	return f
}

func (f *fwknopFlags) enabled() bool { return f.access != "" }

// syncErrors is the metrics source for digest.cache's failed fsyncs: nil
// without --fwknop-access, 0 until the first build has opened the server.
func (f *fwknopFlags) syncErrors() func() uint64 {
	if !f.enabled() {
		return nil
	}
	return func() uint64 {
		if f.srv == nil {
			return 0
		}
		return f.srv.Digests.SyncErrors()
	}
}

// noConfig stands for the sesame.toml path when fwknop is served alone:
// a reload then refuses with this in its message instead of reading
// whatever the default path holds.
const noConfig = "(none: serve --fwknop-access without -c; restart to apply access.conf changes)"

// loadConfig is serve's config.Load(*path): with --fwknop-access and no
// -c, no sesame.toml is read, the [gateway] defaults apply (knockd mode's
// --log-level, --log-format, --control-socket, --audit-log and
// --metrics-listen are honoured too) and *path becomes noConfig.
func (f *fwknopFlags) loadConfig(fs *flag.FlagSet, path *string, kd *knockdFlags) (*config.Config, error) {
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if f.conf != "" && !f.enabled() {
		return nil, &exitError{code: 2, err: errors.New("--fwknop-conf needs --fwknop-access")}
	}
	if f.enabled() {
		// Fail on the fwknop files before anything touches the kernel
		// (each build reads them again).
		if _, err := fwknopgw.Load(fwknopgw.Files{Access: f.access, Server: f.conf}); err != nil {
			return nil, err
		}
	}
	if !f.enabled() || set["c"] || set["config"] {
		return config.Load(*path)
	}
	*path = noConfig
	cfg := config.Defaults()
	cfg.File = ""
	if set["log-level"] {
		cfg.Gateway.LogLevel = kd.logLevel
	}
	if set["log-format"] {
		cfg.Gateway.LogFormat = kd.logFormat
	}
	if set["control-socket"] || set["audit-log"] || set["metrics-listen"] {
		ops, err := kd.opsKeys()
		if err != nil {
			return nil, err
		}
		cfg.Gateway.Ops = ops
	}
	return cfg, nil
}

// wrap adds fwknop to serve's engine builder: each build (the start and
// every reload) reads access.conf and fwknopd.conf again and gets a new
// Handler; the replay digests and the command runner are opened by the
// first build and shared by all. What only a restart can change (the
// port, digest.cache, CMD_CYCLE appearing) refuses the reload.
func (f *fwknopFlags) wrap(build engineBuilder, log *slog.Logger) engineBuilder {
	if !f.enabled() {
		return build
	}
	return func(cfg *config.Config) (gateway.Config, func(), error) {
		gc, release, err := build(cfg)
		if err != nil {
			return gc, release, err
		}
		if err := f.add(&gc, cfg, log); err != nil {
			release()
			return gateway.Config{}, nil, err
		}
		return gc, release, nil
	}
}

func (f *fwknopFlags) add(gc *gateway.Config, cfg *config.Config, log *slog.Logger) error {
	c, err := fwknopgw.Load(fwknopgw.Files{Access: f.access, Server: f.conf})
	if err != nil {
		return err
	}
	port := service.Service{Proto: service.UDP, Port: c.Port}
	protected := unionServices(gc.Layout.Protected, c.Protected())
	if err := checkFwknopPort(port, cfg, protected); err != nil {
		return err
	}
	if len(protected) == 0 && !c.NeedsRunner(false) {
		return fmt.Errorf("fwknop: %s: no OPEN_PORTS and no sesame.toml door or client: nothing for Sesame to protect", f.access)
	}
	for _, w := range c.Warnings {
		log.Warn("fwknop: " + w)
	}
	for _, w := range c.OpenAnyWarnings(protected) {
		log.Warn("fwknop: " + w)
	}
	if f.srv == nil {
		srv, err := fwknopgw.Start(c, fwknopgw.Options{Protected: protected, AllowCommands: f.allowCommands, Logger: log})
		if err != nil {
			return err
		}
		f.srv, f.first = srv, c
	} else if err := f.reloadable(c); err != nil {
		return err
	}
	var cmds fwknopgw.Commands
	if f.srv.Runner != nil {
		cmds = f.srv.Runner
	}
	h, err := fwknopgw.New(c.Settings(protected, f.allowCommands), f.srv.Digests, cmds, log)
	if err != nil {
		return err
	}
	gc.Layout.Protected = protected
	if !slices.Contains(gc.Layout.Watched, port) {
		gc.Layout.Watched = unionServices(gc.Layout.Watched, []service.Service{port})
	}
	if !slices.Contains(gc.SPAPorts, port) {
		gc.SPAPorts = append(gc.SPAPorts, port)
	}
	gc.Handlers = append(gc.Handlers, h)
	log.Info("fwknop", "access", f.access, "stanzas", len(c.Stanzas), "port", port,
		"max_packet_age", c.Server.PacketAge(), "protected", len(protected), "commands", f.allowCommands)
	return nil
}

// reloadable refuses a reload that changes what the first build opened.
func (f *fwknopFlags) reloadable(c *fwknopgw.Config) error {
	a, b := f.first.Server, c.Server
	switch {
	case c.Port != f.first.Port:
		return errors.New("fwknop: the SPA port changed: restart to apply")
	case a.DigestPersistence != b.DigestPersistence || a.DigestFile != b.DigestFile || a.PacketAge() != b.PacketAge():
		return errors.New("fwknop: DIGEST_FILE, ENABLE_DIGEST_PERSISTENCE or the packet age changed: restart to apply")
	case f.srv.Runner == nil && c.NeedsRunner(f.allowCommands):
		return errors.New("fwknop: CMD_CYCLE stanzas appeared: restart to apply")
	}
	return nil
}

// checkFwknopPort refuses an SPA port that a door knocks on or that some
// grant could open: it is watched (logged and dropped), never granted.
func checkFwknopPort(port service.Service, cfg *config.Config, protected []service.Service) error {
	if slices.Contains(protected, port) {
		return fmt.Errorf("fwknop: the SPA port %v is also a port to open (OPEN_PORTS or sesame.toml); it must stay closed", port)
	}
	for i := range cfg.Doors {
		if slices.Contains(cfg.KnockDoor(i).Sequence, port) {
			return fmt.Errorf("fwknop: the SPA port %v is a knock step of door %q", port, cfg.Doors[i].Name)
		}
	}
	return nil
}

// close releases the digests and the runner (scheduled CMD_CYCLE_CLOSE
// commands stay in their state file); after the engine has stopped.
func (f *fwknopFlags) close() {
	if f.srv != nil {
		f.srv.Close()
	}
}

func unionServices(a, b []service.Service) []service.Service {
	out := slices.Concat(a, b)
	slices.SortFunc(out, func(x, y service.Service) int {
		return cmp.Or(cmp.Compare(x.Proto, y.Proto), cmp.Compare(x.Port, y.Port))
	})
	return slices.Compact(out)
}

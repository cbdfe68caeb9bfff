package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/sesame-gw/sesame/internal/capture"
	"github.com/sesame-gw/sesame/internal/capture/afpacket"
	"github.com/sesame-gw/sesame/internal/config"
	"github.com/sesame-gw/sesame/internal/firewall"
	"github.com/sesame-gw/sesame/internal/gateway"
	"github.com/sesame-gw/sesame/internal/knockd"
	"github.com/sesame-gw/sesame/internal/knockdconf"
	"github.com/sesame-gw/sesame/internal/metrics"
	"github.com/sesame-gw/sesame/internal/service"
)

// knockdFlags are serve's options for the knockd drop-in mode
// (docs/knockd-compat.md).
type knockdFlags struct {
	conf        string
	ifaces      listFlag
	parity      bool
	stateDir    string
	keepPending bool
	logLevel    string
	logFormat   string
	ops         config.Ops // sesame.toml's [gateway] ops keys, as flags
}

// listFlag is a repeatable, comma-separated string flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// addKnockdFlags registers the knockd mode's flags on serve's flag set.
func addKnockdFlags(fs *flag.FlagSet) *knockdFlags {
	k := &knockdFlags{}
	fs.StringVar(&k.conf, "knockd-conf", "", "run an existing knockd.conf (knockd drop-in mode: no sesame.toml, no firewall of Sesame's own)")
	fs.Var(&k.ifaces, "i", "knockd mode: interface to watch (repeatable or comma-separated; overrides the file's Interface; default: all but lo)")
	fs.BoolVar(&k.parity, "knockd-parity", false, "knockd mode: judge knocks exactly as knockd 0.8 does (not scan-proof; see docs/knockd-compat.md)")
	fs.StringVar(&k.stateDir, "state-dir", config.DefaultStateDir, "knockd mode: where pending stop commands are kept across restarts")
	fs.BoolVar(&k.keepPending, "keep-pending", false, "knockd mode: at shutdown keep pending stop commands for the next start instead of running them now")
	fs.StringVar(&k.logLevel, "log-level", "info", "knockd mode: debug, info, warn or error")
	fs.StringVar(&k.logFormat, "log-format", "text", "knockd mode: text or json")
	fs.StringVar(&k.ops.ControlSocket, "control-socket", config.DefaultControlSocket, "knockd and fwknop-only modes: the control socket of sesame status, reload and revoke")
	fs.StringVar(&k.ops.AuditLog, "audit-log", "", "knockd and fwknop-only modes: append a JSON line per decision to this file (default: none)")
	fs.StringVar(&k.ops.MetricsListen, "metrics-listen", "", "knockd and fwknop-only modes: serve Prometheus metrics on IP:PORT, or PORT on 127.0.0.1 (default: none)")
	return k
}

// opsKeys checks the ops flags as config checks their sesame.toml keys.
func (k *knockdFlags) opsKeys() (config.Ops, error) {
	o := k.ops
	bad := func(flag, v, why string) (config.Ops, error) {
		return o, &exitError{code: 2, err: fmt.Errorf("--%s %q: %s", flag, v, why)}
	}
	absClean := func(p string) bool { return filepath.IsAbs(p) && filepath.Clean(p) == p && p != "/" }
	switch {
	case !absClean(o.ControlSocket):
		return bad("control-socket", o.ControlSocket, "not an absolute, clean path")
	case len(o.ControlSocket) > 107: // sun_path
		return bad("control-socket", o.ControlSocket, "longer than a unix socket path (107 bytes)")
	case o.AuditLog != "" && !absClean(o.AuditLog):
		return bad("audit-log", o.AuditLog, "not an absolute, clean path")
	}
	if _, ok := o.MetricsAddr(); o.MetricsListen != "" && !ok {
		return bad("metrics-listen", o.MetricsListen, "not IP:PORT or PORT (an IP address, not a host name)")
	}
	return o, nil
}

func (k *knockdFlags) enabled() bool { return k.conf != "" }

func readKnockdConf(path string) (*knockdconf.Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, knockdconf.MaxFile+1))
	if err != nil {
		return nil, err
	}
	return knockdconf.Parse(path, b)
}

// runServeKnockd runs `sesame serve --knockd-conf FILE`, with the ops
// side of every mode (serve_ops.go): sd_notify, reload by SIGHUP and
// `sesame reload`, status and revoke, the audit log, metrics.
func runServeKnockd(k *knockdFlags, stderr io.Writer) error {
	keys, err := k.opsKeys()
	if err != nil {
		return err
	}
	conf, err := readKnockdConf(k.conf)
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, k.logFormat, k.logLevel)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	stopping := "stopping; running the pending stop commands"
	if k.keepPending {
		stopping = "stopping; pending stop commands kept for the next start"
	}
	o := newOps(log, k.conf, nil, opsNotes{ready: "knockd mode ready", stopping: stopping})
	defer o.close()
	ifaces := []string(k.ifaces)
	if len(ifaces) == 0 && conf.Options.Interface != "" {
		ifaces = []string{conf.Options.Interface}
	}
	events, err := knockd.OpenEventLog(conf.Options, nil, func(err error) {
		log.Warn("knockd log lines go to LogFile only", "err", err)
	})
	if err != nil {
		return err
	}
	defer events.Close()
	if conf.Options.PidFile != "" {
		if err := os.WriteFile(conf.Options.PidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			log.Warn("cannot write the pid file", "file", conf.Options.PidFile, "err", err)
		} else {
			defer os.Remove(conf.Options.PidFile)
		}
	}
	var src *afpacket.Source
	srv, err := knockd.New(knockd.Config{
		Conf:        conf,
		ConfFile:    k.conf,
		Interfaces:  ifaces,
		StateFile:   filepath.Join(k.stateDir, "knockd-pending.json"),
		Parity:      k.parity,
		KeepPending: k.keepPending,
		Logger:      log,
		Events:      events,
		Runner:      knockd.ShellRunner{Output: stderr},
		OnDecision:  o.onDecision,
		SetFilter: func(f afpacket.Filter) error {
			if src == nil {
				return nil
			}
			return src.SetFilter(f)
		},
	})
	if err != nil {
		return err
	}
	src, err = afpacket.Open(afpacket.Config{Interfaces: ifaces, Filter: srv.Filter(), Logger: log})
	if err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	defer src.Close()

	o.open(&knockdMode{path: k.conf, conf: conf, flagIfaces: len(k.ifaces) > 0, keys: keys, srv: srv, src: src, log: log}, keys)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o.serve(ctx)
	if err := srv.Run(ctx, src); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	st := src.Stats()
	log.Info("stopped", "packets", st.Received, "dropped", st.Dropped)
	return nil
}

// knockdMode is serve --knockd-conf's opsMode: the knockd runtime, which
// has no firewall of its own. Its grants are the pending stop commands:
// `sesame status` lists them with the time left, and `sesame revoke ADDR`
// runs ADDR's now (docs/knockd-compat.md).
type knockdMode struct {
	path       string
	conf       *knockdconf.Config // running; reloads (one at a time) replace it
	flagIfaces bool               // -i given: the file's Interface is not used
	keys       config.Ops
	srv        *knockd.Server
	src        capture.Source
	log        *slog.Logger
}

func (m *knockdMode) Status(ctx context.Context) (gateway.Status, error) { return m.srv.Status(ctx) }

// Revoke implements opsMode: it runs addr's pending stop commands now. A
// door opens whatever its Start_Command opens, so there is no service to
// pick: one is refused. The grants returned name the ports the stop
// command appears to close (read as `sesame import knockd` reads
// commands), or none (0/0).
func (m *knockdMode) Revoke(ctx context.Context, addr netip.Addr, svc service.Service) ([]firewall.Grant, error) {
	if svc.Valid() {
		return nil, fmt.Errorf("knockd mode: a door opens what its Start_Command opens, not %v: sesame revoke %v (without a service) runs its pending Stop_Commands now", svc, addr)
	}
	gone, err := m.srv.Revoke(ctx, addr)
	var out []firewall.Grant
	for _, r := range gone {
		out = append(out, stopGrants(r)...)
	}
	return out, err
}

// stopGrants reads the ports a revoked stop command closes.
func stopGrants(r knockd.Revoked) []firewall.Grant {
	var out []firewall.Grant
	if g, ok := knockdconf.GuessOpen(strings.ReplaceAll(r.Command, r.Src.String(), "%IP%")); ok {
		for _, o := range g.Open {
			if o.First == o.Last {
				out = append(out, firewall.Grant{Addr: r.Src, Service: service.Service{Proto: o.Proto, Port: o.First}})
			}
		}
	}
	if len(out) == 0 {
		out = append(out, firewall.Grant{Addr: r.Src})
	}
	return out
}

// reload re-reads the knockd.conf; the server refuses it (file:line) if a
// door cannot be built, and then nothing changes.
func (m *knockdMode) reload(ctx context.Context) (config.Ops, error) {
	conf, err := readKnockdConf(m.path)
	if err != nil {
		return m.keys, err
	}
	if err := m.srv.Reload(ctx, conf); err != nil {
		return m.keys, err
	}
	a, b := m.conf.Options, conf.Options
	warnRestart(m.log,
		setting{"options.UseSyslog", a.UseSyslog != b.UseSyslog},
		setting{"options.LogFile", a.LogFile != b.LogFile},
		setting{"options.PidFile", a.PidFile != b.PidFile},
		setting{"options.Interface", a.Interface != b.Interface && !m.flagIfaces})
	m.conf = conf
	return m.keys, nil
}

func (m *knockdMode) metricSources() metrics.Sources {
	return metrics.Sources{
		Stats:   m.srv.Stats,
		Capture: m.src.Stats,
		LiveGrants: func(ctx context.Context) (int, error) {
			st, err := m.srv.Status(ctx)
			return len(st.Grants), err
		},
	}
}

func (m *knockdMode) release() {}

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/sesame-gw/sesame/internal/audit"
	"github.com/sesame-gw/sesame/internal/capture"
	"github.com/sesame-gw/sesame/internal/config"
	"github.com/sesame-gw/sesame/internal/control"
	"github.com/sesame-gw/sesame/internal/firewall"
	"github.com/sesame-gw/sesame/internal/gateway"
	"github.com/sesame-gw/sesame/internal/metrics"
	"github.com/sesame-gw/sesame/internal/service"
)

// engineBuilder turns a loaded configuration into the engine's, with a
// function that releases what it opened (replay state, ...). serve.go
// defines it; reload uses it again for the new file.
type engineBuilder func(*config.Config) (gateway.Config, func(), error)

// reloadTimeout bounds a SIGHUP reload (the control socket's own request
// deadline bounds `sesame reload`).
const reloadTimeout = 30 * time.Second

// opsMode is a way of serving behind the ops side: the nftables gateway
// (serve -c: engineMode, below) or the knockd runtime (serve
// --knockd-conf: knockdMode, serve_knockd.go). Status and Revoke answer
// the control socket and are called concurrently.
type opsMode interface {
	Status(ctx context.Context) (gateway.Status, error)
	Revoke(ctx context.Context, addr netip.Addr, svc service.Service) ([]firewall.Grant, error)
	// reload re-reads the mode's configuration file, validates all of it
	// and applies it, or changes nothing and returns why. It returns the
	// ops keys now in force. The ops side runs one reload at a time.
	reload(ctx context.Context) (config.Ops, error)
	// metricSources are the mode's counters (the ops side adds the audit
	// log's). They are read during scrapes, concurrently.
	metricSources() metrics.Sources
	// release frees what the mode holds, once it has stopped.
	release()
}

// ops is the daemon's operations side, the same for every mode: reload
// (SIGHUP and the control socket), status and revoke (control socket),
// the audit log (reopened on SIGUSR1), metrics, and systemd notifications
// (READY, RELOADING, STOPPING). The extras are not worth a lockout: when
// the control socket, the metrics port or the audit log cannot be opened,
// the daemon still runs, and the failure is logged as an error.
//
// Use: newOps first thing (it catches SIGHUP), then open with the mode,
// serve once the mode is about to run, close after it has stopped.
type ops struct {
	log    *slog.Logger
	path   string // the configuration file, for messages
	notify func(state string)
	notes  opsNotes
	sigs   chan os.Signal

	mu   sync.Mutex // serialises reloads; guards keys
	keys config.Ops // in force
	mode opsMode    // set by open

	audit   atomic.Pointer[audit.Log]
	metrics *metrics.Metrics // nil when off
	msrv    *metrics.Server  // nil when off
	ctl     *control.Server  // nil when unavailable
	wg      sync.WaitGroup
	cancel  context.CancelFunc // stops what serve started
}

// opsNotes are the STATUS= lines sent with READY=1 and STOPPING=1.
type opsNotes struct{ ready, stopping string }

// newOps catches SIGHUP and SIGUSR1 at once (SIGHUP's default action
// would end the daemon). notify is sd_notify; nil means systemd's (a
// no-op without NOTIFY_SOCKET).
func newOps(log *slog.Logger, path string, notify func(string), notes opsNotes) *ops {
	if notify == nil {
		notify = func(state string) {
			if _, err := daemon.SdNotify(false, state); err != nil {
				log.Debug("sd_notify failed", "err", err)
			}
		}
	}
	o := &ops{log: log, path: path, notify: notify, notes: notes, sigs: make(chan os.Signal, 4)}
	signal.Notify(o.sigs, syscall.SIGHUP, syscall.SIGUSR1)
	return o
}

// open opens the audit log, the metrics endpoint and the control socket
// that keys name, for mode.
func (o *ops) open(mode opsMode, keys config.Ops) {
	o.mode, o.keys = mode, keys
	if keys.AuditLog != "" {
		a, err := audit.Open(keys.AuditLog, audit.Options{Logger: o.log})
		if err != nil {
			o.log.Error("running WITHOUT the audit log", "err", err)
		} else {
			o.audit.Store(a)
			o.log.Info("audit log", "path", keys.AuditLog)
		}
	}
	if addr, ok := keys.MetricsAddr(); ok {
		src := mode.metricSources()
		src.Audit = func() (uint64, uint64) {
			if a := o.audit.Load(); a != nil {
				return a.Dropped(), a.Errors()
			}
			return 0, 0
		}
		o.metrics = metrics.New(src, version)
		var err error
		if o.msrv, err = metrics.Listen(addr, o.metrics, o.log); err != nil {
			o.log.Error("running WITHOUT the metrics endpoint", "err", err)
		} else {
			o.log.Info("metrics endpoint", "url", "http://"+o.msrv.Addr().String()+"/metrics")
		}
	}
	var err error
	switch o.ctl, err = control.Listen(keys.ControlSocket, o, control.Options{Logger: o.log}); {
	case errors.Is(err, control.ErrInUse):
		// Another live daemon's: taking it over would leave that daemon
		// unreachable, so this one goes without.
		o.log.Error("running WITHOUT the control socket: "+keys.ControlSocket+" belongs to another running sesame daemon and is not taken over; "+
			"sesame status, reload and revoke reach that daemon, not this one (SIGHUP still reloads this one). "+
			"Give each daemon its own [gateway] control_socket (serve --control-socket without -c)",
			"path", keys.ControlSocket, "key", "control_socket")
	case err != nil:
		o.log.Error("running WITHOUT the control socket: sesame status, reload and revoke will not reach this daemon (SIGHUP still reloads)",
			"path", keys.ControlSocket, "key", "control_socket", "err", err)
	default:
		o.log.Info("control socket", "path", keys.ControlSocket)
	}
}

// serve starts serving: the control socket, metrics, signals, and READY=1
// once the mode answers a status request (it runs: firewall set up,
// capture open). It returns at once; everything stops when ctx is done or
// close is called.
func (o *ops) serve(ctx context.Context) {
	ctx, o.cancel = context.WithCancel(ctx)
	if o.ctl != nil {
		o.goRun(func() {
			if err := o.ctl.Serve(ctx); err != nil {
				o.log.Error("control socket stopped", "err", err)
			}
		})
	}
	if o.msrv != nil {
		o.goRun(func() {
			if err := o.msrv.Serve(ctx); err != nil {
				o.log.Error("metrics endpoint stopped", "err", err)
			}
		})
	}
	o.goRun(func() { o.signals(ctx) })
	o.goRun(func() {
		if _, err := o.mode.Status(ctx); err != nil {
			return
		}
		o.notify(daemon.SdNotifyReady + "\nSTATUS=" + o.notes.ready)
		<-ctx.Done()
		o.notify(daemon.SdNotifyStopping + "\nSTATUS=" + o.notes.stopping)
	})
}

func (o *ops) goRun(fn func()) {
	o.wg.Add(1)
	go func() { defer o.wg.Done(); fn() }()
}

func (o *ops) signals(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case sig := <-o.sigs:
			switch sig {
			case syscall.SIGHUP:
				rctx, cancel := context.WithTimeout(ctx, reloadTimeout)
				o.Reload(rctx)
				cancel()
			case syscall.SIGUSR1:
				o.reopenAudit()
			}
		}
	}
}

func (o *ops) reopenAudit() {
	a := o.audit.Load()
	if a == nil {
		o.log.Info("SIGUSR1: no audit log to reopen")
		return
	}
	if err := a.Reopen(); err != nil {
		o.log.Error("audit log reopen failed; still writing to the old file", "err", err)
		return
	}
	o.log.Info("audit log reopened", "path", a.Path())
}

// close stops the ops side (after the mode has stopped): it waits for its
// goroutines, closes the audit log and releases the mode.
func (o *ops) close() {
	signal.Stop(o.sigs)
	if o.cancel != nil {
		o.cancel()
	}
	if o.ctl != nil {
		o.ctl.Close()
	}
	o.wg.Wait()
	if a := o.audit.Load(); a != nil {
		a.Close()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.mode != nil {
		o.mode.release()
	}
}

// onDecision feeds the audit log and the metrics (the modes'
// OnDecision).
func (o *ops) onDecision(d gateway.Decision) {
	if a := o.audit.Load(); a != nil {
		a.Record(d)
	}
	if o.metrics != nil {
		o.metrics.Observe(d)
	}
}

// Status implements control.Handler.
func (o *ops) Status(ctx context.Context) (gateway.Status, error) { return o.mode.Status(ctx) }

// Revoke implements control.Handler.
func (o *ops) Revoke(ctx context.Context, addr netip.Addr, svc service.Service) ([]firewall.Grant, error) {
	return o.mode.Revoke(ctx, addr, svc)
}

// Reload re-reads the configuration file and applies it (SIGHUP, `sesame
// reload`). The new file is validated in full first; an invalid one, or
// one the firewall refuses, is refused with the error logged, and the
// running configuration stays. Reloads run one at a time.
func (o *ops) Reload(ctx context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.notify(daemon.SdNotifyReloading + "\n" + daemon.SdNotifyMonotonicUsec())
	err := o.reload(ctx)
	if o.metrics != nil {
		o.metrics.ObserveReload(err)
	}
	if err != nil {
		o.log.Error("reload refused; the running configuration stays", "file", o.path, "err", err)
		o.notify(daemon.SdNotifyReady + "\nSTATUS=reload refused: " + statusLine(err.Error()))
		return err
	}
	o.notify(daemon.SdNotifyReady + "\nSTATUS=" + o.notes.ready + " (reloaded)")
	return nil
}

func (o *ops) reload(ctx context.Context) error {
	keys, err := o.mode.reload(ctx)
	if err != nil {
		return err
	}
	o.switchAudit(keys.AuditLog)
	warnRestart(o.log,
		setting{"gateway.metrics_listen", keys.MetricsListen != o.keys.MetricsListen},
		setting{"gateway.control_socket", keys.ControlSocket != o.keys.ControlSocket})
	o.keys = keys
	return nil
}

// switchAudit follows a changed audit_log path.
func (o *ops) switchAudit(path string) {
	old := o.audit.Load()
	if old != nil && old.Path() == path {
		return
	}
	var next *audit.Log
	if path != "" {
		a, err := audit.Open(path, audit.Options{Logger: o.log})
		if err != nil {
			o.log.Error("new audit log cannot be opened; keeping the old one", "err", err)
			return
		}
		next = a
		o.log.Info("audit log", "path", path)
	}
	o.audit.Store(next)
	if old != nil {
		old.Close()
	}
}

// opsSetup is what startOps needs.
type opsSetup struct {
	path  string // the configuration file, re-read on reload
	cfg   *config.Config
	log   *slog.Logger
	src   capture.Source
	build engineBuilder
	// digestSyncErrors counts fwknop's failed digest.cache fsyncs; nil
	// without --fwknop-access.
	digestSyncErrors func() uint64
	// notify is sd_notify; nil means systemd's.
	notify func(state string)
}

// engineMode is serve -c's opsMode: the nftables gateway engine.
type engineMode struct {
	opsSetup
	onDecision func(gateway.Decision)
	closeGC    func() // the running configuration's; reloads swap it
	eng        atomic.Pointer[gateway.Engine]
}

// startOps starts the ops side of serve -c and builds the engine's first
// configuration, wired to the audit log and the metrics. Call attach with
// the engine, and close after the engine has stopped.
func startOps(s opsSetup) (*ops, gateway.Config, error) {
	o := newOps(s.log, s.path, s.notify, opsNotes{ready: "gateway ready", stopping: "stopping; grants keep expiring in the kernel"})
	warnLockout(s.log, s.cfg)
	m := &engineMode{opsSetup: s, onDecision: o.onDecision}
	gc, closeGC, err := m.buildWired(s.cfg)
	if err != nil {
		o.close()
		return nil, gateway.Config{}, err
	}
	m.closeGC = closeGC
	o.open(m, s.cfg.Gateway.Ops)
	return o, gc, nil
}

// buildWired is the builder, with OnDecision wired to the ops side.
func (m *engineMode) buildWired(cfg *config.Config) (gateway.Config, func(), error) {
	gc, closeGC, err := m.opsSetup.build(cfg)
	gc.OnDecision = m.onDecision
	return gc, closeGC, err
}

// attach serves for eng (startOps' mode): see ops.serve.
func (o *ops) attach(ctx context.Context, eng *gateway.Engine) {
	o.mode.(*engineMode).eng.Store(eng)
	o.serve(ctx)
}

func (m *engineMode) metricSources() metrics.Sources {
	src := metrics.Sources{
		Stats: func() *gateway.Stats {
			if e := m.eng.Load(); e != nil {
				return e.Stats()
			}
			return &gateway.Stats{}
		},
		LiveGrants: func(ctx context.Context) (int, error) {
			e := m.eng.Load()
			if e == nil {
				return 0, gateway.ErrNotRunning
			}
			g, err := e.Grants(ctx)
			return len(g), err
		},
	}
	if m.src != nil {
		src.Capture = m.src.Stats
	}
	src.DigestSyncErrors = m.digestSyncErrors
	return src
}

// Status implements opsMode. With [pki], the counters carry the CRL's
// state (serve_pki.go).
func (m *engineMode) Status(ctx context.Context) (gateway.Status, error) {
	e := m.eng.Load()
	if e == nil {
		return gateway.Status{}, gateway.ErrNotRunning
	}
	st, err := e.Status(ctx)
	if err == nil {
		addCRLStatus(st.Counters, time.Now())
	}
	return st, err
}

// Revoke implements opsMode.
func (m *engineMode) Revoke(ctx context.Context, addr netip.Addr, svc service.Service) ([]firewall.Grant, error) {
	e := m.eng.Load()
	if e == nil {
		return nil, gateway.ErrNotRunning
	}
	return e.Revoke(ctx, addr, svc)
}

func (m *engineMode) reload(ctx context.Context) (config.Ops, error) {
	eng := m.eng.Load()
	if eng == nil {
		return config.Ops{}, gateway.ErrNotRunning
	}
	cfg, err := config.Load(m.path)
	if err != nil {
		return config.Ops{}, err
	}
	if err := restartOnly(m.cfg, cfg); err != nil {
		return config.Ops{}, err
	}
	gc, closeGC, err := m.buildWired(cfg)
	if err != nil {
		return config.Ops{}, err
	}
	if err := eng.Reload(ctx, gc); err != nil {
		closeGC()
		return config.Ops{}, err
	}
	m.closeGC, closeGC = closeGC, m.closeGC
	closeGC()
	c, n := m.cfg.Gateway, cfg.Gateway
	warnRestart(m.log,
		setting{"gateway.log_format", c.LogFormat != n.LogFormat},
		setting{"gateway.log_level", c.LogLevel != n.LogLevel},
		setting{"gateway.state_dir", c.StateDir != n.StateDir})
	m.cfg = cfg
	warnLockout(m.log, cfg)
	return cfg.Gateway.Ops, nil
}

func (m *engineMode) release() {
	if m.closeGC != nil {
		m.closeGC()
		m.closeGC = nil
	}
}

// restartOnly refuses a reload that changes what only a restart can
// change without losing packets: the NFLOG groups the capture listens on.
func restartOnly(cur, next *config.Config) error {
	if cur.Gateway.NFLogGroup != next.Gateway.NFLogGroup || cur.Gateway.NFLogBulkGroup != next.Gateway.NFLogBulkGroup {
		return errors.New("nflog_group or nflog_bulk_group changed: the capture listens on the old groups; restart to apply (systemctl restart sesame)")
	}
	return nil
}

// setting is a key of the configuration and whether a reload changed it.
type setting struct {
	key     string
	changed bool
}

// warnRestart logs the changed settings that a reload does not apply.
func warnRestart(log *slog.Logger, settings ...setting) {
	for _, s := range settings {
		if s.changed {
			log.Warn("changed setting applies at the next restart", "key", s.key)
		}
	}
}

// statusLine is s fit for sd_notify's STATUS= (one line).
func statusLine(s string) string {
	if l, _, more := strings.Cut(s, "\n"); more {
		return l + " ..."
	}
	return s
}

// warnLockout logs loudly when the configuration hides the port of the
// SSH session this daemon was started from.
func warnLockout(log *slog.Logger, cfg *config.Config) {
	if w := sshLockout(os.Getenv("SSH_CONNECTION"), cfg.Protected(), cfg.AlwaysAllow()); w != "" {
		log.Warn(fmt.Sprintf("!!! %s !!!", w))
	}
}

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

// opsSetup is what startOps needs.
type opsSetup struct {
	path  string // the configuration file, re-read on reload
	cfg   *config.Config
	log   *slog.Logger
	src   capture.Source
	build engineBuilder
	// notify is sd_notify; nil means systemd's (a no-op without
	// NOTIFY_SOCKET).
	notify func(state string)
}

// ops is the daemon's operations side: reload (SIGHUP and the control
// socket), status and revoke (control socket), the audit log (reopened on
// SIGUSR1), metrics, and systemd notifications (READY, RELOADING,
// STOPPING). The extras are not worth a lockout: when the control socket,
// the metrics port or the audit log cannot be opened, the gateway still
// runs, and the failure is logged as an error.
type ops struct {
	opsSetup
	sigs chan os.Signal

	mu      sync.Mutex // serialises reloads; guards cfg and closeGC
	closeGC func()

	eng     atomic.Pointer[gateway.Engine]
	audit   atomic.Pointer[audit.Log]
	metrics *metrics.Metrics // nil when off
	msrv    *metrics.Server  // nil when off
	ctl     *control.Server  // nil when unavailable
	wg      sync.WaitGroup
	cancel  context.CancelFunc // stops what attach started
}

// startOps opens the ops side and builds the engine's first
// configuration, wired to the audit log and the metrics. Call attach with
// the engine, and close after the engine has stopped.
func startOps(s opsSetup) (*ops, gateway.Config, error) {
	if s.notify == nil {
		s.notify = func(state string) {
			if _, err := daemon.SdNotify(false, state); err != nil {
				s.log.Debug("sd_notify failed", "err", err)
			}
		}
	}
	o := &ops{opsSetup: s, sigs: make(chan os.Signal, 4)}
	// At once: SIGHUP's default action would end the daemon.
	signal.Notify(o.sigs, syscall.SIGHUP, syscall.SIGUSR1)
	warnLockout(s.log, s.cfg)

	gc, closeGC, err := s.build(s.cfg)
	if err != nil {
		signal.Stop(o.sigs)
		return nil, gateway.Config{}, err
	}
	o.closeGC = closeGC
	gc.OnDecision = o.onDecision

	g := s.cfg.Gateway
	if g.AuditLog != "" {
		a, err := audit.Open(g.AuditLog, audit.Options{Logger: s.log})
		if err != nil {
			s.log.Error("running WITHOUT the audit log", "err", err)
		} else {
			o.audit.Store(a)
			s.log.Info("audit log", "path", g.AuditLog)
		}
	}
	if addr, ok := g.MetricsAddr(); ok {
		o.metrics = metrics.New(o.metricSources(), version)
		if o.msrv, err = metrics.Listen(addr, o.metrics, s.log); err != nil {
			s.log.Error("running WITHOUT the metrics endpoint", "err", err)
		} else {
			s.log.Info("metrics endpoint", "url", "http://"+o.msrv.Addr().String()+"/metrics")
		}
	}
	if o.ctl, err = control.Listen(g.ControlSocket, o, control.Options{Logger: s.log}); err != nil {
		s.log.Error("running WITHOUT the control socket: sesame status, reload and revoke will not reach this daemon (SIGHUP still reloads)", "err", err)
	}
	return o, gc, nil
}

func (o *ops) metricSources() metrics.Sources {
	src := metrics.Sources{
		Stats: func() *gateway.Stats {
			if e := o.eng.Load(); e != nil {
				return e.Stats()
			}
			return &gateway.Stats{}
		},
		LiveGrants: func(ctx context.Context) (int, error) {
			e := o.eng.Load()
			if e == nil {
				return 0, gateway.ErrNotRunning
			}
			g, err := e.Grants(ctx)
			return len(g), err
		},
		Audit: func() (uint64, uint64) {
			if a := o.audit.Load(); a != nil {
				return a.Dropped(), a.Errors()
			}
			return 0, 0
		},
	}
	if o.src != nil {
		src.Capture = o.src.Stats
	}
	return src
}

// attach starts serving for eng: the control socket, metrics, signals,
// and READY=1 once the engine runs (its firewall is set up). It returns
// at once; everything stops when ctx is done or close is called.
func (o *ops) attach(ctx context.Context, eng *gateway.Engine) {
	ctx, o.cancel = context.WithCancel(ctx)
	o.eng.Store(eng)
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
		// Status is answered by the engine's loop, which runs only once
		// the firewall is set up and live grants are adopted.
		if _, err := eng.Status(ctx); err != nil {
			return
		}
		o.notify(daemon.SdNotifyReady + "\nSTATUS=gateway ready")
		<-ctx.Done()
		o.notify(daemon.SdNotifyStopping + "\nSTATUS=stopping; grants keep expiring in the kernel")
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

// close stops the ops side (after the engine has stopped): it waits for
// its goroutines, closes the audit log and releases the engine
// configuration's resources.
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
	if o.closeGC != nil {
		o.closeGC()
		o.closeGC = nil
	}
}

// onDecision feeds the audit log and the metrics (gateway.Config.OnDecision).
func (o *ops) onDecision(d gateway.Decision) {
	if a := o.audit.Load(); a != nil {
		a.Record(d)
	}
	if o.metrics != nil {
		o.metrics.Observe(d)
	}
}

// Status implements control.Handler.
func (o *ops) Status(ctx context.Context) (gateway.Status, error) {
	e := o.eng.Load()
	if e == nil {
		return gateway.Status{}, gateway.ErrNotRunning
	}
	return e.Status(ctx)
}

// Revoke implements control.Handler.
func (o *ops) Revoke(ctx context.Context, addr netip.Addr, svc service.Service) ([]firewall.Grant, error) {
	e := o.eng.Load()
	if e == nil {
		return nil, gateway.ErrNotRunning
	}
	return e.Revoke(ctx, addr, svc)
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
	o.notify(daemon.SdNotifyReady + "\nSTATUS=gateway ready (reloaded)")
	return nil
}

func (o *ops) reload(ctx context.Context) error {
	eng := o.eng.Load()
	if eng == nil {
		return gateway.ErrNotRunning
	}
	cfg, err := config.Load(o.path)
	if err != nil {
		return err
	}
	if err := restartOnly(o.cfg, cfg); err != nil {
		return err
	}
	gc, closeGC, err := o.build(cfg)
	if err != nil {
		return err
	}
	gc.OnDecision = o.onDecision
	if err := eng.Reload(ctx, gc); err != nil {
		closeGC()
		return err
	}
	o.closeGC, closeGC = closeGC, o.closeGC
	closeGC()
	o.switchAudit(cfg.Gateway.AuditLog)
	for _, w := range notReloaded(o.cfg, cfg) {
		o.log.Warn("changed setting applies at the next restart", "key", w)
	}
	o.cfg = cfg
	warnLockout(o.log, cfg)
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

// restartOnly refuses a reload that changes what only a restart can
// change without losing packets: the NFLOG groups the capture listens on.
func restartOnly(cur, next *config.Config) error {
	if cur.Gateway.NFLogGroup != next.Gateway.NFLogGroup || cur.Gateway.NFLogBulkGroup != next.Gateway.NFLogBulkGroup {
		return errors.New("nflog_group or nflog_bulk_group changed: the capture listens on the old groups; restart to apply (systemctl restart sesame)")
	}
	return nil
}

// notReloaded names changed settings a reload does not apply.
func notReloaded(cur, next *config.Config) []string {
	var out []string
	c, n := cur.Gateway, next.Gateway
	for _, x := range []struct {
		key     string
		changed bool
	}{
		{"log_format", c.LogFormat != n.LogFormat},
		{"log_level", c.LogLevel != n.LogLevel},
		{"state_dir", c.StateDir != n.StateDir},
		{"metrics_listen", c.MetricsListen != n.MetricsListen},
		{"control_socket", c.ControlSocket != n.ControlSocket},
	} {
		if x.changed {
			out = append(out, "gateway."+x.key)
		}
	}
	return out
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

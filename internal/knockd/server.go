package knockd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sesame-gw/sesame/internal/capture"
	"github.com/sesame-gw/sesame/internal/capture/afpacket"
	"github.com/sesame-gw/sesame/internal/gateway"
	"github.com/sesame-gw/sesame/internal/knock"
	"github.com/sesame-gw/sesame/internal/knockdconf"
)

// Config is what a Server needs.
type Config struct {
	// Conf is the parsed knockd.conf; ConfFile its path (for messages).
	Conf     *knockdconf.Config
	ConfFile string
	// Interfaces are the watched interfaces, for the start-up line
	// (empty: all).
	Interfaces []string
	// StateFile keeps the pending stop commands across restarts; "" keeps
	// them in memory only.
	StateFile string
	// Parity selects knockd's exact knock semantics (knock.Options.Knockd)
	// instead of Sesame's scan-proof ones.
	Parity bool
	// KeepPending leaves pending stop commands in StateFile at shutdown, to
	// run at their time after the next start, instead of running them now.
	KeepPending bool
	// MaxSources bounds the sources tracked per state machine.
	MaxSources int
	// Workers is how many commands run at once; default 4.
	Workers int
	// Logger gets Sesame's structured lines; nil discards.
	Logger *slog.Logger
	// Events gets knockd's log lines (LogFile, syslog); nil logs none.
	Events *EventLog
	// Runner runs commands; nil is ShellRunner{}.
	Runner Runner
	// IsLocal reports whether an address belongs to this host; nil reads
	// the interfaces' addresses.
	IsLocal func(netip.Addr) bool
	// SetFilter, when set, is called with the new capture filter whenever
	// the doors' ports change (a one-time sequence used, a reload).
	SetFilter func(afpacket.Filter) error
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// OnDecision, when set, is told of every decision (audit log,
	// metrics): grant or grant-failed once a door's start command has run,
	// reset, revoke, stop-failed. It is called from Run's goroutine and
	// must be quick.
	OnDecision func(gateway.Decision)
}

// Server runs a knockd.conf. Create it with New; call Run once. Reload,
// Status, Revoke and Stats are safe to call from other goroutines.
type Server struct {
	cfg     Config
	log     *slog.Logger
	ev      *EventLog
	now     func() time.Time
	isLocal func(netip.Addr) bool
	groups  []*group
	doors   []*door
	pending *pendingStore
	evbuf   []knock.Event

	control    chan func()   // control requests, run on Run's goroutine
	stopped    chan struct{} // closed when Run stops taking them
	src        capture.Source
	started    time.Time
	stats      gateway.Stats
	stopErrors uint64 // stop commands that failed
	recent     recentRing

	queue   []job // commands waiting for a worker
	running int   // commands on a worker
	starts  int   // start commands in queue
	jobs    chan job
	results chan result
}

type jobKind uint8

const (
	startJob jobKind = iota + 1
	stopJob
)

type job struct {
	kind    jobKind
	door    string
	src     netip.Addr
	command string
	stopID  uint64        // the pending stop a start command schedules (0: none)
	delay   time.Duration // Cmd_Timeout, for a start with a stop
	opened  time.Time     // for a start: when the knock completed
}

type result struct {
	job    job
	status int
	err    error
	at     time.Time
}

// maxQueuedStarts bounds the start commands waiting for a worker: beyond
// it, a completed knock runs nothing (logged). Stop commands always queue.
const maxQueuedStarts = 1024

// New builds a server: it opens the one-time sequence files and reads the
// pending stop commands. It starts nothing.
func New(cfg Config) (*Server, error) {
	if cfg.Conf == nil || len(cfg.Conf.Doors) == 0 {
		return nil, errors.New("knockd: no door in the configuration")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Runner == nil {
		cfg.Runner = ShellRunner{}
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	s := &Server{cfg: cfg, log: cfg.Logger, ev: cfg.Events, now: cfg.Now, isLocal: cfg.IsLocal,
		control: make(chan func()), stopped: make(chan struct{})}
	if s.isLocal == nil {
		s.isLocal = newLocalAddrs(cfg.Now).has
	}
	var err error
	if s.groups, s.doors, err = buildGroups(cfg.ConfFile, cfg.Conf, s.knockOptions(), nil); err != nil {
		return nil, err
	}
	if s.pending, err = loadPending(cfg.StateFile); err != nil {
		return nil, err
	}
	s.warnFlagless()
	return s, nil
}

func (s *Server) knockOptions() knock.Options {
	return knock.Options{Knockd: s.cfg.Parity, MaxSources: s.cfg.MaxSources}
}

func (s *Server) warnFlagless() {
	if s.cfg.Parity {
		return
	}
	for _, d := range s.doors {
		if d.conf.Flags == (knock.Flags{}) {
			for _, st := range d.sequence() {
				if st.Proto == 6 {
					s.log.Warn("door accepts knocks with any TCP flags, so TCP traffic of an established session from a knocking source resets its attempt; TCPFlags = syn avoids that", "door", d.conf.Name)
					break
				}
			}
		}
	}
}

// Filter is the capture filter for the current doors.
func (s *Server) Filter() afpacket.Filter { return filterFor(s.doors, s.cfg.Parity) }

// Run processes packets from src until ctx is done or src fails. At the
// end it runs the pending stop commands (or, with KeepPending, leaves them
// in the state file), waits for running commands, and returns nil when ctx
// was cancelled.
func (s *Server) Run(ctx context.Context, src capture.Source) error {
	ifaces := "all interfaces"
	if len(s.cfg.Interfaces) > 0 {
		ifaces = strings.Join(s.cfg.Interfaces, ",")
	}
	s.ev.Printf("starting up, listening on %s", ifaces)
	s.log.Info("knockd mode ready", "doors", len(s.doors), "parity", s.cfg.Parity, "interfaces", ifaces, "pending_stops", s.pending.len())
	s.src, s.started = src, s.now()

	runCtx, stopCommands := context.WithCancel(context.Background())
	defer stopCommands()
	s.jobs, s.results = make(chan job), make(chan result)
	var wg sync.WaitGroup
	for range s.cfg.Workers {
		wg.Add(1)
		go func() { defer wg.Done(); s.worker(runCtx) }()
	}
	defer func() { close(s.jobs); wg.Wait() }()

	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	packets := make(chan capture.Packet, 1024)
	readErr := make(chan error, 1)
	var rwg sync.WaitGroup
	rwg.Add(1)
	go func() { defer rwg.Done(); readErr <- read(readCtx, src, packets, &s.stats.Dropped) }()
	defer rwg.Wait()

	expiry := newTimer()
	due := newTimer()
	var runErr error
loop:
	for {
		expiry.arm(s.nextExpiry(), s.now())
		due.arm(s.pending.nextDue(), s.now())
		var jobs chan job
		var head job
		if len(s.queue) > 0 {
			jobs, head = s.jobs, s.queue[0]
		}
		select {
		case <-ctx.Done():
			break loop
		case err := <-readErr:
			if ctx.Err() == nil {
				runErr = fmt.Errorf("capture: %w", err)
			}
			break loop
		case p := <-packets:
			s.Handle(p)
		case <-expiry.C():
			expiry.fired()
			s.expire()
		case <-due.C():
			due.fired()
			s.runDue()
		case jobs <- head:
			s.dequeue()
		case r := <-s.results:
			s.finished(r)
		case fn := <-s.control:
			fn()
		}
	}
	close(s.stopped)
	stopReading()
	s.shutdown(stopCommands)
	s.ev.Printf("shutting down")
	return runErr
}

// read moves packets from the source to the loop, dropping (and counting)
// what the loop cannot take at once (the source must keep draining the
// kernel).
func read(ctx context.Context, src capture.Source, out chan<- capture.Packet, dropped *atomic.Uint64) error {
	for {
		p, err := src.ReadPacket(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		p.Payload = nil
		select {
		case out <- p:
		default:
			dropped.Add(1)
		}
	}
}

// Handle processes one packet (Run calls it; tests may too, from one
// goroutine, when Run is not running).
func (s *Server) Handle(p capture.Packet) {
	s.stats.Packets.Add(1)
	now := p.Time
	if now.IsZero() {
		now = s.now()
	}
	dst := p.Dst.Unmap()
	local := false
	for _, g := range s.groups {
		if g.target.IsValid() {
			if dst != g.target {
				continue
			}
		} else {
			if !local && !s.isLocal(dst) {
				continue
			}
			local = true
		}
		s.evbuf = g.m.Observe(s.evbuf[:0], now, p.Src, p.Service(), p.Flags)
		s.apply(g, s.evbuf, now)
	}
}

func (s *Server) nextExpiry() time.Time {
	var t time.Time
	for _, g := range s.groups {
		if e := g.m.NextExpiry(); !e.IsZero() && (t.IsZero() || e.Before(t)) {
			t = e
		}
	}
	return t
}

func (s *Server) expire() {
	now := s.now()
	for _, g := range s.groups {
		s.evbuf = g.m.Expire(s.evbuf[:0], now)
		s.apply(g, s.evbuf, now)
	}
}

func (s *Server) apply(g *group, events []knock.Event, now time.Time) {
	for _, e := range events {
		d := g.doors[e.Door]
		name := d.conf.Name
		switch e.Kind {
		case knock.Started, knock.Advanced:
			s.stats.Knocks.Add(1)
			s.ev.Printf("%s: %s: Stage %d", e.Src, name, e.Stage)
			s.log.Info("knock", "src", e.Src, "door", name, "stage", e.Stage, "of", len(d.sequence()), "service", e.Service)
		case knock.Repeated:
			s.log.Debug("repeated knock ignored", "src", e.Src, "door", name, "stage", e.Stage, "service", e.Service)
		case knock.Reset:
			if e.Reason == knock.ReasonTimeout {
				s.ev.Printf("%s: %s: sequence timeout (stage %d)\n", e.Src, name, e.Reached)
			}
			attrs := []any{"src", e.Src, "door", name, "reason", e.Reason, "stage", e.Reached}
			if e.Service.Valid() {
				attrs = append(attrs, "service", e.Service)
			}
			s.log.Info("knock reset", attrs...)
			s.stats.Resets.Add(1)
			s.decide(gateway.Decision{Time: now, Kind: "reset", Src: e.Src, Door: name, Reason: e.Reason})
		case knock.Completed:
			s.stats.Grants.Add(1)
			s.ev.Printf("%s: %s: Stage %d", e.Src, name, e.Stage)
			s.ev.Printf("%s: %s: OPEN SESAME", e.Src, name)
			s.log.Info("door opened", "src", e.Src, "door", name)
			s.opened(d, e.Src, now)
		}
	}
}

// opened runs a door's start command (and schedules its stop command) for
// src, then moves a one-time door to its next sequence. The door's grant
// decision is made when the start command has run (finished); a door
// that runs nothing is granted at once.
func (s *Server) opened(d *door, src netip.Addr, now time.Time) {
	src = src.Unmap()
	v6 := src.Is6()
	grant := gateway.Decision{Time: now, Kind: "grant", Src: src, Door: d.conf.Name}
	if start := d.conf.StartCommand(v6); start != "" {
		stop, hasStop := d.conf.StopCommand(v6)
		startCmd, ok := Expand(start, src)
		stopCmd, stopOK := "", true
		if hasStop {
			stopCmd, stopOK = Expand(stop, src)
		}
		switch {
		case !ok:
			s.ev.Printf("error: parsed start command has been truncated! --> won't execute it")
			s.log.Error("start command too long after %IP% expansion: nothing run", "door", d.conf.Name, "src", src)
			s.grantFailed(grant, "start command too long after %IP% expansion")
		case !stopOK:
			s.ev.Printf("error: parsed stop command has been truncated! --> won't execute start command")
			s.log.Error("stop command too long after %IP% expansion: nothing run", "door", d.conf.Name, "src", src)
			s.grantFailed(grant, "stop command too long after %IP% expansion")
		case s.starts >= maxQueuedStarts:
			s.log.Error("too many start commands waiting: knock not acted on", "door", d.conf.Name, "src", src, "queued", s.starts)
			s.grantFailed(grant, "too many start commands waiting")
		default:
			j := job{kind: startJob, door: d.conf.Name, src: src, command: startCmd, opened: now}
			if hasStop {
				// Written before the start runs: a crash during it still
				// closes the door after the next start.
				id, err := s.pending.add(d.conf.Name, src.String(), stopCmd, now.Add(d.conf.CmdTimeout))
				if err != nil {
					s.log.Error("cannot persist the pending stop command", "door", d.conf.Name, "src", src, "err", err)
				}
				j.stopID, j.delay = id, d.conf.CmdTimeout
			}
			s.enqueue(j)
		}
	} else {
		s.decide(grant)
	}
	if d.ot != nil {
		s.nextOneTime(d)
	}
}

func (s *Server) nextOneTime(d *door) {
	next, err := d.ot.use()
	if err != nil {
		s.ev.Printf("error while disabling used one time sequence for door %s --> disabling the door\n", d.conf.Name)
		s.log.Error("one-time sequence file", "door", d.conf.Name, "err", err)
		d.ot.current = nil
	} else if next == nil {
		s.ev.Printf("no more sequences left in the one time sequences file for door %s --> disabling the door\n", d.conf.Name)
		s.log.Warn("no one-time sequence left: door disabled", "door", d.conf.Name, "file", d.ot.path)
	} else {
		s.log.Info("next one-time sequence", "door", d.conf.Name, "steps", len(next))
	}
	d.g.m.SetSequence(d.idx, d.ot.current)
	s.updateFilter()
}

func (s *Server) updateFilter() {
	if s.cfg.SetFilter == nil {
		return
	}
	if err := s.cfg.SetFilter(s.Filter()); err != nil {
		s.log.Error("cannot update the capture filter", "err", err)
	}
}

func (s *Server) enqueue(j job) {
	s.queue = append(s.queue, j)
	if j.kind == startJob {
		s.starts++
	}
}

func (s *Server) dequeue() {
	if s.queue[0].kind == startJob {
		s.starts--
	}
	s.queue[0] = job{}
	s.queue = s.queue[1:]
	s.running++
}

// runDue hands the stop commands whose time has come to the workers.
func (s *Server) runDue() {
	for _, p := range s.pending.due(s.now()) {
		s.startStop(p, "command timeout")
	}
}

// startStop queues p's stop command now; why is knockd's log message
// ("command timeout").
func (s *Server) startStop(p *pendingStop, why string) {
	p.running = true
	s.ev.Printf("%s: %s: %s", p.Src, p.Door, why)
	src, _ := netip.ParseAddr(p.Src)
	s.enqueue(job{kind: stopJob, door: p.Door, src: src, command: p.Command, stopID: p.ID})
}

func (s *Server) worker(ctx context.Context) {
	for j := range s.jobs {
		s.ev.Printf("%s: running command: %s\n", j.door, j.command)
		s.log.Info("running command", "door", j.door, "src", j.src, "kind", map[jobKind]string{startJob: "start", stopJob: "stop"}[j.kind], "command", j.command)
		status, err := s.cfg.Runner.Run(ctx, j.command)
		s.results <- result{job: j, status: status, err: err, at: s.now()}
	}
}

func (s *Server) finished(r result) {
	s.running--
	j := r.job
	failure := ""
	switch {
	case r.err != nil:
		s.ev.Printf("error: command fork failed!")
		s.log.Error("command failed to run", "door", j.door, "src", j.src, "err", r.err)
		failure = "command could not run: " + r.err.Error()
	case r.status != 0:
		s.ev.Printf("%s: command returned non-zero status code (%d)", j.door, r.status)
		s.log.Warn("command returned non-zero status", "door", j.door, "src", j.src, "status", r.status)
		failure = fmt.Sprintf("command exited with status %d", r.status)
	}
	var err error
	switch j.kind {
	case startJob:
		grant := gateway.Decision{Time: r.at, Kind: "grant", Src: j.src, Door: j.door, Latency: r.at.Sub(j.opened)}
		if failure != "" {
			s.grantFailed(grant, "start "+failure)
		} else {
			s.decide(grant)
		}
		if p := s.pending.stops[j.stopID]; p != nil {
			due := r.at.Add(j.delay)
			if p.revoked {
				due = r.at
			}
			err = s.pending.ready(j.stopID, due)
		}
	case stopJob:
		if failure != "" {
			s.stopErrors++
			s.decide(gateway.Decision{Time: r.at, Kind: "stop-failed", Src: j.src, Door: j.door, Reason: "stop " + failure})
		}
		err = s.pending.remove(j.stopID)
	}
	if err != nil {
		s.log.Error("cannot persist the pending stop commands", "err", err)
	}
}

// shutdownGrace bounds how long shutdown waits for commands.
const shutdownGrace = 30 * time.Second

// shutdown waits for running and queued commands and, unless KeepPending,
// runs every pending stop command now. Commands still running after
// shutdownGrace are killed.
func (s *Server) shutdown(kill context.CancelFunc) {
	deadline := time.NewTimer(shutdownGrace)
	defer deadline.Stop()
	if !s.cfg.KeepPending {
		for _, p := range s.pending.all() {
			if p.Ready { // the others run when their start command is done
				s.startStop(p, "command timeout")
			}
		}
	}
	for len(s.queue) > 0 || s.running > 0 {
		var jobs chan job
		var head job
		if len(s.queue) > 0 {
			jobs, head = s.jobs, s.queue[0]
		}
		select {
		case jobs <- head:
			s.dequeue()
		case r := <-s.results:
			s.finished(r)
			if !s.cfg.KeepPending && r.job.kind == startJob && r.job.stopID != 0 {
				if p := s.pending.stops[r.job.stopID]; p != nil && !p.running {
					s.startStop(p, "command timeout")
				}
			}
		case <-deadline.C:
			s.log.Error("commands still running at shutdown: killed", "running", s.running, "queued", len(s.queue))
			s.queue = nil
			kill()
			for s.running > 0 {
				s.finished(<-s.results)
			}
			return
		}
	}
	if n := s.pending.len(); n > 0 {
		s.log.Info("pending stop commands kept for the next start", "count", n, "file", s.cfg.StateFile)
	}
}

// timer wraps time.Timer with the "armed for" bookkeeping of the loop.
type timer struct {
	t     *time.Timer
	armed time.Time
}

func newTimer() *timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &timer{t: t}
}

func (t *timer) arm(at, now time.Time) {
	if at.Equal(t.armed) {
		return
	}
	t.armed = at
	if at.IsZero() {
		t.t.Stop()
		return
	}
	t.t.Reset(max(at.Sub(now), 0))
}

func (t *timer) C() <-chan time.Time { return t.t.C }
func (t *timer) fired()              { t.armed = time.Time{} }

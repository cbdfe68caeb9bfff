// Package gateway is the engine: captured packet → decision → grant. It
// talks to the kernel only through firewall.Firewall and capture.Source, so
// the whole engine runs in-process in tests with the fakes.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sesame-gw/sesame/internal/capture"
	"github.com/sesame-gw/sesame/internal/firewall"
	"github.com/sesame-gw/sesame/internal/knock"
	"github.com/sesame-gw/sesame/internal/service"
)

// Door is a knock door with what it opens.
type Door struct {
	knock.Door
	// Open and Duration make kernel grants for the knocking source.
	Open     []service.Service
	Duration time.Duration
	// Action, when set, is also told of each completion (knockd-style
	// start/stop commands). It is called from the engine's goroutine and
	// must not block: queue slow work.
	Action Action
}

// Action is what a completed door does besides kernel grants.
type Action interface {
	Opened(src netip.Addr, door string, at time.Time)
}

// Config is what the engine needs to run.
type Config struct {
	Doors      []Door
	MaxSources int
	Layout     firewall.Layout
	Logger     *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// SPAPorts are the UDP services whose datagrams go to Handlers.
	SPAPorts []service.Service
	// Handlers decide on SPA datagrams, first match wins.
	Handlers []DatagramHandler
	// Workers verifying datagrams at once; 0 means GOMAXPROCS.
	Workers int
	// OnDecision, when set, is told of every grant, reject, reset and
	// revoke (audit log, metrics). It is called from several goroutines
	// and must be quick and safe for concurrent use.
	OnDecision func(Decision)

	// SourceRate and SourceBurst bound the datagrams per second one source
	// (an IPv4 address or an IPv6 /64) may have verified; 0 means 20/s
	// with bursts of 40.
	SourceRate, SourceBurst float64
}

// When Run returns, the table stays in the kernel: grants keep expiring
// on their own and protected ports stay hidden. Removing it is `sesame
// cleanup`'s job.

// Engine runs one gateway. Create it with New and call Run once.
type Engine struct {
	cfg    Config
	fw     firewall.Firewall
	src    capture.Source
	log    *slog.Logger
	now    func() time.Time
	knock  *knock.Machine
	writer *writer
	limit  *logLimiter
	stats  Stats
	evbuf  []knock.Event

	dgram     atomic.Pointer[datagramConfig]
	datagrams chan datagram
	perSource *sourceLimiter
	decisions *decisionRing

	control chan func()   // work to run on the engine goroutine
	stopped chan struct{} // closed when Run returns
	started time.Time
}

// datagramConfig is what the capture reader and the workers read while a
// reload may swap it.
type datagramConfig struct {
	ports    map[uint16]bool
	handlers []DatagramHandler
}

func newDatagramConfig(cfg Config) *datagramConfig {
	d := &datagramConfig{ports: make(map[uint16]bool), handlers: cfg.Handlers}
	for _, s := range cfg.SPAPorts {
		if s.Proto == service.UDP {
			d.ports[s.Port] = true
		}
	}
	return d
}

// Stats are the engine's cumulative counters.
type Stats struct {
	Packets, Knocks, Resets, Grants, GrantErrors, Dropped atomic.Uint64
	// Datagrams counts SPA datagrams by outcome.
	Datagrams, DatagramsDropped, RateLimited, Rejected atomic.Uint64
}

// New returns an engine over fw and src. A nil fw runs the engine without
// a firewall of its own: doors can then only run actions.
func New(cfg Config, fw firewall.Firewall, src capture.Source) *Engine {
	if fw == nil {
		fw = noFirewall{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	doors := make([]knock.Door, len(cfg.Doors))
	for i, d := range cfg.Doors {
		doors[i] = d.Door
	}
	e := &Engine{
		cfg:   cfg,
		fw:    fw,
		src:   src,
		log:   cfg.Logger,
		now:   cfg.Now,
		knock: knock.New(doors, cfg.MaxSources),
		limit: newLogLimiter(cfg.Now, 50, 200),
	}
	e.decisions = newDecisionRing(100, cfg.OnDecision)
	e.writer = newWriter(fw, cfg.Logger, &e.stats, e.decisions)
	e.dgram.Store(newDatagramConfig(cfg))
	e.control = make(chan func())
	e.stopped = make(chan struct{})
	if e.cfg.Workers <= 0 {
		e.cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if e.cfg.SourceRate <= 0 {
		e.cfg.SourceRate, e.cfg.SourceBurst = 20, 40
	}
	e.datagrams = make(chan datagram, 1024)
	e.perSource = newSourceLimiter(e.cfg.SourceRate, max(e.cfg.SourceBurst, 1), maxLimitedSources)
	return e
}

// Stats returns the engine's counters (safe for concurrent use).
func (e *Engine) Stats() *Stats { return &e.stats }

// Run sets the firewall up, adopts the grants already in the kernel, and
// processes packets until ctx is done or the source fails. It returns nil
// when ctx is cancelled.
func (e *Engine) Run(ctx context.Context) error {
	defer close(e.stopped)
	e.started = e.now()
	if err := e.fw.Setup(ctx, kernelLayout(e.cfg.Layout, e.cfg)); err != nil {
		return fmt.Errorf("firewall setup: %w", err)
	}
	live, err := e.fw.List(ctx)
	if err != nil {
		return fmt.Errorf("listing live grants: %w", err)
	}
	for _, g := range live {
		e.log.Info("adopted grant", "src", g.Addr, "service", g.Service, "remaining", g.TTL.Round(time.Millisecond))
	}
	e.log.Info("gateway ready", "doors", len(e.cfg.Doors), "protected", len(e.cfg.Layout.Protected), "watched", len(e.cfg.Layout.Watched), "adopted", len(live))

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Add(1)
	go func() { defer wg.Done(); e.writer.run(ctx) }()
	for range e.cfg.Workers {
		wg.Add(1)
		go func() { defer wg.Done(); e.verify(ctx) }()
	}
	packets := make(chan capture.Packet, 1024)
	readErr := make(chan error, 1)
	wg.Add(1)
	go func() { defer wg.Done(); readErr <- e.read(ctx, packets) }()

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	armed := time.Time{}
	for {
		if next := e.knock.NextExpiry(); !next.Equal(armed) {
			armed = next
			if !next.IsZero() {
				timer.Reset(max(next.Sub(e.now()), 0))
			} else {
				timer.Stop()
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-readErr:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("capture: %w", err)
		case p := <-packets:
			e.Handle(p)
		case fn := <-e.control:
			fn()
		case <-timer.C:
			armed = time.Time{}
			e.evbuf = e.knock.Expire(e.evbuf[:0], e.now())
			e.apply(e.evbuf)
		}
	}
}

// read moves packets from the source to the engine loop. Packets the loop
// cannot take at once are dropped and counted: the source must keep
// draining the kernel.
func (e *Engine) read(ctx context.Context, out chan<- capture.Packet) error {
	for {
		p, err := e.src.ReadPacket(ctx)
		if err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, capture.ErrClosed) && ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		if p.Proto == service.UDP {
			if d := e.dgram.Load(); d.ports[p.DstPort] && len(d.handlers) > 0 {
				e.queueDatagram(p)
			}
		}
		p.Payload = nil // the knock path never needs it; it aliases the source's buffer
		select {
		case out <- p:
		default:
			e.stats.Dropped.Add(1)
		}
	}
}

// Handle processes one packet synchronously (Run calls it; tests may too,
// from a single goroutine).
func (e *Engine) Handle(p capture.Packet) {
	e.stats.Packets.Add(1)
	now := p.Time
	if now.IsZero() {
		now = e.now()
	}
	e.evbuf = e.knock.Observe(e.evbuf[:0], now, p.Src, p.Service(), p.Flags)
	e.apply(e.evbuf)
}

func (e *Engine) apply(events []knock.Event) {
	for _, ev := range events {
		d := &e.cfg.Doors[ev.Door]
		switch ev.Kind {
		case knock.Started, knock.Advanced:
			e.stats.Knocks.Add(1)
			if e.limit.allow() {
				attrs := []any{"src", ev.Src, "door", d.Name, "stage", ev.Stage}
				if len(d.Sequence) > 0 { // a rotating door's length is its period's
					attrs = append(attrs, "of", len(d.Sequence))
				}
				e.log.Info("knock", append(attrs, "service", ev.Service)...)
			}
		case knock.Repeated:
			e.log.Debug("repeated knock ignored", "src", ev.Src, "door", d.Name, "stage", ev.Stage, "service", ev.Service)
		case knock.Reset:
			e.stats.Resets.Add(1)
			e.decisions.add(Decision{Time: e.now(), Kind: "reset", Src: ev.Src, Door: d.Name, Reason: ev.Reason})
			if e.limit.allow() {
				attrs := []any{"src", ev.Src, "door", d.Name, "reason", ev.Reason}
				if ev.Service.Valid() {
					attrs = append(attrs, "service", ev.Service)
				}
				e.log.Info("knock reset", attrs...)
			}
		case knock.Completed:
			e.stats.Grants.Add(1)
			if d.Action != nil {
				d.Action.Opened(ev.Src, d.Name, e.now())
			}
			if len(d.Open) > 0 {
				grants := make([]firewall.Grant, len(d.Open))
				for i, s := range d.Open {
					grants[i] = firewall.Grant{Addr: ev.Src, Service: s, TTL: d.Duration}
				}
				e.writer.grant(grantRequest{grants: grants, door: d.Name, at: e.now()})
			} else {
				e.log.Info("door opened", "src", ev.Src, "door", d.Name)
			}
		}
	}
	if n := e.limit.takeSuppressed(); n > 0 {
		e.log.Warn("log lines suppressed (knock flood?)", "count", n)
	}
}

// Grants returns the live grants as the kernel reports them.
func (e *Engine) Grants(ctx context.Context) ([]firewall.Grant, error) { return e.fw.List(ctx) }

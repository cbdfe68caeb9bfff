package knockd

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/sesame-gw/sesame/internal/gateway"
	"github.com/sesame-gw/sesame/internal/knockdconf"
)

// Reload replaces the configuration (SIGHUP, `sesame reload`): the new
// doors are built first (one-time sequence files read again) and, if one
// is refused, nothing changes and the error (file:line) is returned.
// Otherwise attempts in progress on unchanged doors carry on, those on
// removed or changed doors are dropped, and pending stop commands are
// kept. Safe to call from any goroutine while Run runs.
func (s *Server) Reload(ctx context.Context, conf *knockdconf.Config) error {
	var err error
	if derr := s.do(ctx, func() { err = s.applyReload(conf) }); derr != nil {
		return derr
	}
	return err
}

func (s *Server) applyReload(conf *knockdconf.Config) error {
	s.ev.Printf("re-reading config file: %s\n", s.cfg.ConfFile)
	groups, doors, err := buildGroups(s.cfg.ConfFile, conf, s.knockOptions(), s.groups)
	if err != nil {
		return err
	}
	s.groups, s.doors = groups, doors
	s.cfg.Conf = conf
	s.warnFlagless()
	s.updateFilter()
	s.log.Info("configuration reloaded", "doors", len(doors))
	return nil
}

// ErrNotRunning is returned by the control methods when Run is not
// active (not started yet is not an error: they wait for it).
var ErrNotRunning = errors.New("knockd: not running")

// do runs fn on Run's goroutine, which owns the doors and the pending
// stops, and waits for it. The loop runs fn as soon as it takes it.
func (s *Server) do(ctx context.Context, fn func()) error {
	done := make(chan struct{})
	select {
	case s.control <- func() { defer close(done); fn() }:
		<-done
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stopped:
		return ErrNotRunning
	}
}

// Revoked is a pending stop command that Revoke ran early.
type Revoked struct {
	Door    string
	Src     netip.Addr
	Command string // expanded
}

// Revoke is `sesame revoke ADDR` in this mode, where Sesame holds no
// grant of its own: it runs addr's pending stop commands now (a stop
// whose start command is still running runs as soon as that is done) and
// returns them, oldest first. Each is a "revoke" decision. Safe to call
// from any goroutine while Run runs.
func (s *Server) Revoke(ctx context.Context, addr netip.Addr) ([]Revoked, error) {
	var out []Revoked
	addr = addr.Unmap()
	err := s.do(ctx, func() {
		now := s.now()
		for _, p := range s.pending.all() {
			if p.Src != addr.String() {
				continue
			}
			out = append(out, Revoked{Door: p.Door, Src: addr, Command: p.Command})
			s.log.Info("revoke: stop command runs now", "src", addr, "door", p.Door, "start_done", p.Ready)
			if p.Ready {
				s.startStop(p, "revoked by admin")
			} else {
				p.revoked = true
			}
			s.decide(gateway.Decision{Time: now, Kind: "revoke", Src: addr, Door: p.Door, Reason: "revoked by admin"})
		}
	})
	return out, err
}

// Stats returns the counters, in the nftables gateway's terms: Grants are
// completed knocks, GrantErrors start commands that failed or were not
// run, Dropped packets the loop could not take. Safe for concurrent use.
func (s *Server) Stats() *gateway.Stats { return &s.stats }

// stopCommand names a pending stop command in Status's grants.
const stopCommand = "Stop_Command"

// Status is a snapshot for `sesame status`, in the gateway's terms: the
// doors (Open names the start commands a door runs, Duration is its
// Cmd_Timeout when it has a stop command), the pending stop commands as
// the live grants (Service "[door] Stop_Command", Remaining until it runs;
// before the start command is done, counted from the knock), the sources
// part-way through a sequence, the recent decisions and the counters.
// Safe to call from any goroutine while Run runs.
func (s *Server) Status(ctx context.Context) (gateway.Status, error) {
	var st gateway.Status
	err := s.do(ctx, func() {
		now := s.now()
		st.Started = s.started
		for _, d := range s.doors {
			st.Doors = append(st.Doors, doorStatus(d))
		}
		for _, g := range s.groups {
			st.Tracking += g.m.Len()
		}
		for _, p := range s.pending.all() {
			src, _ := netip.ParseAddr(p.Src)
			st.Grants = append(st.Grants, gateway.GrantStatus{Src: src, Service: "[" + p.Door + "] " + stopCommand,
				Remaining: max(p.Due.Sub(now), 0).Round(time.Second).String()})
		}
		st.Recent = s.recent.list()
		c, cs := &s.stats, s.src.Stats() // Run set src
		st.Counters = map[string]uint64{
			"packets": c.Packets.Load(), "knocks": c.Knocks.Load(), "resets": c.Resets.Load(),
			"grants": c.Grants.Load(), "grant_errors": c.GrantErrors.Load(), "stop_errors": s.stopErrors,
			"capture_queue_drops": c.Dropped.Load(), "pending_stops": uint64(s.pending.len()),
			"commands_queued": uint64(len(s.queue)), "commands_running": uint64(s.running),
			"capture_received": cs.Received, "capture_malformed": cs.Malformed, "capture_dropped": cs.Dropped,
		}
	})
	return st, err
}

func doorStatus(d *door) gateway.DoorStatus {
	ds := gateway.DoorStatus{Name: d.conf.Name}
	for _, s := range d.sequence() {
		ds.Sequence = append(ds.Sequence, s.String())
	}
	if d.conf.Start.Text != "" {
		ds.Open = append(ds.Open, "Start_Command")
	}
	if d.conf.Start6.Text != "" {
		ds.Open = append(ds.Open, "Start_Command_6")
	}
	if d.conf.Stop.Set || d.conf.Stop6.Set {
		ds.Duration = d.conf.CmdTimeout.String()
	}
	return ds
}

// decide records a decision for Status and tells Config.OnDecision.
func (s *Server) decide(d gateway.Decision) {
	s.recent.add(d)
	if s.cfg.OnDecision != nil {
		s.cfg.OnDecision(d)
	}
}

func (s *Server) grantFailed(d gateway.Decision, reason string) {
	s.stats.GrantErrors.Add(1)
	d.Kind, d.Reason = "grant-failed", reason
	s.decide(d)
}

// keptDecisions is how many decisions Status shows.
const keptDecisions = 100

// recentRing keeps the last keptDecisions decisions. The zero value is
// empty; it is owned by Run's goroutine.
type recentRing struct {
	buf   []gateway.Decision
	added int
}

func (r *recentRing) add(d gateway.Decision) {
	if r.buf == nil {
		r.buf = make([]gateway.Decision, keptDecisions)
	}
	r.buf[r.added%keptDecisions] = d
	r.added++
}

// list returns the kept decisions, oldest first.
func (r *recentRing) list() []gateway.Decision {
	if r.added <= keptDecisions {
		return append([]gateway.Decision(nil), r.buf[:r.added]...)
	}
	i := r.added % keptDecisions
	return append(append([]gateway.Decision(nil), r.buf[i:]...), r.buf[:i]...)
}

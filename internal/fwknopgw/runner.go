package fwknopgw

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sesame-gw/sesame/internal/fwknop/accessconf"
)

// Cmd is one command to run: argv, never through a shell (fwknopd's
// run_extcmd splits on blanks and execs the same way), and for command
// messages the account to run it as (CMD_EXEC_USER, CMD_EXEC_GROUP;
// empty means the daemon's own).
type Cmd struct {
	Argv        []string
	User, Group string
}

// Exec runs one command to completion or until ctx ends and returns its
// combined output (bounded). It is the Runner's only contact with the
// OS; OSExec is the real one, tests pass a fake.
type Exec func(ctx context.Context, c Cmd) ([]byte, error)

// Runner defaults.
const (
	// DefaultCmdTimeout bounds one command (fwknopd's CMD_EXEC_TIMEOUT
	// default, 30 s).
	DefaultCmdTimeout = 30 * time.Second
	// DefaultMaxPending bounds the scheduled CMD_CYCLE_CLOSE commands;
	// beyond it CMD_CYCLE grants are refused (fail closed).
	DefaultMaxPending = 4096
	maxRunning        = 4   // commands running at once
	maxQueued         = 256 // commands waiting to run; more are dropped and logged
)

// RunnerOptions configure NewRunner. The zero value runs commands with
// OSExec and keeps scheduled closes in memory only.
type RunnerOptions struct {
	// State is the file that keeps scheduled CMD_CYCLE_CLOSE commands
	// across restarts (JSON, mode 0600); "" keeps them in memory only.
	State string
	// Timeout bounds each command; 0 means DefaultCmdTimeout.
	Timeout time.Duration
	// MaxPending bounds scheduled closes; 0 means DefaultMaxPending.
	MaxPending int
	// Exec runs commands; nil means OSExec.
	Exec Exec
	// Logger receives one line per command run (nil discards).
	Logger *slog.Logger
}

// Runner runs the commands of CMD_CYCLE stanzas and of allowed command
// messages, off the packet path: at most 4 at once, 256 waiting, each
// bounded by a timeout. A CMD_CYCLE_CLOSE is scheduled only when its
// CMD_CYCLE_OPEN exited 0, runs once its delay has passed, and is kept in
// the State file until it has run, so a restart runs the closes that fell
// due while the daemon was down (at least once: a close interrupted by a
// crash runs again). Safe for concurrent use.
type Runner struct {
	exec    Exec
	timeout time.Duration
	max     int
	state   string
	log     *slog.Logger

	ctx    context.Context // cancelled by Close: queued commands give up
	cancel context.CancelFunc
	slots  chan struct{}
	wg     sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	queued   int
	reserved int // CMD_CYCLE opens running whose close will need a slot
	nextID   uint64
	pending  map[uint64]*pendingClose
}

// pendingClose is one scheduled CMD_CYCLE_CLOSE (also its State form).
type pendingClose struct {
	At    time.Time   `json:"at"`
	Argv  []string    `json:"argv"`
	Src   string      `json:"src"`
	Who   string      `json:"stanza"`
	timer *time.Timer `json:"-"`
}

type stateFile struct {
	Closes []*pendingClose `json:"closes"`
}

// NewRunner returns a Runner. With State set it loads the closes
// scheduled by a previous run: those already due run at once, the others
// when they fall due. A State file that cannot be read is an error
// (silently forgetting closes would leave access open).
func NewRunner(o RunnerOptions) (*Runner, error) {
	r := &Runner{exec: o.Exec, timeout: o.Timeout, max: o.MaxPending, state: o.State, log: o.Logger, pending: map[uint64]*pendingClose{}}
	if r.exec == nil {
		r.exec = OSExec
	}
	if r.timeout <= 0 {
		r.timeout = DefaultCmdTimeout
	}
	if r.max <= 0 {
		r.max = DefaultMaxPending
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.slots = make(chan struct{}, maxRunning)
	if r.state == "" {
		return r, nil
	}
	b, err := os.ReadFile(r.state)
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("CMD_CYCLE state: %w", err)
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("CMD_CYCLE state %s: %w (fix or remove it; it lists the CMD_CYCLE_CLOSE commands still to run)", r.state, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range st.Closes {
		if len(p.Argv) == 0 {
			continue
		}
		r.scheduleLocked(p)
	}
	if len(st.Closes) > 0 {
		r.log.Info("fwknop: CMD_CYCLE_CLOSE commands carried over from the last run", "count", len(r.pending), "state", r.state)
	}
	return r, nil
}

// Pending is the number of scheduled CMD_CYCLE_CLOSE commands.
func (r *Runner) Pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}

// Cycle runs cc.Open for src and, if it exits 0 and cc has a close
// command, schedules cc.Close after cc.CloseAfter. who names the stanza
// for the logs. It returns at once; it refuses (false, logged) when the
// closes already scheduled are at the limit or the queue is full.
func (r *Runner) Cycle(src netip.Addr, who string, cc *accessconf.CmdCycle) bool {
	r.mu.Lock()
	if cc.Close != nil && len(r.pending)+r.reserved >= r.max {
		r.mu.Unlock()
		r.log.Error("fwknop: CMD_CYCLE_OPEN not run: too many CMD_CYCLE_CLOSE commands scheduled", "src", src, "stanza", who, "limit", r.max)
		return false
	}
	if !r.enqueueLocked() {
		r.mu.Unlock()
		r.log.Error("fwknop: CMD_CYCLE_OPEN not run: command queue full", "src", src, "stanza", who)
		return false
	}
	if cc.Close != nil {
		r.reserved++
	}
	r.mu.Unlock()
	go func() {
		defer r.wg.Done()
		err := r.run("CMD_CYCLE_OPEN", Cmd{Argv: cc.Open}, src, who)
		r.mu.Lock()
		defer r.mu.Unlock()
		if cc.Close == nil {
			return
		}
		r.reserved--
		if err != nil {
			r.log.Warn("fwknop: CMD_CYCLE_CLOSE not scheduled: CMD_CYCLE_OPEN failed", "src", src, "stanza", who)
			return
		}
		if r.closed {
			r.log.Error("fwknop: CMD_CYCLE_CLOSE not scheduled: shutting down", "src", src, "stanza", who, "argv", cc.Close)
			return
		}
		r.scheduleLocked(&pendingClose{At: time.Now().Add(cc.CloseAfter), Argv: cc.Close, Src: src.String(), Who: who})
		r.saveLocked()
	}()
	return true
}

// Exec runs the command of an allowed command message for src, as the
// given user and group. It returns at once; false when the queue is full.
func (r *Runner) Exec(src netip.Addr, who string, c Cmd) bool {
	r.mu.Lock()
	ok := r.enqueueLocked()
	r.mu.Unlock()
	if !ok {
		r.log.Error("fwknop: command not run: command queue full", "src", src, "stanza", who)
		return false
	}
	go func() {
		defer r.wg.Done()
		r.run("command", c, src, who)
	}()
	return true
}

// Close stops scheduling: queued commands that have not started are
// dropped, running ones finish (each within its timeout), and scheduled
// closes stay in the State file for the next run. It waits for the
// running commands.
func (r *Runner) Close() {
	r.mu.Lock()
	r.closed = true
	for _, p := range r.pending {
		p.timer.Stop()
	}
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
}

// enqueueLocked counts one more command in the queue, or reports that it
// is full or closed.
func (r *Runner) enqueueLocked() bool {
	if r.closed || r.queued >= maxQueued {
		return false
	}
	r.queued++
	r.wg.Add(1)
	return true
}

func (r *Runner) scheduleLocked(p *pendingClose) {
	r.nextID++
	id := r.nextID
	r.pending[id] = p
	p.timer = time.AfterFunc(max(time.Until(p.At), 0), func() { r.fire(id) })
}

// fire runs a due close, then forgets it.
func (r *Runner) fire(id uint64) {
	r.mu.Lock()
	p := r.pending[id]
	if p == nil || !r.enqueueLocked() {
		if p != nil && !r.closed {
			p.timer.Reset(time.Second) // queue full: try again shortly
		}
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	defer r.wg.Done()
	src, _ := netip.ParseAddr(p.Src)
	if err := r.run("CMD_CYCLE_CLOSE", Cmd{Argv: p.Argv}, src, p.Who); errors.Is(err, context.Canceled) {
		return // shutting down before it started: it stays scheduled
	}
	r.mu.Lock()
	delete(r.pending, id)
	r.saveLocked()
	r.mu.Unlock()
}

// run waits for a slot and runs c, logging the outcome. It returns
// context.Canceled when the Runner closed before c started.
func (r *Runner) run(kind string, c Cmd, src netip.Addr, who string) error {
	defer func() {
		r.mu.Lock()
		r.queued--
		r.mu.Unlock()
	}()
	select {
	case r.slots <- struct{}{}:
	case <-r.ctx.Done():
		r.log.Warn("fwknop: command not run: shutting down", "kind", kind, "src", src, "stanza", who)
		return context.Canceled
	}
	defer func() { <-r.slots }()
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	start := time.Now()
	out, err := r.exec(ctx, c)
	attrs := []any{"kind", kind, "src", src, "stanza", who, "argv", c.Argv, "took", time.Since(start).Round(time.Millisecond)}
	if err != nil {
		r.log.Warn("fwknop: command failed", append(attrs, "err", err, "output", trimOutput(out))...)
		return err
	}
	r.log.Info("fwknop: command ran", attrs...)
	if len(out) > 0 {
		r.log.Debug("fwknop: command output", "kind", kind, "output", trimOutput(out))
	}
	return nil
}

func trimOutput(b []byte) string {
	const limit = 512
	s := strings.TrimSpace(string(b))
	if len(s) > limit {
		s = s[:limit] + "..."
	}
	return s
}

// saveLocked writes the scheduled closes to the State file (temporary
// file, then rename). A failure is logged: the closes still run in this
// process, but a restart before they do would forget them.
func (r *Runner) saveLocked() {
	if r.state == "" {
		return
	}
	st := stateFile{Closes: make([]*pendingClose, 0, len(r.pending))}
	for _, p := range r.pending {
		st.Closes = append(st.Closes, p)
	}
	slices.SortFunc(st.Closes, func(a, b *pendingClose) int { return a.At.Compare(b.At) })
	if err := writeFileAtomic(r.state, st); err != nil {
		r.log.Error("fwknop: CMD_CYCLE state not saved: a restart would forget scheduled CMD_CYCLE_CLOSE commands", "state", r.state, "err", err)
	}
}

func writeFileAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

package netns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"sync"
	"time"
)

// Sentinel errors.
var (
	// ErrClosed: the bench has been closed.
	ErrClosed = errors.New("netns: bench closed")
	// ErrIndexBusy: Options.Index is held by another live bench.
	ErrIndexBusy = errors.New("netns: index held by another bench")
	// ErrUnknownNS: a namespace name that is not one of the bench's two.
	ErrUnknownNS = errors.New("netns: not a namespace of this bench")
)

// Options configures [New]. The zero value is ready to use.
type Options struct {
	// Name prefixes the namespace names (NAME<index>-gw, NAME<index>-cl):
	// a lower-case letter, then up to 23 of [a-z0-9-]. Default DefaultName.
	Name string
	// Index picks the bench index (1..MaxIndex) instead of searching for a
	// free one; New then fails with ErrIndexBusy if another bench holds it.
	// 0 searches (see the package doc).
	Index int
	// Logger receives one line per setup, teardown and process event.
	// Nil discards.
	Logger *slog.Logger
	// StopGrace is how long Stop and Close wait after SIGTERM before
	// SIGKILL. Default 3 s.
	StopGrace time.Duration
	// OutputLimit is how many bytes of output each Proc keeps (the most
	// recent ones). Default 1 MiB.
	OutputLimit int
}

// Bench is a gateway namespace and a client namespace joined by a veth pair
// (GWIf in GW, ClientIf in Client), made by New (the zero value is not
// usable). The exported fields are set by New and must not be changed. Methods are safe for concurrent use; after Close,
// they fail with ErrClosed.
type Bench struct {
	// Index is the bench index the names and prefixes derive from.
	Index int
	// GW and Client are the namespace names (see /run/netns).
	GW, Client string
	// Prefix4 is a /24 in 10.252.0.0/14; Prefix6 a /64 in fd5e:5a3e:ab00::/48.
	// Both are blackholed in the host namespace while the bench exists.
	Prefix4, Prefix6 netip.Prefix
	// GW4 and GW6 are the gateway's addresses (.1, ::1).
	GW4, GW6 netip.Addr
	// Client4 and Client6 are the client's addresses (.2, ::2), and the
	// sources the kernel picks by default.
	Client4, Client6 netip.Addr
	// Client4b and Client6b are a second client address (.3, ::3), "another
	// host" on the same wire; used only when bound explicitly (Client6b is
	// added with preferred_lft 0, so source selection never picks it).
	Client4b, Client6b netip.Addr

	ipPath string
	log    *slog.Logger
	grace  time.Duration
	outLim int

	spawn *spawner // nil until New succeeds

	mu        sync.Mutex
	closed    bool
	closeErr  error
	lock      *os.File       // index lock; nil once released
	routes    []netip.Prefix // blackholes added in the host namespace
	created   []string       // namespaces added
	procs     []*Proc
	listeners []io.Closer
}

// logger returns l, or a logger that discards.
func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// nsPath returns the bind mount of namespace ns, or ErrUnknownNS.
func (b *Bench) nsPath(ns string) (string, error) {
	if ns != b.GW && ns != b.Client {
		return "", fmt.Errorf("%w: %q", ErrUnknownNS, ns)
	}
	return "/run/netns/" + ns, nil
}

// Command returns `ip netns exec NS argv...` bound to ctx, for the caller to
// run; it is not tracked by Close. ip execs argv[0], so the Cmd's process
// is the command itself. For an unknown namespace or a closed bench the
// Cmd's Err is set, so Run and Start return it.
func (b *Bench) Command(ctx context.Context, ns string, argv ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, b.ipPath, append([]string{"netns", "exec", ns}, argv...)...)
	cmd.WaitDelay = b.grace
	if _, err := b.nsPath(ns); err != nil {
		cmd.Err = err
	} else if len(argv) == 0 {
		cmd.Err = errors.New("netns: Command: empty argv")
	} else if b.isClosed() {
		cmd.Err = ErrClosed
	}
	return cmd
}

func (b *Bench) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// Start starts argv in namespace ns in the background, capturing its
// stdout and stderr in the returned Proc. Close stops it if it is still
// running. The process is not bound to a context: stop it with Stop. On
// Linux it also gets SIGKILL if this process dies without calling Close
// (parent-death signal; see spawner).
func (b *Bench) Start(ns string, argv ...string) (*Proc, error) {
	if len(argv) == 0 {
		return nil, errors.New("netns: Start: empty argv")
	}
	if _, err := b.nsPath(ns); err != nil {
		return nil, err
	}
	cmd := exec.Command(b.ipPath, append([]string{"netns", "exec", ns}, argv...)...)
	p := &Proc{ns: ns, args: argv, cmd: cmd, out: newTailBuffer(b.outLim), done: make(chan struct{})}
	cmd.Stdout = p.out
	cmd.Stderr = p.out
	// Bounds Wait when a child of the process keeps the output pipe open.
	cmd.WaitDelay = b.grace

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	if err := b.spawn.start(cmd); err != nil {
		return nil, fmt.Errorf("netns: start %v in %s: %w", argv, ns, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	b.procs = append(b.procs, p)
	b.log.Info("netns process started", "pid", p.PID(), "ns", ns, "argv", argv)
	return p, nil
}

// Stop stops p: SIGTERM, then SIGKILL after Options.StopGrace, and waits
// until it is reaped. Stopping an exited process is a no-op.
func (b *Bench) Stop(p *Proc) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	err := p.stop(b.grace)
	b.log.Info("netns process stopped", "pid", p.PID(), "ns", p.ns, "exit", p.Err())
	return err
}

// Procs returns the processes started so far, in order, including exited
// ones (for their output).
func (b *Bench) Procs() []*Proc {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*Proc(nil), b.procs...)
}

// track registers a listener for Close; it fails on a closed bench.
func (b *Bench) track(c io.Closer) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		c.Close()
		return ErrClosed
	}
	b.listeners = append(b.listeners, c)
	return nil
}

// Close stops the processes Start started that are still running (in
// parallel, each SIGTERM then SIGKILL after StopGrace), closes the
// listeners, deletes the namespaces, then removes the host blackhole
// routes and releases the index. It is idempotent: later calls return the
// first call's result.
func (b *Bench) Close() error {
	b.mu.Lock()
	if b.closed {
		defer b.mu.Unlock()
		return b.closeErr
	}
	b.closed = true
	procs, listeners := b.procs, b.listeners
	b.mu.Unlock()

	var errs []error
	var wg sync.WaitGroup
	perr := make([]error, len(procs))
	for i, p := range procs {
		wg.Go(func() { perr[i] = b.Stop(p) })
	}
	wg.Wait()
	errs = append(errs, perr...)
	if b.spawn != nil {
		b.spawn.stop()
	}
	for _, l := range listeners {
		l.Close() // the namespace goes away anyway; errors say nothing
	}
	errs = append(errs, b.teardown())

	b.mu.Lock()
	defer b.mu.Unlock()
	b.closeErr = errors.Join(errs...)
	return b.closeErr
}

// teardown removes what setup created, in reverse: namespaces first, then
// the host routes (the guard outlives everything that could send), then the
// index lock. It runs without b.mu (it execs ip) but only from New's
// failure path or the single Close that set b.closed.
func (b *Bench) teardown() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	for i := len(b.created) - 1; i >= 0; i-- {
		ns := b.created[i]
		if _, err := b.ip(ctx, "netns", "del", ns); err != nil {
			errs = append(errs, err)
		} else {
			b.log.Info("netns deleted", "ns", ns)
		}
	}
	b.created = nil
	for _, p := range b.routes {
		if err := b.delBlackhole(ctx, p); err != nil {
			errs = append(errs, err)
		}
	}
	b.routes = nil
	if b.lock != nil {
		b.lock.Close()
		b.lock = nil
	}
	return errors.Join(errs...)
}

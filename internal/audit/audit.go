// Package audit writes Sesame's audit log: one JSON object per line for
// every decision the gateway makes (grant, grant-failed, reject, reset,
// revoke), appended to a file. Reopen starts a new file at the same path
// after logrotate moved the old one away (`sesame serve` calls it on
// SIGUSR1). docs/operations.md documents the record format.
//
// Record never blocks the gateway: records go through a bounded queue to
// one writer goroutine, which batches them into few write(2) calls. When
// the queue is full (a flood faster than the disk), records are dropped,
// counted, and the count is written to the log as an "audit-dropped"
// record once the writer catches up. Records are not fsynced: a crash of
// the machine may lose the last ones (not a crash of the daemon: they are
// written within milliseconds).
package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sesame-gw/sesame/internal/gateway"
)

// Defaults of Options.
const (
	DefaultQueue = 4096
	DefaultPerm  = 0o640
)

// ErrClosed is returned by Reopen after Close.
var ErrClosed = errors.New("audit: log closed")

// Record is one line of the audit log.
type Record struct {
	Time time.Time `json:"time"`
	// Kind is grant, grant-failed, reject, reset, revoke, or audit-dropped.
	Kind string `json:"kind"`
	Src  string `json:"src,omitempty"`
	// Door is the knock door; Proto and Client the SPA protocol and the
	// authenticated client.
	Door     string   `json:"door,omitempty"`
	Proto    string   `json:"proto,omitempty"`
	Client   string   `json:"client,omitempty"`
	Services []string `json:"services,omitempty"`
	// Reason is why: the reject or reset reason, the firewall error.
	Reason string `json:"reason,omitempty"`
	// LatencyUS is, for a grant, packet arrival to grant committed in µs.
	LatencyUS int64 `json:"latency_us,omitempty"`
	// Count is, for audit-dropped, how many records were lost.
	Count uint64 `json:"count,omitempty"`
}

// FromDecision converts a gateway decision.
func FromDecision(d gateway.Decision) Record {
	r := Record{Time: d.Time.UTC(), Kind: d.Kind, Door: d.Door, Proto: d.Proto, Client: d.Client,
		Services: d.Services, Reason: d.Reason, LatencyUS: d.Latency.Microseconds()}
	if d.Src.IsValid() {
		r.Src = d.Src.String()
	}
	return r
}

// Options configure Open. The zero value is ready to use.
type Options struct {
	// Queue is how many records may wait for the writer (DefaultQueue).
	Queue int
	// Perm is the mode of a newly created file (DefaultPerm).
	Perm os.FileMode
	// Logger receives write errors (default: discard).
	Logger *slog.Logger
	// Now stamps audit-dropped records (default time.Now).
	Now func() time.Time
}

// Log is an open audit log. Its methods are safe for concurrent use.
type Log struct {
	path    string
	opt     Options
	queue   chan Record
	reopen  chan chan error
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	closed  atomic.Bool
	dropped atomic.Uint64
	errors  atomic.Uint64

	f *os.File // owned by the writer goroutine once started
}

// Open opens (creating it, and its directory with mode 0750, if needed)
// the log at path for appending and starts its writer. The path must name
// a regular file; a symbolic link is refused.
func Open(path string, opt Options) (*Log, error) {
	l, err := open(path, opt)
	if err != nil {
		return nil, err
	}
	go l.run()
	return l, nil
}

func open(path string, opt Options) (*Log, error) {
	if opt.Queue <= 0 {
		opt.Queue = DefaultQueue
	}
	if opt.Perm == 0 {
		opt.Perm = DefaultPerm
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	f, err := openFile(path, opt.Perm)
	if err != nil {
		return nil, err
	}
	return &Log{path: path, opt: opt, f: f, queue: make(chan Record, opt.Queue),
		reopen: make(chan chan error), stop: make(chan struct{}), done: make(chan struct{})}, nil
}

func openFile(path string, perm os.FileMode) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|openFlags, perm)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		if err == nil {
			err = errors.New("not a regular file")
		}
		return nil, fmt.Errorf("audit: %s: %w", path, err)
	}
	return f, nil
}

// Path returns the file's path.
func (l *Log) Path() string { return l.path }

// Record queues d for the log; it never blocks. After Close it does
// nothing. It has the signature of gateway.Config.OnDecision.
func (l *Log) Record(d gateway.Decision) { l.Write(FromDecision(d)) }

// Write queues r; it never blocks.
func (l *Log) Write(r Record) {
	if l.closed.Load() {
		return
	}
	select {
	case l.queue <- r:
	default:
		l.dropped.Add(1)
	}
}

// Dropped returns how many records were lost to a full queue.
func (l *Log) Dropped() uint64 { return l.dropped.Load() }

// Errors returns how many writes failed.
func (l *Log) Errors() uint64 { return l.errors.Load() }

// Reopen writes out what is queued, closes the file and opens path again
// (a new file if logrotate moved the old one). On error the old file stays
// in use.
func (l *Log) Reopen() error {
	res := make(chan error, 1)
	select {
	case l.reopen <- res:
		return <-res
	case <-l.done:
		return ErrClosed
	}
}

// Close writes out what is queued and closes the file. It is idempotent.
func (l *Log) Close() error {
	l.once.Do(func() {
		l.closed.Store(true)
		close(l.stop)
	})
	<-l.done
	return nil
}

func (l *Log) run() {
	defer close(l.done)
	w := bufio.NewWriterSize(l.f, 64<<10)
	enc := json.NewEncoder(w)
	reported := uint64(0)
	write := func(r Record) {
		if err := enc.Encode(r); err != nil {
			l.fail(err)
		}
	}
	// flush writes the batch, and an audit-dropped record first if records
	// were lost since the last one.
	flush := func() {
		if d := l.dropped.Load(); d > reported {
			write(Record{Time: l.opt.Now().UTC(), Kind: "audit-dropped", Count: d - reported, Reason: "queue full"})
			reported = d
		}
		if err := w.Flush(); err != nil {
			l.fail(err)
			w.Reset(l.f) // drop the batch rather than retry forever
		}
	}
	drain := func() {
		for {
			select {
			case r := <-l.queue:
				write(r)
			default:
				return
			}
		}
	}
	for {
		select {
		case r := <-l.queue:
			write(r)
			drain()
			flush()
		case res := <-l.reopen:
			drain()
			flush()
			f, err := openFile(l.path, l.opt.Perm)
			if err == nil {
				l.f.Close()
				l.f = f
				w.Reset(f)
			}
			res <- err
		case <-l.stop:
			drain()
			flush()
			if err := l.f.Close(); err != nil {
				l.fail(err)
			}
			return
		}
	}
}

func (l *Log) fail(err error) {
	if l.errors.Add(1) == 1 || l.errors.Load()%1000 == 0 {
		l.opt.Logger.Error("audit log write failed", "path", l.path, "err", err, "failures", l.errors.Load())
	}
}

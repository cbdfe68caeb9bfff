package fwknopgw

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sesame-gw/sesame/internal/fwknop/digestcache"
)

// Errors returned by Digests.Add.
var (
	// ErrReplay: the digest is already stored.
	ErrReplay = errors.New("replayed SPA packet")
	// ErrFull: the cache holds its capacity of live digests. The packet
	// must be refused: forgetting a live digest would reopen a replay.
	ErrFull = errors.New("replay cache full")
	// ErrPersist: the digest is stored in memory but could not be
	// written to digest.cache, so a restart would forget it. The packet
	// must be refused (fail closed). (A failed fsync is not an Add
	// error: the group commit runs after the grant; see Digests.)
	ErrPersist = errors.New("digest.cache not written")
)

// DefaultCapacity is the number of live digests a Digests holds by
// default. Only packets some stanza decrypted are stored, so only key
// holders can fill it.
const DefaultCapacity = 65536

// Digests is fwknopd's replay cache: the replay digest of every packet a
// stanza decrypted, optionally persisted in digest.cache (fwknopd's
// format, see package digestcache) so that a restart does not reopen
// replays. Unlike fwknopd, which keeps every digest forever, Digests
// forgets a digest once it is older than its window: with packet aging
// on, a packet is acceptable only while |now − timestamp| ≤
// MAX_SPA_PACKET_AGE and was stored at most that far from its timestamp,
// so after 2 × MAX_SPA_PACKET_AGE it can never be accepted again anyway
// (Window).
//
// Add writes the digest's line into digest.cache (write(2)) before it
// returns, so a crash or SIGKILL of the daemon right after the grant
// cannot forget it: the page cache outlives the process. The fsync that
// makes it durable against a power loss or kernel crash is a group
// commit off the grant path (digestcache.Options.SyncDelay, at most
// digestcache.DefaultSyncDelay later, and on Close): a power loss can
// forget the digests of the last few milliseconds, but it also clears
// the grants (nftables), and their packets stay acceptable only until
// MAX_SPA_PACKET_AGE has passed since their timestamp (docs/fwknop.md).
// Failed fsyncs are logged and counted (SyncErrors).
//
// Safe for concurrent use.
type Digests struct {
	mu     sync.Mutex
	m      map[string]digestcache.Entry
	window time.Duration // 0: keep forever
	max    int
	log    *slog.Logger

	path      string            // "" when not persisted
	file      *digestcache.File // nil when not persisted
	lines     int               // entry lines in the file, pruned ones included
	prune     time.Time         // last prune
	syncDelay time.Duration     // digestcache.Options.SyncDelay
	syncErrs  atomic.Uint64     // failed background fsyncs, all files
}

// Window is the time a digest must be kept when packets older than
// maxAge are refused: 2 × maxAge. With aging off (maxAge 0) it is 0,
// which means forever.
func Window(maxAge time.Duration) time.Duration { return 2 * maxAge }

// NewDigests returns an empty in-memory cache (ENABLE_DIGEST_PERSISTENCE
// N) that forgets digests older than window (0: never) and holds at most
// capacity live ones (DefaultCapacity if capacity <= 0).
func NewDigests(window time.Duration, capacity int) *Digests {
	if capacity <= 0 {
		capacity = DefaultCapacity
	}
	return &Digests{m: make(map[string]digestcache.Entry), window: window, max: capacity, log: slog.New(slog.DiscardHandler), syncDelay: digestcache.DefaultSyncDelay}
}

// OpenDigests loads the digest.cache at path (a missing file is an empty
// cache), forgets the entries older than window at now, rewrites the file
// when it dropped any line, and keeps it open for appending. Lines it
// cannot read are skipped as fwknopd skips them and returned. log
// receives compaction and fsync failures (nil discards). Close the result
// when the daemon stops: Close syncs the last digests to disk.
func OpenDigests(path string, window time.Duration, capacity int, now time.Time, log *slog.Logger) (*Digests, []digestcache.LineError, error) {
	d := NewDigests(window, capacity)
	if log != nil {
		d.log = log
	}
	entries, skipped, err := digestcache.Load(path)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		d.m[e.Digest] = e
	}
	d.path = path
	d.pruneLocked(now)
	if len(d.m) < len(entries) || len(skipped) > 0 {
		if err := digestcache.Rewrite(path, d.sorted()); err != nil {
			return nil, nil, err
		}
	}
	if d.file, err = d.openFile(); err != nil {
		return nil, nil, err
	}
	d.lines = len(d.m)
	return d, skipped, nil
}

// Seen returns the stored entry for digest, if it is live at now.
func (d *Digests) Seen(digest string, now time.Time) (digestcache.Entry, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.m[digest]
	if ok && d.expired(e, now) {
		return digestcache.Entry{}, false
	}
	return e, ok
}

// Add stores e (e.Created is the insertion time and the clock for
// pruning). It returns ErrReplay when e.Digest is already live, ErrFull
// when the cache is full of live digests, and an error wrapping
// ErrPersist when the file append failed (the digest then stays in
// memory). Check-and-insert is atomic: of two concurrent Adds of one
// digest, exactly one succeeds.
func (d *Digests) Add(e digestcache.Entry) error {
	if err := e.Validate(); err != nil {
		return fmt.Errorf("replay digest: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := e.Created
	if old, ok := d.m[e.Digest]; ok && !d.expired(old, now) {
		return ErrReplay
	}
	if d.window > 0 && (len(d.m) >= d.max || now.Sub(d.prune) >= d.window/4) {
		d.pruneLocked(now)
	}
	if len(d.m) >= d.max {
		return ErrFull
	}
	d.m[e.Digest] = e
	if d.path == "" {
		return nil
	}
	if d.file == nil { // closed, or lost in a failed compaction
		f, err := d.openFile()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrPersist, err)
		}
		d.file = f
	}
	if err := d.file.Append(e); err != nil {
		return fmt.Errorf("%w: %w", ErrPersist, err)
	}
	d.lines++
	if d.lines > 2*len(d.m)+1024 {
		d.compact(now)
	}
	return nil
}

// Len is the number of digests held (expired ones not yet forgotten
// included).
func (d *Digests) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.m)
}

// SyncErrors is the number of background fsyncs of digest.cache that
// failed since the Digests was made (each is also logged).
func (d *Digests) SyncErrors() uint64 { return d.syncErrs.Load() }

// openFile opens d.path for appending with the group commit.
func (d *Digests) openFile() (*digestcache.File, error) {
	return digestcache.OpenFile(d.path, digestcache.Options{SyncDelay: d.syncDelay, OnSyncError: d.syncFailed})
}

// syncFailed runs on a committer goroutine; it must not take d.mu (a
// compaction holding it waits for the committer to stop).
func (d *Digests) syncFailed(err error) {
	d.syncErrs.Add(1)
	d.log.Error("fwknop: digest.cache fsync failed: recent digests are written but may not survive a power loss", "file", d.path, "err", err)
}

// Close syncs the last digests to disk and closes the file. A later Add
// reopens it (a cache is normally closed once, when the daemon stops).
func (d *Digests) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.file == nil {
		return nil
	}
	err := d.file.Close()
	d.file = nil
	return err
}

func (d *Digests) expired(e digestcache.Entry, now time.Time) bool {
	return d.window > 0 && now.Sub(e.Created) > d.window
}

func (d *Digests) pruneLocked(now time.Time) {
	d.prune = now
	if d.window <= 0 {
		return
	}
	for k, e := range d.m {
		if d.expired(e, now) {
			delete(d.m, k)
		}
	}
}

// sorted returns the entries in creation order, as fwknopd appends them.
func (d *Digests) sorted() []digestcache.Entry {
	out := make([]digestcache.Entry, 0, len(d.m))
	for _, e := range d.m {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b digestcache.Entry) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return cmpString(a.Digest, b.Digest)
	})
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compact rewrites the file with the live entries only. On failure the
// old file stays in use and the next append tries again later.
func (d *Digests) compact(now time.Time) {
	d.pruneLocked(now)
	if err := digestcache.Rewrite(d.path, d.sorted()); err != nil {
		d.log.Warn("fwknop: digest.cache compaction failed; still appending", "file", d.path, "err", err)
		d.lines = 2 * len(d.m) // retry after another batch of appends
		return
	}
	// The old inode is replaced: the new file holds every live digest,
	// synced. Close stops the old one's committer.
	if err := d.file.Close(); err != nil {
		d.log.Warn("fwknop: closing the replaced digest.cache", "file", d.path, "err", err)
	}
	d.lines = len(d.m)
	f, err := d.openFile()
	if err != nil {
		// The next Add reopens it or refuses its packet with ErrPersist.
		d.log.Error("fwknop: reopening digest.cache after compaction", "file", d.path, "err", err)
		d.file = nil
		return
	}
	d.file = f
}

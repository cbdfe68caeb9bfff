package digestcache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Load reads the cache at path. A missing file yields no entries and no
// error (fwknopd creates it on first use). Skipped lines are reported as
// in Parse.
func Load(path string) ([]Entry, []LineError, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("digest cache: %w", err)
	}
	defer f.Close()
	return Parse(f)
}

// DefaultSyncDelay bounds how long an appended entry waits for the
// group commit's fsync (plus the fsync itself).
const DefaultSyncDelay = 10 * time.Millisecond

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("digest cache: file closed")

// Options tune OpenFile. The zero value syncs every Append before it
// returns.
type Options struct {
	// SyncDelay > 0 turns on the group commit: Append writes the line
	// with one write(2) and returns, and a background goroutine fsyncs
	// the file once for every entry written since its last fsync, at
	// most SyncDelay after the previous one (so an entry waits at most
	// SyncDelay plus one fsync). A written line survives a crash or
	// SIGKILL of the process (it is in the page cache); only a power
	// loss or kernel crash before the fsync can lose it. 0 means every
	// Append fsyncs before returning.
	SyncDelay time.Duration
	// OnSyncError receives the errors of background fsyncs, on the
	// committer goroutine; it must not call the File. nil ignores them
	// (they are still counted in SyncErrors).
	OnSyncError func(error)
}

// File appends entries to a cache file. It is safe for concurrent use;
// Close it to stop its committer and flush the last entries to disk.
type File struct {
	mu     sync.Mutex
	f      *os.File
	dirty  bool // written since the last fsync began
	closed bool
	errs   uint64 // failed background fsyncs

	delay time.Duration
	onErr func(error)
	sync  func() error  // f.Sync; tests count or fail it
	kick  chan struct{} // cap 1: there is something to sync
	stop  chan struct{} // closed by Close
	done  chan struct{} // closed when the committer returns
}

// OpenFile opens path for appending, creating it with mode 0600 and the
// header line when it does not exist, as fwknopd does. A file that does
// not end with a newline (a line torn by a power loss) gets one, so the
// next entry starts a line of its own.
func OpenFile(path string, o Options) (*File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("digest cache: %w", err)
	}
	st, err := f.Stat()
	if err == nil && st.Size() == 0 {
		_, err = f.WriteString(Header)
	} else if err == nil {
		last := []byte{0}
		if _, err = f.ReadAt(last, st.Size()-1); err == nil && last[0] != '\n' {
			_, err = f.WriteString("\n")
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("digest cache %s: %w", path, err)
	}
	c := &File{f: f, delay: o.SyncDelay, onErr: o.OnSyncError, sync: f.Sync}
	if c.delay > 0 {
		c.kick, c.stop, c.done = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
		go c.commit()
	}
	return c, nil
}

// Append writes one entry line with a single write(2), so the entry is
// in the file (and survives a crash of the process) when Append returns.
// Without a SyncDelay it also fsyncs the file; with one, the committer
// does within SyncDelay.
func (c *File) Append(e Entry) error {
	if err := e.Validate(); err != nil {
		return fmt.Errorf("digest cache: %w", err)
	}
	line := AppendLine(make([]byte, 0, 128), e)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if _, err := c.f.Write(line); err != nil {
		return fmt.Errorf("digest cache: %w", err)
	}
	if c.delay <= 0 {
		if err := c.sync(); err != nil {
			return fmt.Errorf("digest cache: %w", err)
		}
		return nil
	}
	c.dirty = true
	select {
	case c.kick <- struct{}{}:
	default: // a sync is already due
	}
	return nil
}

// commit is the group commit: it waits for an Append, fsyncs everything
// written so far, waits SyncDelay and starts over. It returns when Close
// stops it; Close then syncs what is left.
func (c *File) commit() {
	defer close(c.done)
	t := time.NewTimer(c.delay)
	t.Stop()
	for {
		select {
		case <-c.kick:
		case <-c.stop:
			return
		}
		if err := c.flush(); err != nil {
			c.mu.Lock()
			c.errs++
			c.mu.Unlock()
			if c.onErr != nil {
				c.onErr(err)
			}
		}
		t.Reset(c.delay) // at most one fsync per SyncDelay: the batch
		select {
		case <-t.C:
		case <-c.stop:
			t.Stop()
			return
		}
	}
}

// flush fsyncs the file if something was written since the last fsync
// began. The fsync runs outside the lock, so Appends go on meanwhile
// (the next fsync covers them).
func (c *File) flush() error {
	c.mu.Lock()
	if !c.dirty {
		c.mu.Unlock()
		return nil
	}
	c.dirty = false
	c.mu.Unlock()
	if err := c.sync(); err != nil {
		return fmt.Errorf("digest cache: fsync: %w", err)
	}
	return nil
}

// SyncErrors is the number of background fsyncs that failed.
func (c *File) SyncErrors() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.errs
}

// Close stops the committer, fsyncs what it had not synced yet and
// closes the file. It returns the first error of the two. Later calls
// return nil.
func (c *File) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true // no more Appends
	c.mu.Unlock()
	if c.stop != nil {
		close(c.stop)
		<-c.done
	}
	err := c.flush()
	if cerr := c.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("digest cache: %w", cerr)
	}
	return err
}

// Rewrite atomically replaces the cache at path with entries (mode
// 0600): a temporary file in the same directory, synced, renamed, and
// the directory synced, so the new file is durable when Rewrite returns.
// Use it after Prune. An open File keeps appending to the old inode;
// reopen it afterwards.
func Rewrite(path string, entries []Entry) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("digest cache: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("digest cache: %w", err)
	}
	if err := Write(tmp, entries); err != nil {
		tmp.Close()
		return fmt.Errorf("digest cache: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("digest cache: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("digest cache: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("digest cache: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // best effort: the rename is durable once the directory is
		d.Close()
	}
	return nil
}

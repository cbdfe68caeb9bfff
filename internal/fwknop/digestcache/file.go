package digestcache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
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

// File appends entries to a cache file. It is safe for concurrent use.
type File struct {
	mu sync.Mutex
	f  *os.File
}

// OpenFile opens path for appending, creating it with mode 0600 and the
// header line when it does not exist, as fwknopd does.
func OpenFile(path string) (*File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("digest cache: %w", err)
	}
	st, err := f.Stat()
	if err == nil && st.Size() == 0 {
		_, err = f.WriteString(Header)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("digest cache %s: %w", path, err)
	}
	return &File{f: f}, nil
}

// Append writes one entry line and syncs it to disk, so a digest is
// durable before the grant it protects.
func (c *File) Append(e Entry) error {
	if err := e.Validate(); err != nil {
		return fmt.Errorf("digest cache: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.f.Write(AppendLine(nil, e)); err != nil {
		return fmt.Errorf("digest cache: %w", err)
	}
	if err := c.f.Sync(); err != nil {
		return fmt.Errorf("digest cache: %w", err)
	}
	return nil
}

// Close closes the file.
func (c *File) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.f.Close()
}

// Rewrite atomically replaces the cache at path with entries (mode
// 0600): a temporary file in the same directory, synced, then renamed.
// Use it after Prune. An open File keeps appending to the old inode;
// reopen it afterwards.
func Rewrite(path string, entries []Entry) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("digest cache: %w", err)
	}
	defer os.Remove(tmp.Name())
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
	return nil
}

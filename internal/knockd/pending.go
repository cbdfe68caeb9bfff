package knockd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// pendingStop is a stop command waiting for its time. knockd keeps it only
// in a sleeping child process; Sesame writes it to the state file.
type pendingStop struct {
	ID      uint64    `json:"id"`
	Door    string    `json:"door"`
	Src     string    `json:"src"`
	Command string    `json:"command"` // expanded
	Due     time.Time `json:"due"`
	// Ready: the start command has finished, so Due is final (Cmd_Timeout
	// after it). A stop read back after a restart is always ready.
	Ready bool `json:"ready"`

	running bool // handed to a worker (not persisted)
	revoked bool // run as soon as the start command is done (not persisted)
}

// pendingFile is the state file's format.
type pendingFile struct {
	Version int            `json:"version"`
	NextID  uint64         `json:"next_id"`
	Stops   []*pendingStop `json:"stops"`
}

const (
	pendingVersion = 1
	maxPendingFile = 16 << 20
)

// pendingStore holds the pending stop commands and mirrors them to a file
// (when path is set) on every change, atomically (temp file, fsync,
// rename). It is owned by the server's goroutine.
type pendingStore struct {
	path  string
	next  uint64
	stops map[uint64]*pendingStop
}

// loadPending reads the state file at path ("" keeps everything in
// memory). A missing file is an empty store.
func loadPending(path string) (*pendingStore, error) {
	p := &pendingStore{path: path, next: 1, stops: map[uint64]*pendingStop{}}
	if path == "" {
		return p, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pending stop commands: %w", err)
	}
	if len(b) > maxPendingFile {
		return nil, fmt.Errorf("pending stop commands: %s is larger than %d bytes", path, maxPendingFile)
	}
	var f pendingFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("pending stop commands: %s: %w", path, err)
	}
	if f.Version != pendingVersion {
		return nil, fmt.Errorf("pending stop commands: %s: version %d, want %d", path, f.Version, pendingVersion)
	}
	p.next = max(f.NextID, 1)
	for _, s := range f.Stops {
		if s == nil || s.ID == 0 {
			continue
		}
		s.Ready = true
		p.stops[s.ID] = s
		p.next = max(p.next, s.ID+1)
	}
	return p, nil
}

func (p *pendingStore) add(door, src, command string, due time.Time) (uint64, error) {
	id := p.next
	p.next++
	p.stops[id] = &pendingStop{ID: id, Door: door, Src: src, Command: command, Due: due}
	return id, p.save()
}

// ready fixes the due time of a stop once its start command has finished.
func (p *pendingStore) ready(id uint64, due time.Time) error {
	s := p.stops[id]
	if s == nil {
		return nil
	}
	s.Due, s.Ready = due, true
	return p.save()
}

func (p *pendingStore) remove(id uint64) error {
	if _, ok := p.stops[id]; !ok {
		return nil
	}
	delete(p.stops, id)
	return p.save()
}

// due returns the ready stops due at now that are not running yet, oldest
// first.
func (p *pendingStore) due(now time.Time) []*pendingStop {
	var out []*pendingStop
	for _, s := range p.stops {
		if s.Ready && !s.running && !s.Due.After(now) {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// nextDue is when due next has something (zero: nothing scheduled).
func (p *pendingStore) nextDue() time.Time {
	var t time.Time
	for _, s := range p.stops {
		if s.Ready && !s.running && (t.IsZero() || s.Due.Before(t)) {
			t = s.Due
		}
	}
	return t
}

// all returns every stop not running yet, oldest first.
func (p *pendingStore) all() []*pendingStop {
	var out []*pendingStop
	for _, s := range p.stops {
		if !s.running {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (p *pendingStore) len() int { return len(p.stops) }

func (p *pendingStore) save() error {
	if p.path == "" {
		return nil
	}
	f := pendingFile{Version: pendingVersion, NextID: p.next, Stops: make([]*pendingStop, 0, len(p.stops))}
	for _, s := range p.stops {
		f.Stops = append(f.Stops, s)
	}
	sort.Slice(f.Stops, func(i, j int) bool { return f.Stops[i].ID < f.Stops[j].ID })
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(p.path, append(b, '\n'))
}

// writeAtomic replaces path with b: a crash leaves either the old or the
// new contents.
func writeAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

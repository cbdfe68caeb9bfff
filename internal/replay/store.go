package replay

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// File format (docs/protocol.md §6.1): a header, then fixed-size records
// key (16) || expiry (int64 Unix ms, 8) || CRC-32C of the previous 24 bytes.
const (
	fileHeader = "SESRPL1\n"
	recordSize = 16 + 8 + 4
	// maxFileBytes bounds what OpenStore reads; a file this large was not
	// written by Store (which stays under 2 × capacity records).
	maxFileBytes = 64 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrFormat is wrapped when the state file is not a replay file.
var ErrFormat = errors.New("replay: not a Sesame replay state file")

// Options configure a Store.
type Options struct {
	// Capacity is the most live entries (DefaultCapacity if <= 0). The file
	// never holds more than 2 × Capacity records.
	Capacity int
	// Sync makes every Add fdatasync the file, so an accepted packet
	// survives a power loss, at the cost of a disk flush per accepted
	// packet. Without it, Add still writes the record with write(2) before
	// returning, which survives a crash or SIGKILL of the daemon.
	Sync bool
}

// Store is a Cache persisted in one file, so a restart does not reopen the
// replay window. It is safe for concurrent use by one process; two
// processes must not share a file.
type Store struct {
	mu      sync.Mutex
	c       *Cache
	path    string
	f       *os.File
	records int // records in the file
	sync    bool
}

// OpenStore loads the state file at path (creating it, mode 0600, if it
// does not exist), keeps the entries still live at now, and rewrites the
// file with only those. Records with a bad checksum (a torn write) are
// skipped. Live entries are all kept even beyond Capacity (a lowered
// capacity must not reopen a replay); until they expire, Add refuses new
// keys with ErrFull. The directory must exist.
func OpenStore(path string, opt Options, now time.Time) (*Store, error) {
	s := &Store{c: New(opt.Capacity), path: path, sync: opt.Sync}
	if err := s.load(now.UnixMilli()); err != nil {
		return nil, err
	}
	if err := s.compact(now.UnixMilli()); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) load(now int64) error {
	f, err := os.Open(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("replay: open state: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return fmt.Errorf("replay: read %s: %w", s.path, err)
	}
	if len(b) > maxFileBytes {
		return fmt.Errorf("%w: %s is larger than %d bytes", ErrFormat, s.path, maxFileBytes)
	}
	if len(b) < len(fileHeader) {
		if bytes.HasPrefix([]byte(fileHeader), b) {
			return nil // crashed while creating: nothing was recorded
		}
		return fmt.Errorf("%w: %s", ErrFormat, s.path)
	}
	if string(b[:len(fileHeader)]) != fileHeader {
		return fmt.Errorf("%w: %s", ErrFormat, s.path)
	}
	for r := b[len(fileHeader):]; len(r) >= recordSize; r = r[recordSize:] {
		k, exp, ok := decodeRecord(r[:recordSize])
		if ok && exp >= now {
			s.c.insert(k, exp)
		}
	}
	return nil
}

func appendRecord(dst []byte, k Key, exp int64) []byte {
	start := len(dst)
	dst = append(dst, k[:]...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(exp))
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

func decodeRecord(r []byte) (Key, int64, bool) {
	if crc32.Checksum(r[:24], castagnoli) != binary.BigEndian.Uint32(r[24:]) {
		return Key{}, 0, false
	}
	return Key(r[:16]), int64(binary.BigEndian.Uint64(r[16:24])), true
}

// compact writes the live entries to a new file and swaps it in atomically
// (temporary file, fsync, rename, fsync of the directory), then reopens it
// for appending.
func (s *Store) compact(now int64) error {
	live := s.c.live(now)
	buf := make([]byte, 0, len(fileHeader)+len(live)*recordSize)
	buf = append(buf, fileHeader...)
	for _, e := range live {
		buf = appendRecord(buf, e.key, e.exp)
	}
	dir := filepath.Dir(s.path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(s.path)+".tmp*")
	if err != nil {
		return fmt.Errorf("replay: compact: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("replay: compact: %w", err)
	}
	if _, err := tmp.Write(buf); err != nil {
		tmp.Close()
		return fmt.Errorf("replay: compact: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("replay: compact: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("replay: compact: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("replay: compact: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // best effort: the rename is durable once the directory is
		d.Close()
	}
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("replay: reopen state: %w", err)
	}
	if s.f != nil {
		s.f.Close()
	}
	s.f, s.records = f, len(live)
	return nil
}

// Add is Cache.Add, and records a newly added key in the file before
// returning. If the write fails, the key stays recorded in memory and Add
// returns an error wrapping ErrPersist. When the file holds 2 × Capacity
// records it is compacted first.
func (s *Store) Add(k Key, until, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return fmt.Errorf("%w: store closed", ErrPersist)
	}
	s.c.mu.Lock()
	exp, nowMs := ceilMilli(until), now.UnixMilli()
	err := s.c.add(k, exp, nowMs)
	recorded := err == nil && exp >= nowMs
	compacted := false
	var cerr error
	if recorded && s.records >= 2*s.c.max {
		cerr, compacted = s.compact(nowMs), true // writes k as well
	}
	s.c.mu.Unlock()
	if !recorded {
		return err
	}
	if cerr != nil {
		return fmt.Errorf("%w: %v", ErrPersist, cerr)
	}
	if compacted {
		return nil
	}
	var rec [recordSize]byte
	if _, err := s.f.Write(appendRecord(rec[:0], k, exp)); err != nil {
		return fmt.Errorf("%w: %v", ErrPersist, err)
	}
	s.records++
	if s.sync {
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("%w: %v", ErrPersist, err)
		}
	}
	return nil
}

// Contains reports whether k is live at now.
func (s *Store) Contains(k Key, now time.Time) bool { return s.c.Contains(k, now) }

// Len is the number of entries held in memory.
func (s *Store) Len() int { return s.c.Len() }

// Close closes the file. Entries are already on disk.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

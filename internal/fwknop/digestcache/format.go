// Package digestcache reads and writes fwknopd's replay cache file,
// digest.cache (server/replay_cache.c in fwknop 2.6.10): a header line,
// then one line per accepted SPA packet,
//
//	# <digest> <proto> <src_ip> <src_port> <dst_ip> <dst_port> <time>
//	NQpsOy...Z6Q 17 127.0.0.1 34065 127.0.0.1 62201 1795310881
//
// where digest is fwknop.ReplayDigest of the packet, proto the IP protocol
// number, the addresses IPv4, and time the Unix time of the insertion.
// Sesame reads an existing fwknopd cache on start and appends in the same
// format, so a switch in either direction keeps replay protection.
//
// format.go is pure (readers and writers in, values out) and safe for
// concurrent use; file.go holds the file I/O.
package digestcache

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Header is the first line fwknopd writes into a new digest.cache.
const Header = "# <digest> <proto> <src_ip> <src_port> <dst_ip> <dst_port> <time>\n"

// maxLine is fwknopd's MAX_LINE_LEN; longer lines are skipped.
const maxLine = 1024

// maxDigest is the longest digest fwknopd reads (%64s).
const maxDigest = 64

// Entry is one line of the cache.
type Entry struct {
	// Digest is the replay digest (43 base64 characters for fwknop 2.x).
	Digest string
	// Proto is the IP protocol number of the SPA packet (17 for UDP).
	Proto uint8
	// Src and Dst are the packet's IPv4 source and destination.
	Src, Dst netip.AddrPort
	// Created is when the digest was stored (second precision).
	Created time.Time
}

// String formats e as one line without the newline, in fwknopd's
// "%s %d %s %d %s %d %d" layout.
func (e Entry) String() string {
	return fmt.Sprintf("%s %d %s %d %s %d %d", e.Digest, e.Proto,
		e.Src.Addr(), e.Src.Port(), e.Dst.Addr(), e.Dst.Port(), e.Created.Unix())
}

// Validate checks that e can be written and read back: a digest of 1..64
// characters without blanks, IPv4 addresses.
func (e Entry) Validate() error {
	if e.Digest == "" || len(e.Digest) > maxDigest || strings.ContainsAny(e.Digest, " \t\r\n") || strings.HasPrefix(e.Digest, "#") {
		return fmt.Errorf("digest %q is not 1..%d non-blank characters", e.Digest, maxDigest)
	}
	if !e.Src.Addr().Is4() || !e.Dst.Addr().Is4() {
		return fmt.Errorf("digest.cache holds IPv4 addresses only (%v, %v)", e.Src.Addr(), e.Dst.Addr())
	}
	return nil
}

// AppendLine appends e and a newline to dst.
func AppendLine(dst []byte, e Entry) []byte {
	return append(append(dst, e.String()...), '\n')
}

// ErrSyntax is wrapped by ParseLine errors.
var ErrSyntax = errors.New("invalid digest.cache line")

// ParseLine reads one entry line. Like fwknopd's sscanf it ignores text
// after the seventh field.
func ParseLine(line string) (Entry, error) {
	f := strings.Fields(line)
	if len(f) < 7 {
		return Entry{}, fmt.Errorf("%w: %d fields, want 7", ErrSyntax, len(f))
	}
	if len(f[0]) > maxDigest {
		return Entry{}, fmt.Errorf("%w: digest longer than %d", ErrSyntax, maxDigest)
	}
	proto, err := strconv.ParseUint(f[1], 10, 8)
	if err != nil {
		return Entry{}, fmt.Errorf("%w: proto %q", ErrSyntax, f[1])
	}
	src, err := addrPort(f[2], f[3])
	if err != nil {
		return Entry{}, err
	}
	dst, err := addrPort(f[4], f[5])
	if err != nil {
		return Entry{}, err
	}
	ts, err := strconv.ParseInt(f[6], 10, 64)
	if err != nil {
		return Entry{}, fmt.Errorf("%w: time %q", ErrSyntax, f[6])
	}
	return Entry{Digest: f[0], Proto: uint8(proto), Src: src, Dst: dst, Created: time.Unix(ts, 0)}, nil
}

func addrPort(ip, port string) (netip.AddrPort, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is4() {
		return netip.AddrPort{}, fmt.Errorf("%w: address %q is not IPv4", ErrSyntax, ip)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: port %q", ErrSyntax, port)
	}
	return netip.AddrPortFrom(a, uint16(p)), nil
}

// LineError reports a line Parse skipped, as fwknopd does ("Skipping
// invalid digest file entry").
type LineError struct {
	Line int
	Err  error
}

func (e LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

// Parse reads a whole cache. Lines whose first character is '#', ';',
// CR, LF or NUL are ignored (fwknopd's IS_EMPTY_LINE); malformed lines,
// and lines longer than 1024 bytes, are skipped and reported in skipped.
// err is only an I/O error of r. Entries come in file order; duplicates
// are kept.
func Parse(r io.Reader) (entries []Entry, skipped []LineError, err error) {
	br := bufio.NewReader(r)
	for n := 1; ; n++ {
		line, tooLong, rerr := readLine(br)
		if rerr != nil && rerr != io.EOF {
			return entries, skipped, fmt.Errorf("reading digest cache: %w", rerr)
		}
		if line == "" && rerr == io.EOF {
			return entries, skipped, nil
		}
		switch {
		case tooLong:
			skipped = append(skipped, LineError{n, fmt.Errorf("%w: longer than %d bytes", ErrSyntax, maxLine)})
		case line == "" || strings.ContainsRune("#;\r\n\x00", rune(line[0])):
		default:
			e, perr := ParseLine(line)
			if perr != nil {
				skipped = append(skipped, LineError{n, perr})
			} else {
				entries = append(entries, e)
			}
		}
		if rerr == io.EOF {
			return entries, skipped, nil
		}
	}
}

// readLine returns the next line without its newline, reading at most
// maxLine bytes of it into memory (the rest is discarded).
func readLine(br *bufio.Reader) (string, bool, error) {
	var b []byte
	tooLong := false
	for {
		chunk, isPrefix, err := br.ReadLine()
		if !tooLong {
			b = append(b, chunk...)
			if len(b) > maxLine {
				tooLong, b = true, nil
			}
		}
		if err != nil {
			if len(b) > 0 || tooLong {
				return string(b), tooLong, nil
			}
			return "", false, err
		}
		if !isPrefix {
			return string(b), tooLong, nil
		}
	}
}

// Write writes the header and entries to w, the layout of a fresh
// fwknopd cache.
func Write(w io.Writer, entries []Entry) error {
	buf := []byte(Header)
	for _, e := range entries {
		if err := e.Validate(); err != nil {
			return err
		}
		buf = AppendLine(buf, e)
	}
	_, err := w.Write(buf)
	return err
}

// Prune returns the entries created at or after cutoff, in order. fwknopd
// never prunes; once packets older than MAX_SPA_PACKET_AGE are rejected
// anyway, a digest older than now - 2*MAX_SPA_PACKET_AGE can never match
// an acceptable packet and may go.
func Prune(entries []Entry, cutoff time.Time) []Entry {
	var out []Entry
	for _, e := range entries {
		if !e.Created.Before(cutoff) {
			out = append(out, e)
		}
	}
	return out
}

package totp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/sesame-gw/sesame/internal/service"
)

// Defaults of a rotating door, shared by the gateway's configuration and
// the client (`sesame knock --door`), so both derive the same sequence when
// neither names them.
const (
	DefaultPeriod = 30 * time.Second
	DefaultSteps  = 3
	// MaxSteps is the longest rotating sequence (knockd's SEQ_MAX).
	MaxSteps = 32
	// MinKeyLen is RFC 4226 §4's minimum shared secret length (128 bits).
	MinKeyLen = 16
	// MaxPeriod bounds the period: longer periods make a sequence live
	// (and replayable by whoever saw it, until used) for too long.
	MaxPeriod = time.Hour
	// minPortsPerStep is how many ports of the range each step needs at
	// least, so the derivation (which skips repeated and neighbouring
	// ports) always terminates quickly.
	minPortsPerStep = 8
)

// DefaultPorts is the default port range of a rotating door.
var DefaultPorts = service.Range{Proto: service.TCP, First: 40000, Last: 49999}

// label separates Sesame's sequence derivation from any other use of the
// key (RFC 4226 HOTP codes computed from the same secret).
const label = "sesame-knock-v1"

// Door holds a rotating door's parameters. It implements knock.Rotator. The
// zero value is invalid; check with Validate.
type Door struct {
	// Name is the door's name; it is part of the derivation, so two doors
	// sharing a secret have unrelated sequences.
	Name string
	// Key is the shared secret (at least MinKeyLen bytes).
	Key []byte
	// Period is RFC 6238's X: a whole number of seconds, 1 s to MaxPeriod.
	Period time.Duration
	// Ports is the range the knock ports are drawn from (one protocol).
	Ports service.Range
	// Steps is the number of knocks, 1 to MaxSteps.
	Steps int
}

// ErrInvalid is wrapped by Validate's errors.
var ErrInvalid = errors.New("invalid rotating door")

// Validate checks d's parameters.
func (d Door) Validate() error {
	switch {
	case d.Name == "":
		return fmt.Errorf("%w: no name", ErrInvalid)
	case len(d.Key) < MinKeyLen:
		return fmt.Errorf("%w %q: secret of %d bytes, at least %d", ErrInvalid, d.Name, len(d.Key), MinKeyLen)
	case d.Period < time.Second || d.Period > MaxPeriod || d.Period%time.Second != 0:
		return fmt.Errorf("%w %q: period %v is not a whole number of seconds from 1s to %v", ErrInvalid, d.Name, d.Period, MaxPeriod)
	case d.Steps < 1 || d.Steps > MaxSteps:
		return fmt.Errorf("%w %q: %d steps, want 1 to %d", ErrInvalid, d.Name, d.Steps, MaxSteps)
	case d.Ports.Proto != service.TCP && d.Ports.Proto != service.UDP || d.Ports.First == 0 || d.Ports.Last < d.Ports.First:
		return fmt.Errorf("%w %q: port range %v", ErrInvalid, d.Name, d.Ports)
	case d.Ports.Len() < minPortsPerStep*d.Steps:
		return fmt.Errorf("%w %q: port range %v has %d ports, %d steps need at least %d", ErrInvalid, d.Name, d.Ports, d.Ports.Len(), d.Steps, minPortsPerStep*d.Steps)
	}
	return nil
}

// Counter is the period number at t (RFC 6238's T with X = d.Period).
func (d Door) Counter(t time.Time) uint64 { return Counter(t, d.Period) }

// At is the sequence to knock at time t.
func (d Door) At(t time.Time) []service.Service { return d.Sequence(d.Counter(t)) }

// Sequence derives the door's knock sequence for period c:
//
//	for j = 0, 1, 2, ...:
//	    M_j = "sesame-knock-v1" 0x00 Name 0x00 c (8 bytes, big endian) j (2 bytes, big endian)
//	    v_j = Truncate(HMAC-SHA-256(Key, M_j))          (RFC 4226 §5.3, 31 bits)
//	    p_j = Ports.First + v_j mod Ports.Len()
//	    keep p_j unless it equals a port already kept or is within 1 of
//	    the port kept just before (so no port scan walks two steps in order)
//	until Steps ports are kept.
//
// It returns nil for an invalid door, or in the (astronomically unlikely)
// case that 64 tries per step do not find the ports.
func (d Door) Sequence(c uint64) []service.Service {
	if d.Validate() != nil {
		return nil
	}
	msg := make([]byte, 0, len(label)+len(d.Name)+12)
	msg = append(msg, label...)
	msg = append(msg, 0)
	msg = append(msg, d.Name...)
	msg = append(msg, 0)
	msg = binary.BigEndian.AppendUint64(msg, c)
	jAt := len(msg)
	msg = append(msg, 0, 0)
	mac := hmac.New(sha256.New, d.Key)
	span := uint32(d.Ports.Len())
	seq := make([]service.Service, 0, d.Steps)
	var sum [sha256.Size]byte
	for j := 0; len(seq) < d.Steps; j++ {
		if j >= 64*d.Steps {
			return nil
		}
		binary.BigEndian.PutUint16(msg[jAt:], uint16(j))
		mac.Reset()
		mac.Write(msg)
		p := uint16(uint32(d.Ports.First) + Truncate(mac.Sum(sum[:0]))%span)
		if !acceptable(seq, p) {
			continue
		}
		seq = append(seq, service.Service{Proto: d.Ports.Proto, Port: p})
	}
	return seq
}

func acceptable(seq []service.Service, p uint16) bool {
	for _, s := range seq {
		if s.Port == p {
			return false
		}
	}
	if n := len(seq); n > 0 {
		if diff := int(seq[n-1].Port) - int(p); diff >= -1 && diff <= 1 {
			return false
		}
	}
	return true
}

// Package knock is the knock-sequence state machine: per source address it
// tracks how far each door's sequence has got and decides when a door opens.
//
// It is pure: packets' (source, service, TCP flags) and the time go in,
// events come out. It is not safe for concurrent use; the gateway drives it
// from one goroutine.
//
// Semantics (scan-proof; see docs/knock.md):
//   - An attempt starts when a source hits the first step of a door (with the
//     door's TCP flags, from an allowed prefix). It must reach the last step
//     within the door's Timeout, measured from the first knock (knockd's
//     Seq_Timeout).
//   - Any other packet from that source to any port the gateway reports to
//     the machine resets the attempt — including ports outside every door, so
//     a port scan in any order resets itself. (knockd only sees door ports,
//     which is why it opens on an ascending scan.)
//   - A repeat of the step just matched (a retransmitted SYN, a second
//     datagram) is tolerated and changes nothing.
//   - A packet to a knock port whose TCP flags do not match the door is
//     ignored, as knockd ignores it.
//   - Doors that share a prefix progress in parallel.
//   - At most MaxSources sources are tracked. When full, the least recently
//     active source still at its first step is evicted first, then the least
//     recently active of all, so a flood of first knocks from spoofed
//     addresses cannot push out a client that is further along.
//
// NewWithOptions can switch to knockd 0.8's exact semantics instead
// (Options.Knockd, for the knockd drop-in's --knockd-parity). A door with a
// Rotator derives its sequence from the time (rotating doors: the current
// and the previous period are accepted, each sequence opens once), and
// SetSequence replaces a door's sequence (knockd's One_Time_Sequences).
package knock

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/sesame-gw/sesame/internal/packet"
	"github.com/sesame-gw/sesame/internal/service"
)

// Flags is a TCP flags condition: every flag in Set must be set and every
// flag in Clear must be clear; other flags do not matter (knockd's TCPFlags,
// with "!" for Clear). The zero value matches every packet.
type Flags struct {
	Set, Clear packet.TCPFlags
}

// Match reports whether f satisfies the condition.
func (c Flags) Match(f packet.TCPFlags) bool {
	return f&c.Set == c.Set && f&c.Clear == 0
}

var flagNames = []struct {
	name string
	bit  packet.TCPFlags
}{{"fin", packet.FIN}, {"syn", packet.SYN}, {"rst", packet.RST}, {"psh", packet.PSH}, {"ack", packet.ACK}, {"urg", packet.URG}}

// ParseFlags reads knockd's TCPFlags syntax: names from fin, syn, rst, psh,
// ack, urg, each optionally prefixed with "!" (must be clear).
func ParseFlags(names []string) (Flags, error) {
	var c Flags
	for _, n := range names {
		n = strings.ToLower(strings.TrimSpace(n))
		neg := strings.HasPrefix(n, "!")
		n = strings.TrimPrefix(n, "!")
		var bit packet.TCPFlags
		for _, fn := range flagNames {
			if fn.name == n {
				bit = fn.bit
			}
		}
		if bit == 0 {
			return Flags{}, fmt.Errorf("unknown TCP flag %q (want fin, syn, rst, psh, ack, urg, optionally with !)", n)
		}
		if neg {
			c.Clear |= bit
		} else {
			c.Set |= bit
		}
	}
	if c.Set&c.Clear != 0 {
		return Flags{}, fmt.Errorf("a TCP flag is both required and forbidden")
	}
	return c, nil
}

// String formats the condition in knockd's syntax ("syn,!ack").
func (c Flags) String() string {
	var parts []string
	for _, fn := range flagNames {
		if c.Set&fn.bit != 0 {
			parts = append(parts, fn.name)
		}
		if c.Clear&fn.bit != 0 {
			parts = append(parts, "!"+fn.name)
		}
	}
	return strings.Join(parts, ",")
}

// Door is one knock sequence.
type Door struct {
	Name     string
	Sequence []service.Service
	// Timeout is the time allowed from the first knock to the last.
	Timeout time.Duration
	// Flags applies to the TCP steps of the sequence.
	Flags Flags
	// Sources limits who may knock; empty means everyone.
	Sources []netip.Prefix
	// Rotator, when set, makes a rotating door: its sequence is derived from
	// the time (internal/totp), Sequence is ignored, the sequences of the
	// current and the previous period are accepted, and each opens once.
	Rotator Rotator
}

func (d *Door) allows(a netip.Addr) bool {
	if len(d.Sources) == 0 {
		return true
	}
	for _, p := range d.Sources {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (d *Door) flagsOK(s service.Service, f packet.TCPFlags) bool {
	return s.Proto != service.TCP || d.Flags.Match(f)
}

// Validate checks a door on its own (name, sequence, timeout).
func (d Door) Validate() error {
	if d.Name == "" {
		return fmt.Errorf("door has no name")
	}
	if d.Rotator != nil {
		if d.Timeout <= 0 {
			return fmt.Errorf("door %q: timeout must be positive", d.Name)
		}
		return nil
	}
	if len(d.Sequence) == 0 {
		return fmt.Errorf("door %q: empty sequence", d.Name)
	}
	if len(d.Sequence) > MaxSequence {
		return fmt.Errorf("door %q: sequence of %d steps, at most %d", d.Name, len(d.Sequence), MaxSequence)
	}
	for _, s := range d.Sequence {
		if !s.Valid() {
			return fmt.Errorf("door %q: invalid step %v", d.Name, s)
		}
	}
	if d.Timeout <= 0 {
		return fmt.Errorf("door %q: timeout must be positive", d.Name)
	}
	return nil
}

// ScanSafe reports an error when a port scan in some order would walk
// through two consecutive steps with nothing in between: the same port
// twice, the same port in TCP and UDP, or neighbouring port numbers. Every
// other sequence needs a packet that no scan sends in order.
func (d Door) ScanSafe() error {
	for i := 1; i < len(d.Sequence); i++ {
		a, b := d.Sequence[i-1], d.Sequence[i]
		if diff := int(a.Port) - int(b.Port); diff >= -1 && diff <= 1 {
			return fmt.Errorf("door %q: steps %d and %d (%v, %v) are neighbours, so a port scan in order would complete them; pick ports at least 2 apart", d.Name, i, i+1, a, b)
		}
	}
	return nil
}

// MaxSequence is the longest sequence a door may have (knockd's limit).
const MaxSequence = 32

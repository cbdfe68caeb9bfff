// Package knockdconf reads knockd's configuration (knockd.conf, knockd 0.8's
// parseconfig()) and its One_Time_Sequences files, so `sesame serve
// --knockd-conf` runs an existing file unchanged and `sesame import knockd`
// translates it.
//
// The syntax is knockd's: "[name]" starts a door, "[options]" (exactly that,
// lower case) holds the globals, "key = value" lines with case-insensitive
// keys, "#" comments only at the start of a line, the bare keyword UseSyslog
// allowed in any section, and an unknown key is an error. Sesame is stricter
// than knockd where knockd silently misreads a value (atoi turns "70OO" into
// 70 and "abc" into port 0): such values are errors naming the line. The
// differences are listed in docs/knockd-compat.md.
//
// The package is pure: it parses bytes and reads no file (the caller opens
// One_Time_Sequences files). Values are safe for concurrent reads.
package knockdconf

import (
	"net/netip"
	"time"

	"github.com/sesame-gw/sesame/internal/knock"
	"github.com/sesame-gw/sesame/internal/service"
)

// knockd's defaults and limits (knockd.c).
const (
	DefaultSeqTimeout = 25 * time.Second // SEQ_TIMEOUT
	DefaultCmdTimeout = 10 * time.Second // CMD_TIMEOUT
	DefaultInterface  = "eth0"
	DefaultPidFile    = "/var/run/knockd.pid"
	MaxSequence       = 32   // SEQ_MAX
	MaxCommand        = 4095 // PATH_MAX-1: a longer expanded command is not run
	maxNameLen        = 127  // door names are truncated to 127 bytes
	// MaxFile bounds the size of a knockd.conf or One_Time_Sequences file.
	MaxFile = 1 << 20
)

// Config is a parsed knockd.conf.
type Config struct {
	Options Options
	Doors   []Door
}

// Options is the [options] section.
type Options struct {
	// UseSyslog: log to syslog (ident "knockd", LOG_USER, LOG_NOTICE).
	UseSyslog bool
	// LogFile is the path of knockd's log file ("" = none).
	LogFile string
	// PidFile is the path of the pid file ("" = not set in the file).
	PidFile string
	// Interface is the interface to watch ("" = not set; knockd then uses
	// eth0).
	Interface string
}

// Door is one door section.
type Door struct {
	// Name is the section name (at most 127 bytes, as knockd truncates).
	Name string
	// Line is the line of the section header.
	Line int
	// Sequence is the knock sequence (Sequence = ...). For a door with
	// OneTimeFile it is empty: the sequence comes from the file.
	Sequence []service.Service
	// OneTimeFile is the One_Time_Sequences path ("" for a fixed door).
	OneTimeFile string
	// SeqTimeout is Seq_Timeout (alias Timeout); default 25 s.
	SeqTimeout time.Duration
	// Flags is TCPFlags.
	Flags knock.Flags
	// Start and Start6 are Start_Command (alias Command) and
	// Start_Command_6 (alias Command_6); Stop and Stop6 are Stop_Command and
	// Stop_Command_6. See StartCommand and StopCommand for the fallbacks.
	Start, Start6, Stop, Stop6 Command
	// CmdTimeout is Cmd_Timeout: the delay between the start command and
	// the stop command; default 10 s.
	CmdTimeout time.Duration
	// Target is Target: match packets to this address instead of the
	// interface's addresses (invalid when not set).
	Target netip.Addr

	seqLine, otsLine int // where Sequence and One_Time_Sequences were set
}

// Command is one command directive. knockd tells "absent" (NULL, so the _6
// variant falls back to the IPv4 one) from "present but empty" (nothing
// runs).
type Command struct {
	Set  bool
	Text string
}

// StartCommand returns the start command for a knocker of the given
// family, with knockd's fallback: Start_Command_6 when set, else
// Start_Command. An empty result means no command runs (and then no stop
// command either, as in knockd).
func (d *Door) StartCommand(v6 bool) string {
	if v6 && d.Start6.Set {
		return d.Start6.Text
	}
	return d.Start.Text
}

// StopCommand returns the stop command and whether one is set, with the
// same fallback.
func (d *Door) StopCommand(v6 bool) (string, bool) {
	if v6 && d.Stop6.Set {
		return d.Stop6.Text, true
	}
	return d.Stop.Text, d.Stop.Set
}

// KnockDoor returns the door as the knock state machine takes it (with seq
// as the sequence: the door's own, or the current one-time sequence).
func (d *Door) KnockDoor(seq []service.Service) knock.Door {
	return knock.Door{Name: d.Name, Sequence: seq, Timeout: d.SeqTimeout, Flags: d.Flags}
}

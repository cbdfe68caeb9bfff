package knockdconf

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/sesame-gw/sesame/internal/knock"
	"github.com/sesame-gw/sesame/internal/service"
)

// Error is a configuration error at a line of a file.
type Error struct {
	File string
	Line int // 0 when the error is about the whole file
	Err  error
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrSyntax is wrapped by every error about a line knockd would also refuse
// ("syntax error" in knockd's words) or that Sesame refuses as a misread.
var ErrSyntax = errors.New("syntax error")

// Parse reads knockd.conf contents; file names the file in errors. It
// returns the first error, as knockd stops at the first one.
func Parse(file string, src []byte) (*Config, error) {
	if len(src) > MaxFile {
		return nil, &Error{File: file, Err: fmt.Errorf("larger than %d bytes", MaxFile)}
	}
	p := parser{file: file, cfg: &Config{}}
	for i, line := range strings.Split(string(src), "\n") {
		if err := p.line(i+1, line); err != nil {
			return nil, err
		}
	}
	return p.finish()
}

type parser struct {
	file    string
	cfg     *Config
	section string // "" before the first section
}

func (p *parser) errf(line int, format string, args ...any) error {
	return &Error{File: p.file, Line: line, Err: fmt.Errorf("%w: "+format, append([]any{ErrSyntax}, args...)...)}
}

// trim is knockd's trim(): C isspace() on both ends.
func trim(s string) string { return strings.Trim(s, " \t\n\v\f\r") }

func (p *parser) line(n int, raw string) error {
	line := trim(raw)
	if line == "" || line[0] == '#' {
		return nil
	}
	if line[0] == '[' && line[len(line)-1] == ']' && len(line) >= 2 {
		name := line[1 : len(line)-1]
		if name == "" {
			return p.errf(n, "bad section name")
		}
		p.section = name
		if name != "options" {
			if len(name) > maxNameLen {
				name = name[:maxNameLen]
			}
			for i := range p.cfg.Doors {
				if p.cfg.Doors[i].Name == name {
					return p.errf(n, "door [%s] is defined twice (line %d)", name, p.cfg.Doors[i].Line)
				}
			}
			p.cfg.Doors = append(p.cfg.Doors, Door{Name: name, Line: n, SeqTimeout: DefaultSeqTimeout, CmdTimeout: DefaultCmdTimeout})
		}
		return nil
	}
	if p.section == "" {
		return p.errf(n, "all directives must belong to a section")
	}
	key, value, hasValue := strings.Cut(line, "=")
	key = strings.ToUpper(trim(key))
	if !hasValue {
		if key == "USESYSLOG" {
			p.cfg.Options.UseSyslog = true
			return nil
		}
		return p.errf(n, "%q is not \"key = value\" (only UseSyslog stands alone)", line)
	}
	value = trim(value)
	if p.section == "options" {
		return p.option(n, key, value)
	}
	return p.directive(n, key, value)
}

func (p *parser) option(n int, key, value string) error {
	o := &p.cfg.Options
	switch key {
	case "LOGFILE":
		o.LogFile = value
	case "PIDFILE":
		o.PidFile = value
	case "INTERFACE":
		if value == "" || len(value) > 15 || strings.ContainsAny(value, "/ \t") {
			return p.errf(n, "Interface %q is not an interface name", value)
		}
		o.Interface = value
	default:
		return p.errf(n, "unknown option %q in [options] (LogFile, PidFile, Interface, UseSyslog)", key)
	}
	return nil
}

// directive applies a key of the current door section (the last door).
func (p *parser) directive(n int, key, value string) error {
	d := &p.cfg.Doors[len(p.cfg.Doors)-1]
	switch key {
	case "TARGET":
		a, err := netip.ParseAddr(value)
		if err != nil || a.Zone() != "" {
			return p.errf(n, "Target %q is not an IP address", value)
		}
		d.Target = a.Unmap()
	case "SEQUENCE":
		seq, err := ParseSequence(value)
		if err != nil {
			return p.errf(n, "door [%s]: %v", d.Name, err)
		}
		d.Sequence = seq
		d.seqLine = n
	case "ONE_TIME_SEQUENCES":
		if value == "" {
			return p.errf(n, "door [%s]: One_Time_Sequences needs a file", d.Name)
		}
		d.OneTimeFile = value
		d.otsLine = n
	case "SEQ_TIMEOUT", "TIMEOUT":
		v, err := seconds(value, 1)
		if err != nil {
			return p.errf(n, "door [%s]: Seq_Timeout: %v", d.Name, err)
		}
		d.SeqTimeout = v
	case "CMD_TIMEOUT":
		v, err := seconds(value, 0)
		if err != nil {
			return p.errf(n, "door [%s]: Cmd_Timeout: %v", d.Name, err)
		}
		d.CmdTimeout = v
	case "START_COMMAND", "COMMAND":
		d.Start = Command{Set: true, Text: value}
	case "START_COMMAND_6", "COMMAND_6":
		d.Start6 = Command{Set: true, Text: value}
	case "STOP_COMMAND":
		d.Stop = Command{Set: true, Text: value}
	case "STOP_COMMAND_6":
		d.Stop6 = Command{Set: true, Text: value}
	case "TCPFLAGS":
		f, err := ParseFlags(value)
		if err != nil {
			return p.errf(n, "door [%s]: %v", d.Name, err)
		}
		// knockd sets flag by flag: a second TCPFlags line adds to the first,
		// and a later mention of a flag overrides an earlier one.
		d.Flags.Set = d.Flags.Set&^f.Clear | f.Set
		d.Flags.Clear = d.Flags.Clear&^f.Set | f.Clear
	default:
		return p.errf(n, "door [%s]: unknown directive %q", d.Name, key)
	}
	return nil
}

func (p *parser) finish() (*Config, error) {
	for i := range p.cfg.Doors {
		d := &p.cfg.Doors[i]
		switch {
		case d.seqLine > 0 && d.otsLine > 0:
			return nil, &Error{File: p.file, Line: max(d.seqLine, d.otsLine), Err: fmt.Errorf("%w: door [%s] has both Sequence and One_Time_Sequences", ErrSyntax, d.Name)}
		case d.seqLine == 0 && d.otsLine == 0:
			return nil, &Error{File: p.file, Line: d.Line, Err: fmt.Errorf("%w: section '%s' has an empty knock sequence", ErrSyntax, d.Name)}
		}
	}
	return p.cfg, nil
}

// seconds reads knockd's integer seconds (Seq_Timeout, Cmd_Timeout).
func seconds(s string, minimum int) (time.Duration, error) {
	v, err := strconv.Atoi(s)
	if err != nil || v < minimum || v > 1<<31/2 {
		return 0, fmt.Errorf("%q is not a whole number of seconds ≥ %d", s, minimum)
	}
	return time.Duration(v) * time.Second, nil
}

// ParseSequence reads knockd's Sequence syntax: comma-separated
// "port[:tcp|:udp]" (TCP by default, protocol case-insensitive, spaces
// around the parts allowed), 1 to 32 elements.
func ParseSequence(s string) ([]service.Service, error) {
	parts := strings.Split(s, ",")
	if len(parts) > MaxSequence {
		return nil, fmt.Errorf("too many ports in knock sequence (%d, at most %d)", len(parts), MaxSequence)
	}
	seq := make([]service.Service, 0, len(parts))
	for _, part := range parts {
		portText, protoText, hasProto := strings.Cut(part, ":")
		port, err := strconv.ParseUint(trim(portText), 10, 32)
		if err != nil || port == 0 || port > 65535 {
			return nil, fmt.Errorf("port %q is invalid", trim(portText))
		}
		proto := service.TCP
		if hasProto {
			switch strings.ToUpper(trim(protoText)) {
			case "TCP":
			case "UDP":
				proto = service.UDP
			default:
				return nil, fmt.Errorf("unknown protocol %q in knock sequence", trim(protoText))
			}
		}
		seq = append(seq, service.Service{Proto: proto, Port: uint16(port)})
	}
	return seq, nil
}

// ParseFlags reads knockd's TCPFlags syntax: comma-separated fin, syn, rst,
// psh, ack, urg, each optionally "!"-negated, case-insensitive. Within one
// line, a later mention of a flag overrides an earlier one, as in knockd.
func ParseFlags(s string) (knock.Flags, error) {
	var f knock.Flags
	for _, name := range strings.Split(s, ",") {
		one, err := knock.ParseFlags([]string{name})
		if err != nil {
			return knock.Flags{}, fmt.Errorf("unrecognized flag %q", trim(name))
		}
		f.Set = f.Set&^one.Clear | one.Set
		f.Clear = f.Clear&^one.Set | one.Clear
	}
	return f, nil
}

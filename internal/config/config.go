// Package config reads sesame.toml: strict TOML where an unknown key, a bad
// port or a bad duration is an error naming the file, the line and the key.
// docs/configuration.md documents every key.
package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/sesame-gw/sesame/internal/knock"
	"github.com/sesame-gw/sesame/internal/service"
)

// Defaults for keys left out.
const (
	DefaultStateDir   = "/var/lib/sesame"
	DefaultSeqTimeout = 25 * time.Second // knockd's Seq_Timeout
	DefaultDuration   = 30 * time.Second
	DefaultLogGroup   = 7
	DefaultLogRate    = 2000
	MaxDuration       = 24 * time.Hour
)

// Config is a parsed, validated sesame.toml.
type Config struct {
	Gateway Gateway  `toml:"gateway"`
	Doors   []Door   `toml:"door"`
	SPA     *SPA     `toml:"spa"`    // nil without [spa]; see spa.go
	Clients []Client `toml:"client"` // [[client]]
	PKI     *PKI     `toml:"pki"`    // nil without [pki]; see pki.go

	// File is the path the config was read from (for messages).
	File string `toml:"-"`
}

// Gateway holds the daemon-wide settings.
type Gateway struct {
	// Interfaces the gateway acts on; empty means every interface but lo.
	Interfaces []string `toml:"interfaces"`
	// StateDir keeps state across restarts (replay caches, pending commands).
	StateDir string `toml:"state_dir"`
	// LogFormat is "text" (default) or "json".
	LogFormat string `toml:"log_format"`
	// LogLevel is "debug", "info" (default), "warn" or "error".
	LogLevel string `toml:"log_level"`
	// NFLogGroup is the NFLOG group knock and SPA packets are sent to.
	NFLogGroup int `toml:"nflog_group"`
	// NFLogBulkGroup takes the packets beyond NFLogRate per second in
	// batches (flood resistance); default NFLogGroup+1, -1 disables it.
	NFLogBulkGroup int `toml:"nflog_bulk_group"`
	// NFLogRate is how many packets per second go through NFLogGroup one
	// at a time before the excess goes to the bulk group.
	NFLogRate int `toml:"nflog_rate"`
	// MaxSources caps the sources tracked by the knock state machine.
	MaxSources int `toml:"max_sources"`
	// AlwaysAllow are admin prefixes Sesame never drops.
	AlwaysAllow []Prefix `toml:"always_allow"`
	// Ops are audit_log, metrics_listen and control_socket: see ops.go.
	Ops
}

// Door is one [[door]] table.
type Door struct {
	Name       string    `toml:"name"`
	Sequence   []Service `toml:"sequence"`
	SeqTimeout Duration  `toml:"seq_timeout"`
	Open       []Range   `toml:"open"`
	Duration   Duration  `toml:"duration"`
	TCPFlags   []string  `toml:"tcp_flags"`
	Sources    []Prefix  `toml:"sources"`
	Rotating             // secret_file, period, port_range, steps: see rotating.go
}

// Error is a configuration error at a place in a file.
type Error struct {
	File string
	Line int    // 0 when unknown
	Key  string // dotted key, with the table index: door[1].sequence
	Err  error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, ": %s", e.Key)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Load reads and validates the file at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(path, b)
	if err != nil {
		return nil, err
	}
	if err := c.loadSecrets(string(b)); err != nil {
		return nil, err
	}
	if err := c.loadPKI(string(b)); err != nil {
		return nil, err
	}
	return c, nil
}

// Parse validates src as the contents of file.
func Parse(file string, src []byte) (*Config, error) {
	c := &Config{File: file}
	md, err := toml.Decode(string(src), c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			msg := pe.Message
			if pe.Usage != "" {
				msg += " (" + strings.TrimSpace(pe.Usage) + ")"
			}
			return nil, &Error{File: file, Line: pe.Position.Line, Key: pe.LastKey, Err: errors.New(msg)}
		}
		if m := tomlLine.FindStringSubmatch(err.Error()); m != nil {
			line, _ := strconv.Atoi(m[1])
			msg := strings.TrimPrefix(err.Error(), m[0])
			return nil, &Error{File: file, Line: line, Key: m[2], Err: errors.New(msg)}
		}
		return nil, &Error{File: file, Err: err}
	}
	v := validator{file: file, src: string(src)}
	var tables []string
	for _, k := range md.Undecoded() {
		if under(k.String(), tables) {
			continue
		}
		if t := md.Type(k...); t == "Hash" || t == "ArrayHash" {
			tables = append(tables, k.String())
			v.errs = append(v.errs, &Error{File: file, Line: headerLine(v.src, k.String()), Key: k.String(), Err: errors.New("unknown table")})
			continue
		}
		v.unknown(k)
	}
	c.applyDefaults()
	c.validate(&v)
	if len(v.errs) > 0 {
		return nil, errors.Join(v.errs...)
	}
	return c, nil
}

type validator struct {
	file, src string
	errs      []error
}

// at records an error for key in the index-th instance of table.
func (v *validator) at(table string, index int, key string, format string, args ...any) {
	name := key
	if table != "" {
		name = fmt.Sprintf("%s[%d].%s", table, index, key)
		if key == "" {
			name = fmt.Sprintf("%s[%d]", table, index)
		}
	}
	v.errs = append(v.errs, &Error{File: v.file, Line: locate(v.src, table, index, key), Key: name, Err: fmt.Errorf(format, args...)})
}

func (v *validator) unknown(k toml.Key) {
	// Find which instance of an array table it sits in by scanning headers.
	table, key := strings.Join(k[:len(k)-1], "."), k[len(k)-1]
	line := 0
	for i := 0; line == 0 && i < 1000; i++ {
		l := locate(v.src, table, i, key)
		if l == 0 {
			break
		}
		if isKeyLine(v.src, l, key) {
			line = l
		}
	}
	v.errs = append(v.errs, &Error{File: v.file, Line: line, Key: k.String(), Err: errors.New("unknown key")})
}

// tomlLine matches the prefix of BurntSushi/toml's decoding errors.
var tomlLine = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): `)

func under(k string, tables []string) bool {
	for _, t := range tables {
		if strings.HasPrefix(k, t+".") {
			return true
		}
	}
	return false
}

// headerLine finds the line of the [name] or [[name]] header.
func headerLine(src, name string) int {
	for i, l := range strings.Split(src, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "[") {
			h := strings.TrimSpace(strings.Trim(strings.SplitN(strings.TrimLeft(l, "["), "]", 2)[0], " "))
			if h == name {
				return i + 1
			}
		}
	}
	return 0
}

func isKeyLine(src string, line int, key string) bool {
	lines := strings.Split(src, "\n")
	if line < 1 || line > len(lines) {
		return false
	}
	k, _, ok := strings.Cut(strings.TrimSpace(lines[line-1]), "=")
	return ok && strings.Trim(strings.TrimSpace(k), `"'`) == key
}

// Defaults returns a configuration without doors or clients and with every
// default applied: what a daemon serving only fwknop's access.conf runs
// with.
func Defaults() *Config {
	c := &Config{File: "(defaults)"}
	c.applyDefaults()
	return c
}

func (c *Config) applyDefaults() {
	g := &c.Gateway
	if g.StateDir == "" {
		g.StateDir = DefaultStateDir
	}
	if g.LogFormat == "" {
		g.LogFormat = "text"
	}
	if g.LogLevel == "" {
		g.LogLevel = "info"
	}
	if g.NFLogGroup == 0 {
		g.NFLogGroup = DefaultLogGroup
	}
	if g.NFLogBulkGroup == 0 {
		g.NFLogBulkGroup = g.NFLogGroup + 1
		if g.NFLogBulkGroup > 65535 {
			g.NFLogBulkGroup = g.NFLogGroup - 1
		}
	}
	if g.NFLogRate == 0 {
		g.NFLogRate = DefaultLogRate
	}
	if g.MaxSources == 0 {
		g.MaxSources = knock.DefaultMaxSources
	}
	g.opsDefaults()
	for i := range c.Doors {
		d := &c.Doors[i]
		if d.SeqTimeout == 0 {
			d.SeqTimeout = Duration(DefaultSeqTimeout)
		}
		if d.Duration == 0 {
			d.Duration = Duration(DefaultDuration)
		}
		d.rotatingDefaults()
	}
}

func (c *Config) validate(v *validator) {
	g := &c.Gateway
	switch g.LogFormat {
	case "text", "json":
	default:
		v.at("gateway", 0, "log_format", "%q is not text or json", g.LogFormat)
	}
	switch g.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		v.at("gateway", 0, "log_level", "%q is not debug, info, warn or error", g.LogLevel)
	}
	if g.NFLogGroup < 1 || g.NFLogGroup > 65535 {
		v.at("gateway", 0, "nflog_group", "%d is not from 1 to 65535", g.NFLogGroup)
	}
	if g.NFLogBulkGroup != -1 && (g.NFLogBulkGroup < 1 || g.NFLogBulkGroup > 65535 || g.NFLogBulkGroup == g.NFLogGroup) {
		v.at("gateway", 0, "nflog_bulk_group", "%d is not -1 (off) or a group from 1 to 65535 other than nflog_group", g.NFLogBulkGroup)
	}
	if g.NFLogRate < 1 || g.NFLogRate > 10_000_000 {
		v.at("gateway", 0, "nflog_rate", "%d is not from 1 to 10000000", g.NFLogRate)
	}
	if g.MaxSources < 1 || g.MaxSources > 1<<24 {
		v.at("gateway", 0, "max_sources", "%d is not from 1 to %d", g.MaxSources, 1<<24)
	}
	for _, name := range g.Interfaces {
		if name == "" || len(name) > 15 || strings.ContainsAny(name, "/ \t") {
			v.at("gateway", 0, "interfaces", "%q is not an interface name", name)
		}
	}
	if len(c.Doors) == 0 && len(c.Clients) == 0 && c.PKI == nil {
		v.errs = append(v.errs, &Error{File: v.file, Err: errNothing})
	}
	names := map[string]int{}
	protected := map[service.Service]string{}
	for i, d := range c.Doors {
		for _, r := range d.Open {
			for _, s := range service.Range(r).Services() {
				protected[s] = d.Name
			}
		}
		if d.Name == "" {
			v.at("door", i, "name", "missing")
		} else if j, dup := names[d.Name]; dup {
			v.at("door", i, "name", "%q is also the name of door %d", d.Name, j)
		}
		names[d.Name] = i
	}
	for i := range c.Doors {
		c.validateDoor(v, i, protected)
	}
	c.validateSPA(v)
	c.validatePKI(v)
	c.validateOps(v)
}

func (c *Config) validateDoor(v *validator, i int, protected map[service.Service]string) {
	d := &c.Doors[i]
	if c.validateRotating(v, i, protected) {
		return
	}
	if len(d.Sequence) == 0 {
		v.at("door", i, "sequence", "missing or empty")
	}
	if len(d.Sequence) > knock.MaxSequence {
		v.at("door", i, "sequence", "%d steps, at most %d", len(d.Sequence), knock.MaxSequence)
	}
	for _, s := range d.Sequence {
		if owner, ok := protected[service.Service(s)]; ok {
			v.at("door", i, "sequence", "%v is a port door %q opens; a knock port must stay closed", service.Service(s), owner)
		}
	}
	if len(d.Open) == 0 {
		v.at("door", i, "open", "missing: what does the door open?")
	}
	for _, r := range d.Open {
		if service.Range(r).Len() > 4096 {
			v.at("door", i, "open", "range %v is too wide (at most 4096 ports)", service.Range(r))
		}
	}
	if d.SeqTimeout <= 0 || time.Duration(d.SeqTimeout) > time.Hour {
		v.at("door", i, "seq_timeout", "%v is not from 1ms to 1h", time.Duration(d.SeqTimeout))
	}
	if d.Duration <= 0 || time.Duration(d.Duration) > MaxDuration {
		v.at("door", i, "duration", "%v is not from 1ms to %v", time.Duration(d.Duration), MaxDuration)
	}
	if _, err := knock.ParseFlags(d.TCPFlags); err != nil {
		v.at("door", i, "tcp_flags", "%v", err)
	}
	if len(d.Sequence) > 0 && len(d.Sequence) <= knock.MaxSequence {
		if err := c.KnockDoor(i).ScanSafe(); err != nil {
			v.at("door", i, "sequence", "%v", err)
		}
	}
}

// KnockDoor is door i as the knock state machine takes it.
func (c *Config) KnockDoor(i int) knock.Door {
	d := &c.Doors[i]
	if d.IsRotating() {
		return c.rotatingKnockDoor(i)
	}
	seq := make([]service.Service, len(d.Sequence))
	for j, s := range d.Sequence {
		seq[j] = service.Service(s)
	}
	flags, _ := knock.ParseFlags(d.TCPFlags)
	return knock.Door{Name: d.Name, Sequence: seq, Timeout: time.Duration(d.SeqTimeout), Flags: flags, Sources: prefixes(d.Sources)}
}

// OpenServices expands door i's open list.
func (c *Config) OpenServices(i int) []service.Service {
	var out []service.Service
	for _, r := range c.Doors[i].Open {
		out = append(out, service.Range(r).Services()...)
	}
	return out
}

// Protected is every service some door or client opens, sorted.
func (c *Config) Protected() []service.Service {
	set := map[service.Service]bool{}
	for i := range c.Doors {
		for _, s := range c.OpenServices(i) {
			set[s] = true
		}
	}
	c.addClientServices(set)
	c.addPKIServices(set)
	return sortedServices(set)
}

// Watched is every knock step of every door and the SPA port, sorted.
func (c *Config) Watched() []service.Service {
	set := map[service.Service]bool{}
	for _, d := range c.Doors {
		for _, s := range d.Sequence {
			set[service.Service(s)] = true
		}
	}
	if p, ok := c.SPAPort(); ok {
		set[p] = true
	}
	c.addRotatingPorts(set)
	return sortedServices(set)
}

// AlwaysAllow lists the admin prefixes.
func (c *Config) AlwaysAllow() []netip.Prefix { return prefixes(c.Gateway.AlwaysAllow) }

func sortedServices(set map[service.Service]bool) []service.Service {
	out := make([]service.Service, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].Proto != out[b].Proto {
			return out[a].Proto < out[b].Proto
		}
		return out[a].Port < out[b].Port
	})
	return out
}

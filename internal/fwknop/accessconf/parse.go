package accessconf

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/sesame-gw/sesame/internal/fwknop"
)

// maxDepth bounds include nesting: the top file is level 1 and fwknopd
// refuses %include at level 3 (MAX_DEPTH). Sesame applies the same
// bound to %include_folder, which fwknopd leaves unbounded.
const maxDepth = 3

// maxFiles bounds the files one Parse reads, includes included: with
// %include_folder a small file could otherwise fan out exponentially.
const maxFiles = 512

// maxErrors stops a parse that has found this many errors.
const maxErrors = 50

// Options tune Parse.
type Options struct {
	// FS resolves %include, %include_folder and %include_keys. Absolute
	// paths are looked up without their leading '/', so pass
	// os.DirFS("/") to read the real file system. Nil forbids includes.
	FS fs.FS
	// Dir resolves relative include paths. fwknopd opens them relative
	// to its working directory; the default here is the directory of the
	// top-level file.
	Dir string
	// Location interprets ACCESS_EXPIRE dates (fwknopd uses local time);
	// nil means UTC.
	Location *time.Location
}

// Config is a parsed access.conf.
type Config struct {
	// Stanzas in file order, includes expanded where they appear.
	Stanzas []*Stanza
	// Warnings to log: things ignored or adjusted where that is safe.
	Warnings []Warning
}

// Load reads and parses the access.conf at name in opts.FS (absolute or
// relative to opts.Dir).
func Load(name string, opts Options) (*Config, error) {
	if opts.FS == nil {
		return nil, fmt.Errorf("access.conf: no file system to read %s", name)
	}
	p := &parser{opts: opts, cfg: &Config{}}
	if p.opts.Dir == "" {
		p.opts.Dir = path.Dir(name)
	}
	b, err := p.read(name)
	if err != nil {
		return nil, err
	}
	return p.run(name, b)
}

// Parse parses access.conf text; name labels errors and anchors relative
// includes when opts.Dir is empty.
func Parse(name string, src []byte, opts Options) (*Config, error) {
	p := &parser{opts: opts, cfg: &Config{}}
	if p.opts.Dir == "" {
		p.opts.Dir = path.Dir(name)
	}
	return p.run(name, src)
}

type parser struct {
	opts   Options
	cfg    *Config
	errs   []error
	active []string // files being parsed, to refuse include cycles
	files  int      // files parsed so far
}

func (p *parser) run(name string, src []byte) (*Config, error) {
	p.parseFile(name, src, 1)
	if len(p.errs) == 0 && len(p.cfg.Stanzas) == 0 {
		p.errs = append(p.errs, &Error{File: name, Err: fmt.Errorf("%w: no SOURCE stanza", ErrInvalid)})
	}
	for _, s := range p.cfg.Stanzas {
		p.finish(s)
	}
	if len(p.errs) > 0 {
		if len(p.errs) >= maxErrors {
			p.errs = append(p.errs[:maxErrors], fmt.Errorf("%s: too many errors, stopped", name))
		}
		return nil, errors.Join(p.errs...)
	}
	return p.cfg, nil
}

func (p *parser) errorf(file string, ln line, sentinel error, format string, a ...any) {
	p.errs = append(p.errs, &Error{File: file, Line: ln.num, Key: ln.key, Err: fmt.Errorf("%w: "+format, append([]any{sentinel}, a...)...)})
}

func (p *parser) warn(file string, ln line, format string, a ...any) {
	p.cfg.Warnings = append(p.cfg.Warnings, Warning{File: file, Line: ln.num, Key: ln.key, Msg: fmt.Sprintf(format, a...)})
}

// stop reports whether parsing should end early: too many errors or
// too many files.
func (p *parser) stop() bool { return len(p.errs) >= maxErrors || p.files > maxFiles }

// resolve maps an include path to an fs.FS name.
func (p *parser) resolve(name string) string {
	if !path.IsAbs(name) {
		name = path.Join(p.opts.Dir, name)
	}
	name = path.Clean(strings.TrimPrefix(name, "/"))
	if name == "" {
		return "."
	}
	return name
}

func (p *parser) read(name string) ([]byte, error) {
	if p.opts.FS == nil {
		return nil, fmt.Errorf("includes are not available (no file system given)")
	}
	return fs.ReadFile(p.opts.FS, p.resolve(name))
}

// parseFile parses one file. As in fwknopd each file starts outside any
// stanza: lines before its first SOURCE are ignored, and after an
// %include the including file keeps filling its own current stanza.
func (p *parser) parseFile(file string, src []byte, depth int) {
	if slices.Contains(p.active, file) {
		p.errs = append(p.errs, &Error{File: file, Err: fmt.Errorf("%w: include cycle", ErrInvalid)})
		return
	}
	if p.files++; p.files > maxFiles {
		if p.files == maxFiles+1 {
			p.errs = append(p.errs, &Error{File: file, Err: fmt.Errorf("%w: more than %d files included", ErrInvalid, maxFiles)})
		}
		return
	}
	p.active = append(p.active, file)
	defer func() { p.active = p.active[:len(p.active)-1] }()

	lines, lexErrs := lexLines(string(src))
	for _, e := range lexErrs {
		e.File = file
		p.errs = append(p.errs, e)
	}
	var cur *Stanza
	for _, ln := range lines {
		if p.stop() {
			return
		}
		switch ln.key {
		case "%include":
			if depth >= maxDepth {
				p.errorf(file, ln, ErrInvalid, "includes nest deeper than %d levels", maxDepth)
				continue
			}
			b, err := p.read(ln.val)
			if err != nil {
				p.errorf(file, ln, ErrInvalid, "%v", err)
				continue
			}
			p.parseFile(ln.val, b, depth+1)
			continue
		case "%include_folder":
			p.includeFolder(file, ln, depth)
			continue
		case "SOURCE":
			src, err := ParseAddrList(ln.val)
			if err != nil {
				p.errorf(file, ln, ErrSyntax, "%v", err)
			}
			cur = &Stanza{File: file, Line: ln.num, Index: len(p.cfg.Stanzas), Source: src}
			p.cfg.Stanzas = append(p.cfg.Stanzas, cur)
			continue
		}
		if cur == nil {
			p.warn(file, ln, "ignored: not inside a stanza (a stanza starts with SOURCE)")
			continue
		}
		if ln.key == "%include_keys" {
			p.includeKeys(file, ln, cur)
			continue
		}
		p.setKey(file, ln, cur, false)
	}
}

// includeFolder parses every file of a directory whose extension starts
// with ".conf" (fwknopd's test), in name order (fwknopd uses readdir
// order, which depends on the file system).
func (p *parser) includeFolder(file string, ln line, depth int) {
	if depth >= maxDepth {
		p.errorf(file, ln, ErrInvalid, "includes nest deeper than %d levels", maxDepth)
		return
	}
	if p.opts.FS == nil {
		p.errorf(file, ln, ErrInvalid, "includes are not available (no file system given)")
		return
	}
	dir := strings.TrimRight(ln.val, "/")
	ents, err := fs.ReadDir(p.opts.FS, p.resolve(dir))
	if err != nil {
		p.errorf(file, ln, ErrInvalid, "%v", err)
		return
	}
	for _, e := range ents { // fs.ReadDir sorts by name
		if p.stop() {
			return
		}
		ext := path.Ext(e.Name())
		if e.IsDir() || !strings.HasPrefix(ext, ".conf") {
			continue
		}
		name := path.Join(dir, e.Name())
		b, err := p.read(name)
		if err != nil {
			p.errorf(file, ln, ErrInvalid, "%v", err)
			continue
		}
		p.parseFile(name, b, depth+1)
	}
}

// includeKeys reads KEY, KEY_BASE64, HMAC_KEY and HMAC_KEY_BASE64 for the
// current stanza from another file (%include_keys). fwknopd silently
// drops the stanza when the result is invalid; Sesame reports an error.
func (p *parser) includeKeys(file string, ln line, cur *Stanza) {
	b, err := p.read(ln.val)
	if err != nil {
		p.errorf(file, ln, ErrInvalid, "%v", err)
		return
	}
	lines, lexErrs := lexLines(string(b))
	for _, e := range lexErrs {
		e.File = ln.val
		p.errs = append(p.errs, e)
	}
	for _, kl := range lines {
		p.setKey(ln.val, kl, cur, true)
	}
}

// setKey applies one "KEY value" line to stanza s.
func (p *parser) setKey(file string, ln line, s *Stanza, keysOnly bool) {
	v := ln.val
	if keysOnly {
		switch ln.key {
		case "KEY", "KEY_BASE64", "HMAC_KEY", "HMAC_KEY_BASE64":
		default:
			if strings.HasPrefix(ln.key, "GPG_") {
				p.warn(file, ln, "ignored: GPG is not supported")
			} else {
				p.warn(file, ln, "ignored: an %%include_keys file only sets KEY, KEY_BASE64, HMAC_KEY and HMAC_KEY_BASE64 (as in fwknopd)")
			}
			return
		}
	}
	var err error
	switch ln.key {
	case "DESTINATION":
		s.Destination, err = ParseAddrList(v)
	case "OPEN_PORTS":
		s.OpenPorts, err = ParsePortList(v)
	case "RESTRICT_PORTS":
		s.RestrictPorts, err = ParsePortList(v)
	case "KEY", "HMAC_KEY":
		if strings.EqualFold(v, "__CHANGEME__") {
			p.errorf(file, ln, ErrInvalid, "value is not set (still __CHANGEME__)")
			return
		}
		if ln.key == "KEY" {
			s.Keys.Key = []byte(v)
		} else {
			s.Keys.HMACKey = []byte(v)
		}
		if ln.trailing {
			p.warn(file, ln, "trailing blanks removed from the key (as fwknopd 2.6.11 does; 2.6.10 kept them)")
		}
	case "KEY_BASE64", "HMAC_KEY_BASE64":
		if strings.EqualFold(v, "__CHANGEME__") {
			p.errorf(file, ln, ErrInvalid, "value is not set (still __CHANGEME__)")
			return
		}
		var k []byte
		if k, err = fwknop.DecodeKeyBase64(v); err == nil {
			if ln.key == "KEY_BASE64" {
				s.Keys.Key = k
			} else {
				s.Keys.HMACKey = k
			}
		}
	case "HMAC_DIGEST_TYPE":
		s.Keys.HMACHash, err = fwknop.ParseHash(v)
		s.hmacTypeSet = err == nil
	case "ENCRYPTION_MODE":
		s.Keys.Mode, err = fwknop.ParseMode(v)
		if err != nil && slices.Contains([]string{"ecb", "cfb", "ofb", "ctr", "pcbc", "asymmetric"}, strings.ToLower(v)) {
			p.errorf(file, ln, ErrUnsupported, "%v", err)
			return
		}
	case "FW_ACCESS_TIMEOUT":
		s.FWAccessTimeout, err = parseSeconds(v, 0)
	case "MAX_FW_TIMEOUT":
		s.MaxFWTimeout, err = parseSeconds(v, 0)
	case "REQUIRE_USERNAME":
		s.RequireUsername = v
	case "REQUIRE_SOURCE_ADDRESS", "REQUIRE_SOURCE":
		s.RequireSourceAddress = isYes(v)
	case "ACCESS_EXPIRE":
		loc := p.opts.Location
		if loc == nil {
			loc = time.UTC
		}
		s.Expire, err = parseExpire(v, loc)
	case "ACCESS_EXPIRE_EPOCH":
		var sec time.Duration
		if sec, err = parseEpoch(v); err == nil {
			s.Expire = time.Unix(int64(sec), 0)
		}
	case "CMD_CYCLE_OPEN":
		s.CmdCycleOpen = v
	case "CMD_CYCLE_CLOSE":
		s.CmdCycleClose = v
	case "CMD_CYCLE_TIMER":
		s.CmdCycleTimer, err = parseSeconds(v, 1)
	case "ENABLE_CMD_EXEC":
		s.EnableCmdExec = isYes(v)
	case "CMD_EXEC_USER":
		s.CmdExecUser = v
	case "CMD_EXEC_GROUP":
		s.CmdExecGroup = v
	case "ENABLE_CMD_SUDO_EXEC":
		if isYes(v) {
			p.errorf(file, ln, ErrUnsupported, "running commands through sudo is not supported")
		}
	case "CMD_SUDO_EXEC_USER", "CMD_SUDO_EXEC_GROUP":
		p.warn(file, ln, "ignored: sudo command execution is not supported")
	case "FORCE_NAT", "FORCE_SNAT":
		p.errorf(file, ln, ErrUnsupported, "server-imposed NAT is not supported")
	case "FORCE_MASQUERADE", "DISABLE_DNAT", "FORWARD_ALL":
		if isYes(v) {
			p.errorf(file, ln, ErrUnsupported, "NAT forwarding is not supported")
		}
	case "GPG_HOME_DIR", "GPG_EXE", "GPG_DECRYPT_ID", "GPG_DECRYPT_PW", "GPG_ALLOW_NO_PW",
		"GPG_REQUIRE_SIG", "GPG_DISABLE_SIG", "GPG_IGNORE_SIG_VERIFY_ERROR", "GPG_REMOTE_ID", "GPG_FINGERPRINT_ID":
		p.warn(file, ln, "ignored: GPG is not supported, this stanza accepts Rijndael packets only")
	default:
		p.errorf(file, ln, ErrUnknownKey, "fwknopd would ignore it; Sesame refuses unknown keys (check the spelling)")
		return
	}
	if err != nil {
		p.errorf(file, ln, ErrSyntax, "%v", err)
	}
}

func parseEpoch(v string) (time.Duration, error) {
	if !isDigits(v) || len(v) > 12 {
		return 0, fmt.Errorf("%q is not Unix seconds", v)
	}
	var n int64
	for i := 0; i < len(v); i++ {
		n = n*10 + int64(v[i]-'0')
	}
	return time.Duration(n), nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// finish applies fwknopd's defaults and whole-stanza checks
// (set_acc_defaults, acc_data_is_valid).
func (p *parser) finish(s *Stanza) {
	fail := func(format string, a ...any) {
		p.errs = append(p.errs, &Error{File: s.File, Line: s.Line, Key: "SOURCE", Err: fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, a...)...)})
	}
	w := func(format string, a ...any) {
		p.cfg.Warnings = append(p.cfg.Warnings, Warning{File: s.File, Line: s.Line, Key: "SOURCE", Msg: fmt.Sprintf(format, a...)})
	}
	if s.FWAccessTimeout <= 0 {
		s.FWAccessTimeout = DefaultFWAccessTimeout
	}
	if s.MaxFWTimeout <= 0 {
		s.MaxFWTimeout = DefaultMaxFWTimeout
	}
	if s.MaxFWTimeout < s.FWAccessTimeout {
		w("MAX_FW_TIMEOUT %v < FW_ACCESS_TIMEOUT %v: grants are capped at %v", s.MaxFWTimeout, s.FWAccessTimeout, s.MaxFWTimeout)
	}
	if len(s.Keys.HMACKey) > 0 && !s.hmacTypeSet {
		s.Keys.HMACHash = fwknop.SHA256
	}
	if len(s.Keys.Key) == 0 {
		fail("no KEY or KEY_BASE64 (GPG-only stanzas are not supported)")
		return
	}
	if s.Keys.Mode == fwknop.ModeLegacy && len(s.Keys.Key) > 16 {
		w("legacy mode uses only the first 16 bytes of the %d-byte key (as fwknopd does)", len(s.Keys.Key))
	}
	if err := s.Keys.Validate(); err != nil {
		fail("%v", err)
	}
	if s.CmdCycleOpen != "" || s.CmdCycleClose != "" {
		switch {
		case s.CmdCycleOpen == "":
			fail("CMD_CYCLE_CLOSE without CMD_CYCLE_OPEN")
		case s.CmdCycleClose == "":
			fail("CMD_CYCLE_OPEN without CMD_CYCLE_CLOSE (write NONE for no close command)")
		case s.CmdCycleTimer == 0 && !s.closeIsNone():
			fail("CMD_CYCLE_TIMER is required with a CMD_CYCLE_CLOSE command")
		case len(s.CmdCycleOpen) >= cmdCycleBufSize || len(s.CmdCycleClose) >= cmdCycleBufSize:
			fail("CMD_CYCLE_OPEN/CLOSE must be shorter than %d characters", cmdCycleBufSize)
		}
	} else if s.CmdCycleTimer != 0 {
		w("CMD_CYCLE_TIMER without CMD_CYCLE_OPEN is ignored")
	}
}

// closeIsNone reports fwknopd's strncmp(CMD_CYCLE_CLOSE, "NONE", 4) == 0.
func (s *Stanza) closeIsNone() bool { return strings.HasPrefix(s.CmdCycleClose, "NONE") }

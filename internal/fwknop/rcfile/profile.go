package rcfile

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/sesame-gw/sesame/internal/fwknop"
)

// DefaultServerPort is fwknop's default SPA destination port.
const DefaultServerPort = 62201

// Profile is the client configuration of one run: the variables of
// [default] overridden by those of the named stanza. Command-line options
// then override the fields they name (-D SPAServer, -p SPAServerPort,
// -a AllowIP, -s AllowSource, -A Access, -f FWTimeout, -m Digest,
// -M Keys.Mode, -U SpoofUser, --key-*, --hmac-digest-type, --use-hmac).
type Profile struct {
	SPAServer     string // SPA_SERVER: host name or address (-D)
	SPAServerPort uint16 // SPA_SERVER_PORT (-p), default 62201
	SPASourcePort uint16 // SPA_SOURCE_PORT (-S), 0 for any
	RandPort      bool   // RAND_PORT (-r)

	// AllowIP is ALLOW_IP as an address (-a); AllowSource is ALLOW_IP
	// "source" (-s, the message carries 0.0.0.0).
	AllowIP     netip.Addr
	AllowSource bool
	Access      string // ACCESS (-A): "tcp/22[,udp/53...]"
	FWTimeout   uint32 // FW_TIMEOUT (-f), 0 = let the server decide

	// Keys: KEY / KEY_BASE64, HMAC_KEY / HMAC_KEY_BASE64,
	// HMAC_DIGEST_TYPE, ENCRYPTION_MODE.
	Keys fwknop.Keys
	// UseHMAC is USE_HMAC Y, also implied by any HMAC key variable.
	UseHMAC bool
	// KeyFile and HMACKeyFile are KEY_FILE and HMAC_KEY_FILE, for the
	// caller to read (-G, --get-hmac-key).
	KeyFile, HMACKeyFile string

	Digest     fwknop.Hash   // DIGEST_TYPE (-m); zero means SHA256
	SpoofUser  string        // SPOOF_USER (-U)
	TimeOffset time.Duration // TIME_OFFSET: added to the timestamp

	NATAccess   string // NAT_ACCESS (-N) "host,port"
	NATLocal    bool   // NAT_LOCAL (--nat-local)
	NATPort     uint16 // NAT_PORT (--nat-port)
	NATRandPort bool   // NAT_RAND_PORT (--nat-rand-port)

	ServerResolveIPv4 bool // SERVER_RESOLVE_IPV4
}

// Profile computes the profile for stanza name ("" or "default" for
// [default] alone), as fwknop processes it: every [default] stanza, then
// every stanza of that name, later values winning. Only those stanzas are
// checked, like fwknop. A variable fwknop does not know is an error (the
// client exits); one Sesame's client cannot honour and that changes the
// packet sent (GPG, raw/TCP/HTTP transports, source spoofing, external IP
// resolution) is an error wrapping ErrUnsupported; cosmetic ones are
// ignored with a warning.
func (f *File) Profile(name string) (*Profile, []Warning, error) {
	p := &Profile{SPAServerPort: DefaultServerPort}
	a := applier{f: f, p: p}
	if name != "" && !strings.EqualFold(name, "default") && !f.Has(name) {
		return nil, nil, &Error{File: f.Name, Err: fmt.Errorf("%w: [%s]", ErrNoStanza, name)}
	}
	names := []string{"default"}
	if name != "" && !strings.EqualFold(name, "default") {
		names = append(names, name)
	}
	for _, want := range names {
		for _, s := range f.Stanzas {
			if strings.EqualFold(s.Name, want) {
				for _, ln := range s.Lines {
					a.apply(ln)
				}
			}
		}
	}
	if len(a.errs) > 0 {
		return nil, a.warns, errors.Join(a.errs...)
	}
	if len(p.Keys.HMACKey) > 0 || p.HMACKeyFile != "" {
		p.UseHMAC = true
	}
	return p, a.warns, nil
}

type applier struct {
	f     *File
	p     *Profile
	errs  []error
	warns []Warning
}

func (a *applier) fail(ln Line, v string, sentinel error, format string, args ...any) {
	a.errs = append(a.errs, &Error{File: a.f.Name, Line: ln.Num, Var: v, Err: fmt.Errorf("%w: "+format, append([]any{sentinel}, args...)...)})
}

func (a *applier) warn(ln Line, v, msg string) {
	a.warns = append(a.warns, Warning{File: a.f.Name, Line: ln.Num, Var: v, Msg: msg})
}

// isYes is fwknop's is_yes_str: exactly "Y" in any case.
func isYes(v string) bool { return strings.EqualFold(v, "Y") }

func (a *applier) apply(ln Line) {
	if len(ln.Text) >= maxLineLen {
		a.fail(ln, "", ErrSyntax, "line longer than %d characters", maxLineLen-1)
		return
	}
	name, v, ok := splitParam(ln.Text)
	if !ok {
		a.fail(ln, name, ErrSyntax, "expected \"VARIABLE value\"")
		return
	}
	p := a.p
	var err error
	port := func() uint16 {
		n, e := strconv.Atoi(v)
		if e != nil || n < 1 || n > 65535 {
			err = fmt.Errorf("%q is not a port 1..65535", v)
		}
		return uint16(n)
	}
	switch name {
	case "SPA_SERVER":
		p.SPAServer = v
	case "SPA_SERVER_PORT":
		p.SPAServerPort = port()
	case "SPA_SOURCE_PORT":
		p.SPASourcePort = port()
	case "SPA_SERVER_PROTO":
		if !strings.EqualFold(v, "udp") {
			a.fail(ln, name, ErrUnsupported, "only udp is supported, not %q", v)
			return
		}
	case "RAND_PORT":
		p.RandPort = p.RandPort || isYes(v)
	case "ALLOW_IP":
		switch {
		case strings.EqualFold(v, "source"):
			p.AllowSource, p.AllowIP = true, netip.Addr{}
		case strings.EqualFold(v, "resolve"):
			a.fail(ln, name, ErrUnsupported, "external IP resolution (-R) is not supported; give the address or 'source'")
			return
		default:
			var ip netip.Addr
			if ip, err = fwknop.ParseAllowIP(v); err == nil {
				p.AllowIP, p.AllowSource = ip, false
			}
		}
	case "ACCESS":
		p.Access = v
	case "FW_TIMEOUT":
		n, e := strconv.Atoi(v)
		if e != nil || n < 0 || n > 65536 {
			err = fmt.Errorf("%q is not 0..65536 seconds", v)
		}
		p.FWTimeout = uint32(n)
	case "KEY":
		p.Keys.Key = []byte(v)
	case "KEY_BASE64":
		p.Keys.Key, err = fwknop.DecodeKeyBase64(v)
	case "HMAC_KEY":
		p.Keys.HMACKey, p.UseHMAC = []byte(v), true
	case "HMAC_KEY_BASE64":
		p.Keys.HMACKey, err = fwknop.DecodeKeyBase64(v)
		p.UseHMAC = true
	case "HMAC_DIGEST_TYPE":
		p.Keys.HMACHash, err = fwknop.ParseHash(v)
	case "ENCRYPTION_MODE":
		p.Keys.Mode, err = fwknop.ParseMode(v)
	case "USE_HMAC":
		p.UseHMAC = p.UseHMAC || isYes(v)
	case "KEY_FILE":
		p.KeyFile = v
	case "HMAC_KEY_FILE":
		p.HMACKeyFile = v
	case "DIGEST_TYPE":
		p.Digest, err = fwknop.ParseHash(v)
	case "SPOOF_USER":
		if err = fwknop.ValidateUser(v); err == nil {
			p.SpoofUser = v
		}
	case "TIME_OFFSET":
		p.TimeOffset, err = ParseTimeOffset(v)
	case "NAT_ACCESS":
		p.NATAccess = v
	case "NAT_LOCAL":
		p.NATLocal = p.NATLocal || isYes(v)
	case "NAT_PORT":
		p.NATPort = port()
	case "NAT_RAND_PORT":
		p.NATRandPort = p.NATRandPort || isYes(v)
	case "SERVER_RESOLVE_IPV4":
		p.ServerResolveIPv4 = p.ServerResolveIPv4 || isYes(v)
	case "USE_GPG", "USE_GPG_AGENT":
		if isYes(v) {
			a.fail(ln, name, ErrUnsupported, "GPG encryption is not supported")
			return
		}
	case "GPG_RECIPIENT", "GPG_SIGNER", "GPG_HOMEDIR", "GPG_EXE", "GPG_SIGNING_PW", "GPG_SIGNING_PW_BASE64", "GPG_NO_SIGNING_PW":
		a.warn(ln, name, "ignored: GPG is not supported")
	case "SPOOF_SOURCE_IP":
		a.fail(ln, name, ErrUnsupported, "spoofing the source address is not supported")
		return
	case "RESOLVE_IP_HTTP", "RESOLVE_IP_HTTPS":
		if isYes(v) {
			a.fail(ln, name, ErrUnsupported, "external IP resolution (-R) is not supported")
			return
		}
	case "RESOLVE_HTTP_ONLY", "RESOLVE_URL", "WGET_CMD", "HTTP_USER_AGENT", "USE_WGET_USER_AGENT":
		a.warn(ln, name, "ignored: only used by IP resolution and HTTP transport, which Sesame does not support")
	case "VERBOSE", "NO_SAVE_ARGS":
		// Cosmetic; Sesame never saves arguments.
	default:
		a.fail(ln, name, ErrUnknownVar, "not an fwknop client variable")
		return
	}
	if err != nil {
		a.fail(ln, name, ErrSyntax, "%v", err)
	}
}

// ParseTimeOffset reads TIME_OFFSET / --time-offset-plus values as fwknop
// does (parse_time_offset): a leading '-' makes the offset negative; the
// digits before the first unit letter m, h or d (any case) give the
// number (seconds without a unit; other letters are skipped, so "60sec"
// is 60 s and "2days" 2 d); at most 65536 units.
func ParseTimeOffset(s string) (time.Duration, error) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	digits, unit := "", time.Second
loop:
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits += string(c)
		case c == 'm' || c == 'M':
			unit = time.Minute
			break loop
		case c == 'h' || c == 'H':
			unit = time.Hour
			break loop
		case c == 'd' || c == 'D':
			unit = 24 * time.Hour
			break loop
		}
	}
	if digits == "" || len(digits) > 5 {
		return 0, fmt.Errorf("time offset %q is not N[m|h|d] with N <= 65536", s)
	}
	n, _ := strconv.Atoi(digits)
	if n > 65536 {
		return 0, fmt.Errorf("time offset %q is not N[m|h|d] with N <= 65536", s)
	}
	d := time.Duration(n) * unit
	if neg {
		d = -d
	}
	return d, nil
}

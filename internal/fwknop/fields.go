package fwknop

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/sesame-gw/sesame/internal/service"
)

// Field limits from lib/fko_limits.h and common/fko_util.h.
const (
	maxUserB64Len    = 64  // MAX_SPA_USERNAME_SIZE
	maxFieldB64Len   = 256 // MAX_SPA_MESSAGE_SIZE (message, nat_access, server_auth, timeout)
	maxTimestampLen  = 12  // MAX_SPA_TIMESTAMP_SIZE
	maxVersionLen    = 8   // MAX_SPA_VERSION_SIZE
	maxMessageLen    = 255 // a decoded message must be shorter than MAX_SPA_MESSAGE_SIZE
	maxNATHostLen    = 70  // MAX_HOSTNAME_LEN
	maxClientTimeout = 65536
	randLen          = 16   // FKO_RAND_VAL_SIZE
	minEncodedLen    = 36   // MIN_SPA_ENCODED_MSG_SIZE
	maxEncodedLen    = 1500 // MAX_SPA_ENCODED_MSG_SIZE (exclusive)
)

// ValidateUser applies libfko's validate_username: at least one byte;
// every byte alphanumeric, or printable ASCII other than
// " / \ [ ] : ; | = , + * ? < > (so spaces and '-' are allowed).
func ValidateUser(u string) error {
	if u == "" {
		return fmt.Errorf("empty user name")
	}
	for i := 0; i < len(u); i++ {
		c := u[i]
		if isAlnum(c) {
			continue
		}
		if c < 0x20 || c > 0x7e || strings.IndexByte(`"/\[]:;|=,+*?<>`, c) >= 0 {
			return fmt.Errorf("user name has invalid character %q at offset %d", c, i)
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
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

// ParseAllowIP validates the allow IP of a message (libfko have_allow_ip
// + is_valid_ipv4_addr): a dotted-quad IPv4 address, 7..15 characters.
// Unlike libfko's inet_aton, a component with a leading zero ("010") is
// rejected instead of being read as octal: the address a client meant
// would be ambiguous.
func ParseAllowIP(s string) (netip.Addr, error) {
	if len(s) < 7 || len(s) > 15 || strings.Count(s, ".") != 3 || strings.Trim(s, "0123456789.") != "" {
		return netip.Addr{}, fmt.Errorf("allow IP %q is not a dotted-quad IPv4 address", s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}, fmt.Errorf("allow IP %q is not a dotted-quad IPv4 address", s)
	}
	return a, nil
}

// parsePort is libfko's have_port: 1..5 digits, value 1..65535.
func parsePort(s string) (uint16, error) {
	if len(s) < 1 || len(s) > 5 || !isDigits(s) {
		return 0, fmt.Errorf("port %q is not 1 to 5 digits", s)
	}
	n, _ := strconv.Atoi(s)
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q is not in 1..65535", s)
	}
	return uint16(n), nil
}

// ParseAccess parses and validates an access message,
// "allow_ip,proto/port[,proto/port...]", as libfko's validate_access_msg
// does: only "tcp/" and "udp/" pass (icmp and none fail libfko's
// 4-character proto rule), ports 1..65535, no empty entries.
func ParseAccess(msg string) (netip.Addr, []service.Service, error) {
	if len(msg) > maxMessageLen {
		return netip.Addr{}, nil, fmt.Errorf("access message longer than %d characters", maxMessageLen)
	}
	ipText, rest, ok := strings.Cut(msg, ",")
	if !ok || rest == "" {
		return netip.Addr{}, nil, fmt.Errorf("access message %q lacks \",proto/port\"", msg)
	}
	ip, err := ParseAllowIP(ipText)
	if err != nil {
		return netip.Addr{}, nil, err
	}
	var svcs []service.Service
	for spec := range strings.SplitSeq(rest, ",") {
		var proto service.Proto
		switch {
		case strings.HasPrefix(spec, "tcp/"):
			proto = service.TCP
		case strings.HasPrefix(spec, "udp/"):
			proto = service.UDP
		default:
			return netip.Addr{}, nil, fmt.Errorf("access entry %q is not tcp/PORT or udp/PORT", spec)
		}
		port, err := parsePort(spec[4:])
		if err != nil {
			return netip.Addr{}, nil, fmt.Errorf("access entry %q: %v", spec, err)
		}
		svcs = append(svcs, service.Service{Proto: proto, Port: port})
	}
	return ip, svcs, nil
}

// ParseCommand parses a command message, "allow_ip,command" (libfko
// validate_cmd_msg): a valid allow IP, a comma, at least one character.
func ParseCommand(msg string) (netip.Addr, string, error) {
	ipText, cmd, ok := strings.Cut(msg, ",")
	if !ok || cmd == "" {
		return netip.Addr{}, "", fmt.Errorf("command message lacks \",command\"")
	}
	ip, err := ParseAllowIP(ipText)
	if err != nil {
		return netip.Addr{}, "", err
	}
	return ip, cmd, nil
}

// ParseNATAccess parses the nat_access field "host,port" with libfko's
// validate_nat_access_msg: exactly one comma, a host of at most 70
// characters without space / ? " ' \, a port 1..65535. The host is not
// otherwise checked (fwknopd does that only when NAT is enabled; see
// ValidNATHost). Sesame also requires a non-empty host.
func ParseNATAccess(s string) (string, uint16, error) {
	if len(s) > maxMessageLen {
		return "", 0, fmt.Errorf("nat_access longer than %d characters", maxMessageLen)
	}
	if strings.Count(s, ",") != 1 {
		return "", 0, fmt.Errorf("nat_access %q must be host,port", s)
	}
	host, portText, _ := strings.Cut(s, ",")
	if host == "" || len(host) > maxNATHostLen || strings.ContainsAny(host, " /?\"'\\") {
		return "", 0, fmt.Errorf("nat_access host %q is invalid", host)
	}
	port, err := parsePort(portText)
	if err != nil {
		return "", 0, fmt.Errorf("nat_access: %v", err)
	}
	return host, port, nil
}

// ValidNATHost applies fwknopd's server-side check on a NAT host when
// ENABLE_NAT_DNS is on: a valid IPv4 address or a syntactically valid
// host name (labels of letters, digits and inner '-', at most 63 chars,
// 254 in all).
func ValidNATHost(host string) bool {
	if _, err := ParseAllowIP(host); err == nil {
		return true
	}
	if host == "" || len(host) > 254 {
		return false
	}
	for label := range strings.SplitSeq(strings.TrimSuffix(host, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			if !isAlnum(label[i]) && label[i] != '-' {
				return false
			}
		}
	}
	return true
}

// cursor walks the ':'-separated encoded data the way libfko's field
// parsers do with strcspn.
type cursor struct{ s string }

// field returns the text up to the next ':' and moves past it; at the
// end it returns the rest and leaves the cursor empty.
func (c *cursor) field() string {
	i := strings.IndexByte(c.s, ':')
	if i < 0 {
		f := c.s
		c.s = ""
		return f
	}
	f := c.s[:i]
	c.s = c.s[i+1:]
	return f
}

// parseEncoded fills m from the encoded data (PLAINTEXT without the
// ":digest"), following lib/fko_decode.c field by field. Where libfko
// relies on strtol leniency (leading blanks, signs, trailing garbage in
// numbers) Sesame requires plain digits; no fwknop client sends anything
// else.
func parseEncoded(enc string, m *Message) error {
	c := cursor{enc}

	// 1. Random value: Decode has already checked 16 digits and ':'.
	m.Rand = c.field()
	if len(m.Rand) != randLen || !isDigits(m.Rand) {
		return fmt.Errorf("random value %q is not 16 digits", m.Rand)
	}

	// 2. User name.
	f := c.field()
	if len(f) < 1 || len(f) > maxUserB64Len {
		return fmt.Errorf("user field is %d characters (want 1..%d)", len(f), maxUserB64Len)
	}
	u, err := lenientB64(f)
	if err != nil {
		return fmt.Errorf("user field: %v", err)
	}
	if err := ValidateUser(string(u)); err != nil {
		return err
	}
	m.User = string(u)

	// 3. Timestamp.
	f = c.field()
	if len(f) < 1 || len(f) > maxTimestampLen || !isDigits(f) {
		return fmt.Errorf("timestamp %q is not 1..%d digits", f, maxTimestampLen)
	}
	ts, err := strconv.ParseUint(f, 10, 32)
	if err != nil {
		return fmt.Errorf("timestamp %q out of range", f)
	}
	m.Timestamp = int64(ts)

	// 4. Version: 1..8 characters, otherwise free.
	f = c.field()
	if len(f) < 1 || len(f) > maxVersionLen {
		return fmt.Errorf("version field is %d characters (want 1..%d)", len(f), maxVersionLen)
	}
	m.Version = f

	// 5. Message type, and the number of fields that may follow it.
	f = c.field()
	if len(f) != 1 || f[0] < '0' || f[0] > '6' {
		return fmt.Errorf("message type %q is not 0..6", f)
	}
	m.Type = MsgType(f[0] - '0')
	maxAfter := 1 // colons after the type field: msg + optional server_auth
	switch {
	case m.Type.HasNAT() && m.Type.HasTimeout():
		maxAfter = 3
	case m.Type.HasNAT() || m.Type.HasTimeout():
		maxAfter = 2
	}
	if strings.Count(c.s, ":") > maxAfter {
		return fmt.Errorf("too many fields for message type %d", m.Type)
	}

	// 6. Message.
	f = c.field()
	if len(f) < 1 || len(f) > maxFieldB64Len {
		return fmt.Errorf("message field is %d characters (want 1..%d)", len(f), maxFieldB64Len)
	}
	msg, err := lenientB64(f)
	if err != nil {
		return fmt.Errorf("message field: %v", err)
	}
	m.Access = string(msg)
	if err := parseMessageText(m); err != nil {
		return err
	}

	// 7. NAT access.
	if m.Type.HasNAT() {
		f = c.field()
		if len(f) < 1 || len(f) > maxFieldB64Len {
			return fmt.Errorf("nat_access field is %d characters (want 1..%d)", len(f), maxFieldB64Len)
		}
		nat, err := lenientB64(f)
		if err != nil {
			return fmt.Errorf("nat_access field: %v", err)
		}
		m.NATAccess = string(nat)
		if m.NATHost, m.NATPort, err = ParseNATAccess(m.NATAccess); err != nil {
			return err
		}
	}

	// 8. Optional server_auth: everything left for types without a
	// timeout; the part before a ':' for types with one.
	if len(c.s) > maxFieldB64Len {
		return fmt.Errorf("trailing fields longer than %d characters", maxFieldB64Len)
	}
	if c.s != "" && (!m.Type.HasTimeout() || strings.IndexByte(c.s, ':') >= 0) {
		sa, err := lenientB64(c.field())
		if err != nil {
			return fmt.Errorf("server_auth field: %v", err)
		}
		if err := checkText(sa); err != nil {
			return fmt.Errorf("server_auth field: %v", err)
		}
		m.ServerAuth = string(sa)
	}

	// 9. Client timeout.
	if m.Type.HasTimeout() {
		f = c.field()
		if !isDigits(f) {
			return fmt.Errorf("client timeout %q is not a number", f)
		}
		t, err := strconv.ParseUint(f, 10, 32)
		if err != nil || t > maxClientTimeout {
			return fmt.Errorf("client timeout %q is not in 0..%d", f, maxClientTimeout)
		}
		m.ClientTimeout = uint32(t)
	}
	return nil
}

// checkText rejects NUL bytes: libfko handles decoded fields as C strings
// and would silently cut them there.
func checkText(b []byte) error {
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		return fmt.Errorf("NUL byte at offset %d", i)
	}
	return nil
}

// parseMessageText validates m.Access for m.Type and fills AllowIP and
// Services or Command.
func parseMessageText(m *Message) error {
	if err := checkText([]byte(m.Access)); err != nil {
		return fmt.Errorf("message: %v", err)
	}
	var err error
	if m.Type == CommandMsg {
		m.AllowIP, m.Command, err = ParseCommand(m.Access)
		return err
	}
	m.AllowIP, m.Services, err = ParseAccess(m.Access)
	return err
}

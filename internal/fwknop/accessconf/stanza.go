package accessconf

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/sesame-gw/sesame/internal/fwknop"
	"github.com/sesame-gw/sesame/internal/service"
)

// fwknopd defaults (server/fwknopd_common.h).
const (
	DefaultFWAccessTimeout = 30 * time.Second  // DEF_FW_ACCESS_TIMEOUT
	DefaultMaxFWTimeout    = 300 * time.Second // DEF_MAX_FW_TIMEOUT
	maxTimeoutSeconds      = 2 << 22           // RCHK_MAX_FW_TIMEOUT, RCHK_MAX_CMD_CYCLE_TIMER
	cmdCycleBufSize        = 256               // CMD_CYCLE_BUFSIZE
)

// Stanza is one access.conf stanza: a SOURCE line and the keys after it.
type Stanza struct {
	// File and Line locate the SOURCE line; Index is the 0-based
	// position in file order (fwknopd logs "stanza #Index+1").
	File  string
	Line  int
	Index int

	// Source matches the IPv4 source of the SPA packet (SOURCE; ANY is
	// 0.0.0.0/0). Destination, when non-empty, matches its destination
	// (DESTINATION).
	Source      AddrList
	Destination AddrList

	// OpenPorts, when non-empty, must contain every requested service
	// (OPEN_PORTS). RestrictPorts must contain none (RESTRICT_PORTS).
	OpenPorts     []service.Service
	RestrictPorts []service.Service

	// Keys are KEY/KEY_BASE64, HMAC_KEY/HMAC_KEY_BASE64,
	// HMAC_DIGEST_TYPE and ENCRYPTION_MODE.
	Keys fwknop.Keys

	// FWAccessTimeout is the grant time without a client timeout
	// (FW_ACCESS_TIMEOUT, default 30 s). MaxFWTimeout caps every grant
	// (MAX_FW_TIMEOUT, default 300 s).
	FWAccessTimeout time.Duration
	MaxFWTimeout    time.Duration

	// RequireUsername, when set, must equal the SPA user name.
	RequireUsername string
	// RequireSourceAddress refuses allow IP 0.0.0.0
	// (REQUIRE_SOURCE_ADDRESS, synonym REQUIRE_SOURCE).
	RequireSourceAddress bool
	// Expire, when non-zero, ends the stanza (ACCESS_EXPIRE at midnight
	// local time, or ACCESS_EXPIRE_EPOCH).
	Expire time.Time

	// CmdCycleOpen and CmdCycleClose are the CMD_CYCLE_OPEN/CLOSE
	// templates ("" when unset; CmdCycleClose "NONE" means no close
	// command); CmdCycleTimer is CMD_CYCLE_TIMER. See CmdCycle.
	CmdCycleOpen  string
	CmdCycleClose string
	CmdCycleTimer time.Duration

	// EnableCmdExec is ENABLE_CMD_EXEC. Command messages are refused
	// unless it is set and the caller allows commands (AuthOptions).
	// CmdExecUser and CmdExecGroup are CMD_EXEC_USER/GROUP, unresolved.
	EnableCmdExec bool
	CmdExecUser   string
	CmdExecGroup  string

	hmacTypeSet bool
	keyTrailing bool // KEY/HMAC_KEY had trailing blanks (2.6.10 kept them)
}

// Name describes the stanza for logs: "stanza #2 (access.conf:14)".
func (s *Stanza) Name() string {
	return fmt.Sprintf("stanza #%d (%s:%d)", s.Index+1, s.File, s.Line)
}

// Expired reports whether the stanza has expired at now (fwknopd:
// now > expiry).
func (s *Stanza) Expired(now time.Time) bool {
	return !s.Expire.IsZero() && now.After(s.Expire)
}

// AddrList is a SOURCE or DESTINATION list of IPv4 prefixes.
type AddrList []netip.Prefix

// Contains reports whether a (IPv4) falls in any prefix of l.
func (l AddrList) Contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range l {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// String formats the list as access.conf would.
func (l AddrList) String() string {
	parts := make([]string, len(l))
	for i, p := range l {
		if p.Bits() == 0 {
			parts[i] = "ANY"
		} else if p.IsSingleIP() {
			parts[i] = p.Addr().String()
		} else {
			parts[i] = p.String()
		}
	}
	return strings.Join(parts, ", ")
}

// ParseAddrList reads a SOURCE/DESTINATION value (server/access.c
// expand_acc_int_list): a comma-separated list of ANY (any case), an
// IPv4 address, ADDR/BITS with BITS 1..32, or ADDR/DOTTED.MASK. Blanks
// around entries are ignored. Sesame refuses what inet_aton would read
// in surprising ways (octal "010.0.0.1", short forms "10.1") and
// non-contiguous masks.
func ParseAddrList(v string) (AddrList, error) {
	var l AddrList
	for e := range strings.SplitSeq(v, ",") {
		e = strings.TrimSpace(e)
		if strings.EqualFold(e, "ANY") {
			l = append(l, netip.PrefixFrom(netip.IPv4Unspecified(), 0))
			continue
		}
		ipText, mask, hasMask := strings.Cut(e, "/")
		ip, err := netip.ParseAddr(ipText)
		if err != nil || !ip.Is4() {
			return nil, fmt.Errorf("%q is not ANY, an IPv4 address or an IPv4 network", e)
		}
		bits := 32
		if hasMask {
			if strings.Contains(mask, ".") {
				m, err := netip.ParseAddr(mask)
				if err != nil || !m.Is4() {
					return nil, fmt.Errorf("%q: invalid mask", e)
				}
				v := uint32(m.As4()[0])<<24 | uint32(m.As4()[1])<<16 | uint32(m.As4()[2])<<8 | uint32(m.As4()[3])
				bits = 0
				for v&(1<<31) != 0 {
					bits, v = bits+1, v<<1
				}
				if v != 0 {
					return nil, fmt.Errorf("%q: mask is not contiguous", e)
				}
			} else {
				n, err := strconv.Atoi(mask)
				if err != nil || n < 1 || n > 32 {
					return nil, fmt.Errorf("%q: prefix length must be 1..32 (write ANY for everything)", e)
				}
				bits = n
			}
		}
		l = append(l, netip.PrefixFrom(ip, bits).Masked())
	}
	return l, nil
}

// ParsePortList reads an OPEN_PORTS/RESTRICT_PORTS value
// (expand_acc_port_list): comma-separated "proto/port" with proto tcp or
// udp in any case and port 1..65535.
func ParsePortList(v string) ([]service.Service, error) {
	var out []service.Service
	for e := range strings.SplitSeq(v, ",") {
		e = strings.TrimSpace(e)
		protoText, portText, ok := strings.Cut(e, "/")
		if !ok {
			return nil, fmt.Errorf("%q is not proto/port", e)
		}
		proto, err := service.ParseProto(protoText)
		if err != nil {
			return nil, fmt.Errorf("%q: %v", e, err)
		}
		port, err := strconv.Atoi(strings.TrimSpace(portText))
		if err != nil || port < 1 || port > 65535 {
			return nil, fmt.Errorf("%q: port must be 1..65535", e)
		}
		out = append(out, service.Service{Proto: proto, Port: uint16(port)})
	}
	return out, nil
}

// parseSeconds reads a non-negative decimal number of seconds up to
// fwknop's 2<<22 limit.
func parseSeconds(v string, min int) (time.Duration, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > maxTimeoutSeconds {
		return 0, fmt.Errorf("%q is not a number of seconds in %d..%d", v, min, maxTimeoutSeconds)
	}
	return time.Duration(n) * time.Second, nil
}

// parseExpire reads ACCESS_EXPIRE "MM/DD/YYYY" as fwknopd does
// (sscanf "%2d/%2d/%4d" then mktime): midnight at the start of that day
// in loc; a year below 100 means 2000+year; out-of-range days and
// months roll over like mktime; month 0 is January.
func parseExpire(v string, loc *time.Location) (time.Time, error) {
	parts := strings.SplitN(v, "/", 3)
	if len(parts) != 3 {
		return time.Time{}, fmt.Errorf("%q is not MM/DD/YYYY", v)
	}
	num := func(s string, max int) (int, bool) {
		n := 0
		for i := 0; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				if i == 0 {
					return 0, false
				}
				return n, true // sscanf stops at the first non-digit
			}
			if i == max {
				return n, true
			}
			n = n*10 + int(s[i]-'0')
		}
		return n, s != ""
	}
	mon, ok1 := num(parts[0], 2)
	day, ok2 := num(parts[1], 2)
	year, ok3 := num(parts[2], 4)
	if !ok1 || !ok2 || !ok3 || len(parts[0]) > 2 || len(parts[1]) > 2 {
		return time.Time{}, fmt.Errorf("%q is not MM/DD/YYYY", v)
	}
	switch {
	case year > 1900:
	case year < 100:
		year += 2000
	default:
		year += 1900
	}
	if mon == 0 {
		mon = 1
	}
	return time.Date(year, time.Month(mon), day, 0, 0, 0, 0, loc), nil
}

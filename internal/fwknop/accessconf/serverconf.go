package accessconf

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Debian's compiled-in directories (fwknop-server 2.6.10-16).
const (
	DefaultConfDir = "/etc/fwknop"
	DefaultRunDir  = "/run/fwknop"
	DefaultPort    = 62201
)

// ServerConfig holds the fwknopd.conf settings Sesame uses. The zero
// value is not meaningful; use ParseServerConfig (an empty file gives
// fwknopd's defaults).
type ServerConfig struct {
	// PacketAging is ENABLE_SPA_PACKET_AGING (default Y) and
	// MaxPacketAge MAX_SPA_PACKET_AGE (default 120 s, 1..100000).
	PacketAging  bool
	MaxPacketAge time.Duration
	// DigestPersistence is ENABLE_DIGEST_PERSISTENCE (default Y);
	// DigestFile is DIGEST_FILE (default $FWKNOP_RUN_DIR/digest.cache).
	DigestPersistence bool
	DigestFile        string
	// RunDir and ConfDir are FWKNOP_RUN_DIR and FWKNOP_CONF_DIR.
	RunDir, ConfDir string
	// AccessFile and AccessFolder are ACCESS_FILE (default
	// $FWKNOP_CONF_DIR/access.conf) and ACCESS_FOLDER (default none).
	AccessFile, AccessFolder string
	// PCAPFilter is PCAP_FILTER as written; PCAPPort the UDP port in it.
	PCAPFilter string
	PCAPPort   uint16
	// UDPServer is ENABLE_UDP_SERVER (default N) and UDPServerPort
	// UDPSERV_PORT (default 62201).
	UDPServer     bool
	UDPServerPort uint16
	// Warnings lists settings ignored because Sesame does them its own
	// way (capture tuning, logging, iptables chain layout, ...).
	Warnings []Warning
}

// Port is the UDP port fwknopd would receive SPA packets on:
// UDPSERV_PORT in UDP server mode, else the port of PCAP_FILTER.
func (c *ServerConfig) Port() uint16 {
	if c.UDPServer {
		return c.UDPServerPort
	}
	return c.PCAPPort
}

// PacketAge returns the age limit to pass to Authorize: MaxPacketAge,
// or 0 when aging is disabled.
func (c *ServerConfig) PacketAge() time.Duration {
	if !c.PacketAging {
		return 0
	}
	return c.MaxPacketAge
}

// serverKey classifies the fwknopd.conf keys of fwknopd 2.6.10
// (server/cmd_opts.h config_map, iptables build).
type serverKey uint8

const (
	skUsed     serverKey = iota + 1 // parsed into ServerConfig
	skIgnore                        // no effect on what is granted: warning
	skDefaultN                      // must be N (default); Y is unsupported
	skOnlyWith                      // meaningful only with an unsupported Y option: warning
	skRefuse                        // unsupported whatever the value
)

var serverKeys = map[string]serverKey{
	"ENABLE_SPA_PACKET_AGING": skUsed, "MAX_SPA_PACKET_AGE": skUsed,
	"ENABLE_DIGEST_PERSISTENCE": skUsed, "DIGEST_FILE": skUsed,
	"FWKNOP_RUN_DIR": skUsed, "FWKNOP_CONF_DIR": skUsed, "ACCESS_FILE": skUsed, "ACCESS_FOLDER": skUsed,
	"PCAP_FILTER": skUsed, "ENABLE_UDP_SERVER": skUsed, "UDPSERV_PORT": skUsed,

	"PCAP_INTF": skIgnore, "ENABLE_PCAP_PROMISC": skIgnore, "PCAP_DISPATCH_COUNT": skIgnore,
	"PCAP_LOOP_SLEEP": skIgnore, "ENABLE_PCAP_ANY_DIRECTION": skIgnore, "EXIT_AT_INTF_DOWN": skIgnore,
	"MAX_SNIFF_BYTES": skIgnore, "RULES_CHECK_THRESHOLD": skIgnore, "CMD_EXEC_TIMEOUT": skIgnore,
	"UDPSERV_SELECT_TIMEOUT": skIgnore, "LOCALE": skIgnore, "SYSLOG_IDENTITY": skIgnore,
	"SYSLOG_FACILITY": skIgnore, "VERBOSE": skIgnore, "FWKNOP_PID_FILE": skIgnore,
	"GPG_HOME_DIR": skIgnore, "GPG_EXE": skIgnore, "SUDO_EXE": skIgnore, "FIREWALL_EXE": skIgnore,
	"FLUSH_IPT_AT_INIT": skIgnore, "FLUSH_IPT_AT_EXIT": skIgnore, "IPT_INPUT_ACCESS": skIgnore,
	"ENABLE_IPT_COMMENT_CHECK": skIgnore, "ENABLE_RULE_PREPEND": skIgnore, "ENABLE_NAT_DNS": skIgnore,
	"ENABLE_TCP_SERVER": skIgnore, "TCPSERV_PORT": skIgnore, "CONFIG_FILE": skIgnore,
	"OVERRIDE_CONFIG": skIgnore, "FAULT_INJECTION_TAG": skIgnore,

	"ENABLE_SPA_OVER_HTTP": skDefaultN, "ENABLE_X_FORWARDED_FOR": skDefaultN,
	"ENABLE_IPT_FORWARDING": skDefaultN, "ENABLE_IPT_LOCAL_NAT": skDefaultN,
	"ENABLE_IPT_SNAT": skDefaultN, "ENABLE_IPT_OUTPUT": skDefaultN,
	"ENABLE_DESTINATION_RULE": skDefaultN, "ENABLE_NFQ_CAPTURE": skDefaultN,

	"ALLOW_ANY_USER_AGENT": skOnlyWith, "SNAT_TRANSLATE_IP": skOnlyWith, "IPT_OUTPUT_ACCESS": skOnlyWith,
	"IPT_FORWARD_ACCESS": skOnlyWith, "IPT_DNAT_ACCESS": skOnlyWith, "IPT_SNAT_ACCESS": skOnlyWith,
	"IPT_MASQUERADE_ACCESS": skOnlyWith, "NFQ_INTERFACE": skOnlyWith, "NFQ_PORT": skOnlyWith,
	"NFQ_TABLE": skOnlyWith, "NFQ_CHAIN": skOnlyWith, "NFQ_QUEUE_NUMBER": skOnlyWith, "NFQ_LOOP_SLEEP": skOnlyWith,

	"PCAP_FILE": skRefuse,

	// The same settings in fwknopd builds for firewalld, ipfw and pf.
	"ENABLE_FIREWD_FORWARDING": skDefaultN, "ENABLE_FIREWD_LOCAL_NAT": skDefaultN,
	"ENABLE_FIREWD_SNAT": skDefaultN, "ENABLE_FIREWD_OUTPUT": skDefaultN,
	"FLUSH_FIREWD_AT_INIT": skIgnore, "FLUSH_FIREWD_AT_EXIT": skIgnore, "FIREWD_INPUT_ACCESS": skIgnore,
	"ENABLE_FIREWD_COMMENT_CHECK": skIgnore, "FIREWD_OUTPUT_ACCESS": skOnlyWith, "FIREWD_FORWARD_ACCESS": skOnlyWith,
	"FIREWD_DNAT_ACCESS": skOnlyWith, "FIREWD_SNAT_ACCESS": skOnlyWith, "FIREWD_MASQUERADE_ACCESS": skOnlyWith,
	"FLUSH_IPFW_AT_INIT": skIgnore, "FLUSH_IPFW_AT_EXIT": skIgnore, "IPFW_START_RULE_NUM": skIgnore,
	"IPFW_MAX_RULES": skIgnore, "IPFW_ACTIVE_SET_NUM": skIgnore, "IPFW_EXPIRE_SET_NUM": skIgnore,
	"IPFW_EXPIRE_PURGE_INTERVAL": skIgnore, "IPFW_ADD_CHECK_STATE": skIgnore,
	"PF_ANCHOR_NAME": skIgnore, "PF_EXPIRE_INTERVAL": skIgnore,
}

// ParseServerConfig parses fwknopd.conf text (server/config_init.c
// parse_config_file): "NAME value;" lines, '#' comments, a value starting
// with $NAME expanded from an earlier setting or a default. Keys that
// would change what is granted and that Sesame lacks (SPA over HTTP,
// X-Forwarded-For, NAT forwarding, ENABLE_DESTINATION_RULE, NFQ capture,
// PCAP_FILE) are errors when enabled; tuning and logging keys are
// ignored with a warning; unknown keys are errors (fwknopd ignores them).
func ParseServerConfig(name string, src []byte) (*ServerConfig, error) {
	vals := map[string]string{
		"FWKNOP_RUN_DIR":  DefaultRunDir,
		"FWKNOP_CONF_DIR": DefaultConfDir,
	}
	c := &ServerConfig{}
	var errs []error
	fail := func(ln line, sentinel error, format string, a ...any) {
		errs = append(errs, &Error{File: name, Line: ln.num, Key: ln.key, Err: fmt.Errorf("%w: "+format, append([]any{sentinel}, a...)...)})
	}
	warn := func(ln line, msg string) {
		c.Warnings = append(c.Warnings, Warning{File: name, Line: ln.num, Key: ln.key, Msg: msg})
	}
	lines, lexErrs := lexLines(string(src))
	for _, e := range lexErrs {
		e.File = name
		errs = append(errs, e)
	}
	set := map[string]line{}
	for _, ln := range lines {
		kind, ok := serverKeys[ln.key]
		if !ok {
			fail(ln, ErrUnknownKey, "fwknopd would ignore it; Sesame refuses unknown keys (check the spelling)")
			continue
		}
		v := ln.val
		if strings.HasPrefix(v, "$") {
			ref := strings.TrimLeft(v[1:], "ABCDEFGHIJKLMNOPQRSTUVWXYZ_")
			varName := v[1 : len(v)-len(ref)]
			base, ok := vals[varName]
			if !ok {
				fail(ln, ErrSyntax, "$%s is not set before this line", varName)
				continue
			}
			v = base + ref
		}
		vals[ln.key] = v
		set[ln.key] = ln
		switch kind {
		case skIgnore:
			warn(ln, "ignored: Sesame captures, logs and manages its firewall its own way")
		case skDefaultN:
			if isYes(v) {
				fail(ln, ErrUnsupported, "this feature is not implemented")
			}
		case skOnlyWith:
			warn(ln, "ignored: only used by a feature Sesame does not implement")
		case skRefuse:
			fail(ln, ErrUnsupported, "this feature is not implemented")
		}
	}

	get := func(key, def string) string {
		if v, ok := vals[key]; ok {
			return v
		}
		return def
	}
	c.RunDir, c.ConfDir = vals["FWKNOP_RUN_DIR"], vals["FWKNOP_CONF_DIR"]
	c.PacketAging = isYes(get("ENABLE_SPA_PACKET_AGING", "Y"))
	c.DigestPersistence = isYes(get("ENABLE_DIGEST_PERSISTENCE", "Y"))
	c.UDPServer = isYes(get("ENABLE_UDP_SERVER", "N"))
	c.DigestFile = get("DIGEST_FILE", path.Join(c.RunDir, "digest.cache"))
	c.AccessFile = get("ACCESS_FILE", path.Join(c.ConfDir, "access.conf"))
	c.AccessFolder = get("ACCESS_FOLDER", "")
	c.PCAPFilter = get("PCAP_FILTER", "udp port 62201")

	age, err := strconv.Atoi(get("MAX_SPA_PACKET_AGE", "120"))
	if err != nil || age < 1 || age > 100000 {
		fail(set["MAX_SPA_PACKET_AGE"], ErrSyntax, "must be 1..100000 seconds")
	}
	c.MaxPacketAge = time.Duration(age) * time.Second
	port, err := strconv.Atoi(get("UDPSERV_PORT", "62201"))
	if err != nil || port < 1 || port > 65535 {
		fail(set["UDPSERV_PORT"], ErrSyntax, "must be a port 1..65535")
	}
	c.UDPServerPort = uint16(port)
	if p, err := PCAPFilterPort(c.PCAPFilter); err != nil {
		if c.UDPServer {
			warn(set["PCAP_FILTER"], "ignored in UDP server mode: "+err.Error())
		} else {
			fail(set["PCAP_FILTER"], ErrUnsupported, "%v", err)
		}
	} else {
		c.PCAPPort = p
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

var pcapPortRE = regexp.MustCompile(`^(?:udp\s+(?:and\s+)?)?(?:dst\s+)?port\s+(\d{1,5})$`)

// PCAPFilterPort extracts the port of the PCAP_FILTER forms Sesame can
// honour: "udp port N", "udp dst port N", "udp and dst port N",
// "port N", "dst port N" (any case, any spacing). Other BPF expressions
// (port ranges for --rand-port, TCP, hosts) are reported as errors.
func PCAPFilterPort(filter string) (uint16, error) {
	f := strings.Join(strings.Fields(strings.ToLower(filter)), " ")
	m := pcapPortRE.FindStringSubmatch(f)
	if m == nil {
		return 0, fmt.Errorf("PCAP_FILTER %q: Sesame understands only \"udp [dst] port N\"", filter)
	}
	p, _ := strconv.Atoi(m[1])
	if p < 1 || p > 65535 {
		return 0, fmt.Errorf("PCAP_FILTER %q: port out of range", filter)
	}
	return uint16(p), nil
}

package accessconf

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/sesame-gw/sesame/internal/fwknop"
	"github.com/sesame-gw/sesame/internal/service"
)

// Reasons a stanza refuses a packet, wrapped in Result.Err (besides the
// fwknop codec's ErrHMAC, ErrDecrypt, ErrDigest, ErrMessage, ErrStale and
// ErrFormat).
var (
	// ErrNoStanza: no stanza's SOURCE (and DESTINATION) matches the
	// packet ("No access data found for source IP").
	ErrNoStanza = errors.New("no stanza matches the packet's addresses")
	// ErrExpired: the stanza's ACCESS_EXPIRE(_EPOCH) has passed.
	ErrExpired = errors.New("stanza expired")
	// ErrSourceRequired: allow IP 0.0.0.0 with REQUIRE_SOURCE_ADDRESS.
	ErrSourceRequired = errors.New("allow IP 0.0.0.0 refused by REQUIRE_SOURCE_ADDRESS")
	// ErrUsername: the user name differs from REQUIRE_USERNAME.
	ErrUsername = errors.New("user name does not match REQUIRE_USERNAME")
	// ErrNAT: a NAT message type (2, 4, 5, 6); Sesame has no NAT
	// forwarding yet, like an fwknopd without ENABLE_IPT_FORWARDING.
	ErrNAT = errors.New("NAT access requested but not supported")
	// ErrCommand: a command message (type 0) without ENABLE_CMD_EXEC in
	// the stanza and AuthOptions.AllowCommands.
	ErrCommand = errors.New("command messages are not allowed")
	// ErrPorts: a requested service is in RESTRICT_PORTS or missing from
	// OPEN_PORTS.
	ErrPorts = errors.New("requested service not allowed by OPEN_PORTS/RESTRICT_PORTS")
)

// Packet is an SPA packet as captured: IPv4 header addresses (IPv4-mapped
// IPv6 ones are unmapped; real IPv6 sources match no stanza, fwknop being
// IPv4-only) and the UDP payload.
type Packet struct {
	Src, Dst netip.Addr
	Payload  []byte
}

// AuthOptions are the fwknopd.conf settings Authorize needs.
type AuthOptions struct {
	// Now is the current time (packet age, stanza expiry).
	Now time.Time
	// MaxPacketAge rejects packets whose timestamp is further than this
	// from Now (MAX_SPA_PACKET_AGE); zero disables the check
	// (ENABLE_SPA_PACKET_AGING N).
	MaxPacketAge time.Duration
	// AllowCommands lets a stanza with ENABLE_CMD_EXEC Y accept command
	// messages; the Grant then carries the command for the caller to run.
	AllowCommands bool
}

// Grant is an authorised request.
type Grant struct {
	Stanza  *Stanza
	Message *fwknop.Message
	// Addr is the address to open for: the message's allow IP, or the
	// packet source when the allow IP is 0.0.0.0.
	Addr netip.Addr
	// Services to open (empty for a command message).
	Services []service.Service
	// Timeout is how long the grant lasts: the client timeout if the
	// packet carries one, else FW_ACCESS_TIMEOUT, in both cases capped
	// by MAX_FW_TIMEOUT.
	Timeout time.Duration
	// Command is the command text of an allowed command message.
	Command string
	// CmdCycle is set when the stanza has CMD_CYCLE_OPEN: the caller
	// runs these commands instead of opening Services itself.
	CmdCycle *CmdCycle
}

// Result is the outcome of Authorize.
type Result struct {
	// Grant is nil when the packet is refused.
	Grant *Grant
	// Decrypted reports that some stanza authenticated and decrypted the
	// packet. fwknopd then stores its replay digest even if a later
	// check refuses it; the caller should do the same.
	Decrypted bool
	// Err explains a refusal: ErrNoStanza, or the errors.Join of one
	// error per stanza tried, each prefixed with Stanza.Name.
	Err error
}

// MatchesSource reports whether any stanza's SOURCE contains src, the
// check fwknopd makes before its replay lookup.
func MatchesSource(stanzas []*Stanza, src netip.Addr) bool {
	for _, s := range stanzas {
		if s.Source.Contains(src) {
			return true
		}
	}
	return false
}

// Authorize runs a packet through the stanzas in file order, as fwknopd's
// incoming_spa does, and returns the first full match. First the
// key-less format check (fwknop.CheckFormat), then per stanza:
// SOURCE/DESTINATION, expiry, HMAC and decryption with the stanza's keys
// (fwknop.Decode), packet age, REQUIRE_SOURCE_ADDRESS, REQUIRE_USERNAME,
// message type (NAT and commands), OPEN_PORTS/RESTRICT_PORTS, then the
// grant. A refusing stanza passes the packet on to the next one.
//
// Two deliberate differences from fwknopd 2.6.10: OPEN_PORTS and
// RESTRICT_PORTS also bind CMD_CYCLE stanzas (fwknopd runs
// CMD_CYCLE_OPEN before checking ports), and MAX_FW_TIMEOUT caps
// FW_ACCESS_TIMEOUT and the CMD_CYCLE close delay too (fwknopd caps only
// the client timeout of regular grants).
//
// Authorize does not consult the replay cache: the caller checks
// fwknop.ReplayDigest before and records it when Result.Decrypted.
func Authorize(stanzas []*Stanza, pkt Packet, opts AuthOptions) Result {
	var res Result
	pkt.Src, pkt.Dst = pkt.Src.Unmap(), pkt.Dst.Unmap()
	if err := fwknop.CheckFormat(pkt.Payload); err != nil {
		res.Err = err
		return res
	}
	var errs []error
	tried := false
	for _, s := range stanzas {
		if !s.Source.Contains(pkt.Src) || len(s.Destination) > 0 && !s.Destination.Contains(pkt.Dst) {
			continue
		}
		tried = true
		if s.Expired(opts.Now) {
			errs = append(errs, fmt.Errorf("%s: %w", s.Name(), ErrExpired))
			continue
		}
		m, err := fwknop.Decode(pkt.Payload, s.Keys, fwknop.DecodeOptions{})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Name(), err))
			continue
		}
		res.Decrypted = true
		g, err := s.Check(m, pkt, opts)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Name(), err))
			continue
		}
		res.Grant = g
		return res
	}
	if !tried {
		res.Err = fmt.Errorf("%w (source %v, destination %v)", ErrNoStanza, pkt.Src, pkt.Dst)
	} else {
		res.Err = errors.Join(errs...)
	}
	return res
}

// Check applies the stanza's rules to a message its keys decoded
// (everything of Authorize after decryption). It does not look at SOURCE,
// DESTINATION or expiry. IPv4-mapped IPv6 packet addresses (from a
// dual-stack socket) are treated as IPv4.
func (s *Stanza) Check(m *fwknop.Message, pkt Packet, opts AuthOptions) (*Grant, error) {
	pkt.Src, pkt.Dst = pkt.Src.Unmap(), pkt.Dst.Unmap()
	if opts.MaxPacketAge > 0 {
		d := opts.Now.Sub(time.Unix(m.Timestamp, 0))
		if d > opts.MaxPacketAge || d < -opts.MaxPacketAge {
			return nil, fmt.Errorf("%w: timestamp is %v from now (MAX_SPA_PACKET_AGE %v)", fwknop.ErrStale, d.Round(time.Second), opts.MaxPacketAge)
		}
	}
	g := &Grant{Stanza: s, Message: m, Addr: m.AllowIP}
	if m.AllowIP.IsUnspecified() {
		if s.RequireSourceAddress {
			return nil, ErrSourceRequired
		}
		g.Addr = pkt.Src
	}
	if s.RequireUsername != "" && m.User != s.RequireUsername {
		return nil, fmt.Errorf("%w: %q", ErrUsername, m.User)
	}
	if m.Type.HasNAT() {
		return nil, fmt.Errorf("%w (message type %d, nat_access %q)", ErrNAT, m.Type, m.NATAccess)
	}
	if m.Type == fwknop.CommandMsg {
		if !s.EnableCmdExec || !opts.AllowCommands {
			return nil, ErrCommand
		}
		if s.CmdCycleOpen != "" {
			return nil, fmt.Errorf("%w: a CMD_CYCLE stanza cannot run command messages", ErrCommand)
		}
		g.Command = m.Command
		return g, nil
	}
	for _, svc := range m.Services {
		if slices.Contains(s.RestrictPorts, svc) {
			return nil, fmt.Errorf("%w: %v is in RESTRICT_PORTS", ErrPorts, svc)
		}
		if len(s.OpenPorts) > 0 && !slices.Contains(s.OpenPorts, svc) {
			return nil, fmt.Errorf("%w: %v is not in OPEN_PORTS", ErrPorts, svc)
		}
	}
	g.Services = m.Services
	g.Timeout = s.FWAccessTimeout
	if m.ClientTimeout > 0 {
		g.Timeout = time.Duration(m.ClientTimeout) * time.Second
	}
	g.Timeout = min(g.Timeout, s.MaxFWTimeout)
	if s.CmdCycleOpen != "" {
		cc, err := s.cmdCycle(g, pkt)
		if err != nil {
			return nil, err
		}
		g.CmdCycle = cc
	}
	return g, nil
}

// cmdCycle expands the stanza's CMD_CYCLE commands for grant g. The
// close delay is the client timeout, else CMD_CYCLE_TIMER, capped by
// MAX_FW_TIMEOUT.
func (s *Stanza) cmdCycle(g *Grant, pkt Packet) (*CmdCycle, error) {
	delay := s.CmdCycleTimer
	if g.Message.ClientTimeout > 0 {
		delay = time.Duration(g.Message.ClientTimeout) * time.Second
	}
	delay = min(delay, s.MaxFWTimeout)
	v := CmdVars{IP: g.Addr, PktSrc: pkt.Src, Dst: pkt.Dst, Service: g.Services[0], Timestamp: g.Message.Timestamp, Delay: delay}
	open, err := ExpandCmd(s.CmdCycleOpen, v)
	if err != nil {
		return nil, fmt.Errorf("CMD_CYCLE_OPEN: %w", err)
	}
	cc := &CmdCycle{Open: open, CloseAfter: delay}
	if !s.closeIsNone() {
		if cc.Close, err = ExpandCmd(s.CmdCycleClose, v); err != nil {
			return nil, fmt.Errorf("CMD_CYCLE_CLOSE: %w", err)
		}
	}
	return cc, nil
}

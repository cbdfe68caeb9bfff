package fwknopgw

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sesame-gw/sesame/internal/firewall"
	"github.com/sesame-gw/sesame/internal/fwknop"
	"github.com/sesame-gw/sesame/internal/fwknop/accessconf"
	"github.com/sesame-gw/sesame/internal/fwknop/digestcache"
	"github.com/sesame-gw/sesame/internal/gateway"
	"github.com/sesame-gw/sesame/internal/service"
)

// Name is the protocol name the Handler reports (logs: proto=fwknop).
const Name = "fwknop"

// ipProtoUDP is the protocol number digest.cache records (fwknop over UDP).
const ipProtoUDP = 17

// Settings are what a Handler decides with; a reload may swap them.
type Settings struct {
	// Stanzas are access.conf's, in file order.
	Stanzas []*accessconf.Stanza
	// MaxPacketAge is MAX_SPA_PACKET_AGE, 0 when ENABLE_SPA_PACKET_AGING
	// is N (accessconf.ServerConfig.PacketAge).
	MaxPacketAge time.Duration
	// AllowCommands lets stanzas with ENABLE_CMD_EXEC Y run command
	// messages (serve --fwknop-allow-commands). Off, every command
	// message is refused whatever the stanza says.
	AllowCommands bool
	// Protected are the services Sesame hides; a request for any other
	// service is refused ("ports"): a grant could not make it reachable,
	// as Sesame's table only ever drops. Nil means no restriction.
	Protected map[service.Service]bool
	// Port is the SPA port, recorded as the destination port in
	// digest.cache (the engine does not pass ports to handlers; the
	// source port is recorded as 0).
	Port uint16
}

// Commands runs what CMD_CYCLE stanzas and command messages ask for
// (*Runner). Both methods must return at once.
type Commands interface {
	Cycle(src netip.Addr, who string, cc *accessconf.CmdCycle) bool
	Exec(src netip.Addr, who string, c Cmd) bool
}

// Handler decides on fwknop datagrams. Create it with New; it is safe for
// concurrent use.
type Handler struct {
	cur     atomic.Pointer[Settings]
	digests *Digests
	cmds    Commands
	log     *slog.Logger
}

var (
	_ gateway.DatagramHandler = (*Handler)(nil)
	_ gateway.Prechecker      = (*Handler)(nil)
)

// New returns a Handler with settings s that stores replay digests in d
// and runs commands with cmds. cmds may be nil when no stanza has
// CMD_CYCLE_OPEN and s.AllowCommands is off. log receives what the
// engine's verdict lines do not carry (a digest.cache that cannot be
// written); nil discards.
func New(s Settings, d *Digests, cmds Commands, log *slog.Logger) (*Handler, error) {
	if d == nil {
		return nil, errors.New("fwknopgw: nil digest cache")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{digests: d, cmds: cmds, log: log}
	if err := h.Update(s); err != nil {
		return nil, err
	}
	return h, nil
}

// Update replaces the settings atomically (a reload); the digest cache is
// kept. It refuses settings that need a command runner the Handler does
// not have; the old settings then stay.
func (h *Handler) Update(s Settings) error {
	if h.cmds == nil {
		if s.AllowCommands {
			return errors.New("fwknopgw: command messages allowed but no command runner")
		}
		for _, st := range s.Stanzas {
			if st.CmdCycleOpen != "" {
				return fmt.Errorf("fwknopgw: %s has CMD_CYCLE_OPEN but there is no command runner", st.Name())
			}
		}
	}
	h.cur.Store(&s)
	return nil
}

// Name implements gateway.DatagramHandler.
func (h *Handler) Name() string { return Name }

// Match implements gateway.DatagramHandler: fwknop.LooksLikeFwknop, no
// key, linear in the length.
func (h *Handler) Match(payload []byte) bool { return fwknop.LooksLikeFwknop(payload) }

// Precheck implements gateway.Prechecker: fwknop.CheckFormat, before the
// engine's per-source rate limit, so malformed datagrams cost a source
// none of its tokens. Packets of GPG size pass, to get their "gpg" log
// line from Handle.
func (h *Handler) Precheck(payload []byte) string {
	if len(payload) < fwknop.GPGPacketLen && fwknop.CheckFormat(payload) != nil {
		return ReasonFormat
	}
	return ""
}

// Handle implements gateway.DatagramHandler (see the package doc for the
// steps). payload is not retained.
func (h *Handler) Handle(now time.Time, src, dst netip.Addr, payload []byte) gateway.Verdict {
	s := h.cur.Load()
	src, dst = src.Unmap(), dst.Unmap()
	if err := fwknop.CheckFormat(payload); err != nil {
		if len(payload) >= fwknop.GPGPacketLen {
			return gateway.Verdict{Reason: ReasonGPG, Detail: fmt.Sprintf("%d characters: a GPG-encrypted packet (Sesame supports Rijndael keys only)", len(payload))}
		}
		return gateway.Verdict{Reason: ReasonFormat, Quiet: true}
	}
	if !src.Is4() {
		return gateway.Verdict{Reason: ReasonSource, Quiet: true, Detail: "fwknop is IPv4 only"}
	}
	if !accessconf.MatchesSource(s.Stanzas, src) {
		return gateway.Verdict{Reason: ReasonSource, Quiet: true}
	}
	digest := fwknop.ReplayDigest(payload)
	if e, ok := h.digests.Seen(digest, now); ok {
		return gateway.Verdict{Reason: ReasonReplay, Detail: seenDetail(e)}
	}
	res := accessconf.Authorize(s.Stanzas, accessconf.Packet{Src: src, Dst: dst, Payload: payload},
		accessconf.AuthOptions{Now: now, MaxPacketAge: s.MaxPacketAge, AllowCommands: s.AllowCommands})
	if res.Decrypted {
		if v, refused := h.store(digest, src, dst, now, s.Port); refused {
			return v
		}
	}
	if res.Grant == nil {
		reason, detail, n := classify(res.Err)
		if n > 1 {
			detail = fmt.Sprintf("%s (and %d more stanzas)", detail, n-1)
		}
		return gateway.Verdict{Reason: reason, Detail: detail, Quiet: !res.Decrypted}
	}
	return h.grant(res.Grant, src, s)
}

// store records the digest of a decrypted packet; refused reports that
// the packet must be refused with v.
func (h *Handler) store(digest string, src, dst netip.Addr, now time.Time, port uint16) (v gateway.Verdict, refused bool) {
	if !dst.Is4() {
		dst = netip.IPv4Unspecified()
	}
	e := digestcache.Entry{Digest: digest, Proto: ipProtoUDP, Src: netip.AddrPortFrom(src, 0), Dst: netip.AddrPortFrom(dst, port), Created: now}
	switch err := h.digests.Add(e); {
	case err == nil:
		return v, false
	case errors.Is(err, ErrReplay):
		// A copy of the packet was decided on meanwhile (another worker).
		return gateway.Verdict{Reason: ReasonReplay, Detail: "the same packet arrived twice at once"}, true
	case errors.Is(err, ErrFull):
		h.log.Error("fwknop: replay cache full: refusing packets that decrypt until digests age out", "capacity", h.digests.max)
		return gateway.Verdict{Reason: ReasonReplayFull}, true
	default:
		h.log.Error("fwknop: digest.cache not written: refusing packets until it can be", "err", err)
		return gateway.Verdict{Reason: ReasonPersist}, true
	}
}

// grant turns an authorised request into a verdict: firewall grants, a
// CMD_CYCLE, or a command.
func (h *Handler) grant(g *accessconf.Grant, src netip.Addr, s *Settings) gateway.Verdict {
	who := clientName(g)
	switch {
	case g.Command != "":
		argv := strings.Fields(g.Command)
		if len(argv) == 0 || len(argv) > maxCmdArgs {
			return gateway.Verdict{Client: who, Reason: ReasonCommand, Detail: fmt.Sprintf("command of %d words (1..%d)", len(argv), maxCmdArgs)}
		}
		c := Cmd{Argv: argv, User: g.Stanza.CmdExecUser, Group: g.Stanza.CmdExecGroup}
		return gateway.Verdict{Client: who, After: func(err error) {
			if err == nil {
				h.cmds.Exec(src, who, c)
			}
		}}
	case g.CmdCycle != nil:
		cc := g.CmdCycle
		return gateway.Verdict{Client: who, After: func(err error) {
			if err == nil {
				h.cmds.Cycle(g.Addr, who, cc)
			}
		}}
	}
	grants := make([]firewall.Grant, 0, len(g.Services))
	seen := make(map[service.Service]bool, len(g.Services))
	for _, svc := range g.Services {
		if seen[svc] {
			continue
		}
		seen[svc] = true
		if s.Protected != nil && !s.Protected[svc] {
			return gateway.Verdict{Client: who, Reason: ReasonPorts,
				Detail: fmt.Sprintf("%v is not a port Sesame protects (list it in an OPEN_PORTS)", svc)}
		}
		grants = append(grants, firewall.Grant{Addr: g.Addr, Service: svc, TTL: g.Timeout})
	}
	return gateway.Verdict{Client: who, Grants: grants}
}

// maxCmdArgs is fwknopd's argument limit for commands (strtoargv).
const maxCmdArgs = 28

// clientName names the requester for the logs: "user@access.conf:12"
// (the SPA user name and the stanza's SOURCE line).
func clientName(g *accessconf.Grant) string {
	return fmt.Sprintf("%s@%s:%d", g.Message.User, path.Base(g.Stanza.File), g.Stanza.Line)
}

func seenDetail(e digestcache.Entry) string {
	return fmt.Sprintf("digest stored %s for a packet from %v", e.Created.UTC().Format(time.RFC3339), e.Src.Addr())
}

package spagw

import (
	"crypto/ecdh"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sesame-gw/sesame/internal/gateway"
	"github.com/sesame-gw/sesame/internal/pki"
	"github.com/sesame-gw/sesame/internal/policy"
	"github.com/sesame-gw/sesame/internal/replay"
	"github.com/sesame-gw/sesame/internal/spa"
)

// Name is the protocol name the Handler reports (logs: proto=spa).
const Name = "spa"

// Replay is the replay cache a Handler records accepted packets in
// (docs/protocol.md §6 step 11). *replay.Store (persisted) and
// *replay.Cache (memory only) implement it. It must be safe for concurrent
// use.
type Replay interface {
	Add(k replay.Key, until, now time.Time) error
}

// Settings are the parts of the gateway configuration the Handler uses,
// everything a reload may change.
type Settings struct {
	// Key is the gateway's X25519 private key ([spa] key).
	Key *ecdh.PrivateKey
	// Clients are the [[client]] tables. A nil or empty Set refuses every
	// packet with unknown-key.
	Clients *policy.Set
	// Window is the timestamp window ([spa] window); 0 means
	// spa.DefaultWindow.
	Window time.Duration
	// Certs, when not nil, accepts certificate clients (credential kind
	// 2, [pki]); nil refuses them with credential.
	Certs *Certificates
}

// Certificates are the settings of certificate SPA (docs/pki.md): the
// verifier holding the CA and its CRL (kept current by crlsrc), the
// gateway's names in certificate scopes ([pki] name) and its local limit
// ([pki] allow, max_duration, sources, other_address). The gateway's own
// key for the scope is Settings.Key's public key.
type Certificates struct {
	Verifier *pki.Verifier
	Names    []string
	Local    pki.Local
}

// Handler decides on native SPA datagrams. It is safe for concurrent use;
// create it with New.
type Handler struct {
	cur    atomic.Pointer[spa.Opener[*policy.Client]]
	replay Replay
	log    *slog.Logger

	settings atomic.Pointer[Settings] // in force, for Clients (clients.go)
}

var _ gateway.DatagramHandler = (*Handler)(nil)

// New returns a Handler with settings s that records accepted packets in r.
// log receives what the engine's verdict log does not cover (a replay
// cache that cannot be written); nil discards.
func New(s Settings, r Replay, log *slog.Logger) (*Handler, error) {
	if r == nil {
		return nil, errors.New("spagw: nil replay cache")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{replay: r, log: log}
	if err := h.Update(s); err != nil {
		return nil, err
	}
	return h, nil
}

// Update replaces the settings atomically (a configuration reload): packets
// being handled finish with the old ones, later ones use s. The replay
// cache is kept, so a reload does not reopen the window. On error the old
// settings stay.
func (h *Handler) Update(s Settings) error {
	if s.Key == nil {
		return errors.New("spagw: no gateway key")
	}
	byKind := map[spa.CredentialKind]spa.Resolver[*policy.Client]{
		spa.CredEd25519: spa.KeyResolver(s.Clients.ByKey),
	}
	if c := s.Certs; c != nil {
		if c.Verifier == nil {
			return errors.New("spagw: certificate settings without a verifier")
		}
		scope := pki.Scope{Key: s.Key.PublicKey().Bytes(), Names: c.Names}
		byKind[spa.CredX509] = c.Verifier.Resolver(scope, c.Local)
	}
	o, err := spa.NewOpener(s.Key, spa.ByKind(byKind), s.Window)
	if err != nil {
		return fmt.Errorf("spagw: %w", err)
	}
	h.cur.Store(o)
	h.settings.Store(&s)
	return nil
}

// Name implements gateway.DatagramHandler.
func (h *Handler) Name() string { return Name }

// Match implements gateway.DatagramHandler: the first byte is spa.Magic.
// No cryptography.
func (h *Handler) Match(payload []byte) bool { return spa.IsNative(payload) }

// Precheck implements gateway.Prechecker: length, magic, version and the
// mac1 pre-filter (one HMAC, no public-key work), before the engine spends
// the source's rate-limit tokens.
func (h *Handler) Precheck(payload []byte) string {
	if err := h.cur.Load().Prefilter(payload); err != nil {
		if r := spa.ReasonOf(err); r != "" {
			return string(r)
		}
		return string(spa.ErrMalformed)
	}
	return ""
}

// Handle implements gateway.DatagramHandler: docs/protocol.md §6 steps 2-13
// for a datagram from src received at now. payload is not retained.
func (h *Handler) Handle(now time.Time, src, _ netip.Addr, payload []byte) gateway.Verdict {
	// Open runs the pre-filter first (length, magic, version, mac1: one
	// HMAC, no allocation) and returns its bare sentinels for garbage.
	op, err := h.cur.Load().Open(payload, now)
	if err != nil {
		return openVerdict(err)
	}
	c := op.Client
	if err := h.replay.Add(replay.Key(op.ReplayKey), op.ReplayUntil, now); err != nil {
		r := replay.ReasonOf(err)
		if r == replay.ErrPersist {
			h.log.Error("replay state not written: refusing SPA packets until it can be", "client", c.Name, "err", err)
		}
		if r == "" {
			r = replay.ErrPersist
		}
		return gateway.Verdict{Client: c.Name, Reason: string(r), Detail: detail(err, string(r))}
	}
	d, err := policy.Decide(c, op.Request, src, now)
	if err != nil {
		r := string(policy.ReasonOf(err))
		return gateway.Verdict{Client: c.Name, Reason: r, Detail: detail(err, r)}
	}
	return gateway.Verdict{Client: d.Client, Grants: Grants(d)}
}

// openVerdict maps an Opener.Open error to a verdict. Everything before the
// credential lookup is unauthenticated garbage (quiet); an unknown key or a
// bad signature is worth a log line (a removed client, a forgery attempt);
// so is every certificate refusal (pki.IsReason: expired, revoked,
// unknown-ca, bad-signature, not-authorized, stale-crl, no-crl, ...),
// whose detail names the certificate (common name, serial) or the CRL;
// a stale packet has a verified signature, so it names its client.
func openVerdict(err error) gateway.Verdict {
	r := spa.ReasonOf(err)
	v := gateway.Verdict{Reason: string(r), Detail: detail(err, string(r))}
	if se := (*spa.StaleError[*policy.Client])(nil); errors.As(err, &se) && se.Client != nil {
		v.Client = se.Client.Name
	}
	switch {
	case r == spa.ErrCredential, r == spa.ErrUnknownKey, r == spa.ErrSignature, r == spa.ErrStale, pki.IsReason(r):
	case r == "":
		v.Reason = string(spa.ErrMalformed)
		v.Quiet = true
	default:
		v.Quiet = true
		v.Detail = "" // decryption and parse details help nobody reading a flood
	}
	return v
}

// detail is err's message without the leading "reason: ".
func detail(err error, reason string) string {
	s := err.Error()
	if s == reason {
		return ""
	}
	return strings.TrimPrefix(s, reason+": ")
}

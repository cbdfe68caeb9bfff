package pki

import (
	"crypto"
	"crypto/ed25519"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/sesame-gw/sesame/internal/policy"
	"github.com/sesame-gw/sesame/internal/service"
	"github.com/sesame-gw/sesame/internal/spa"
)

// Local is the gateway's own limit on certificate clients ([pki] table):
// it grants the intersection of this and each certificate's
// Authorization. The zero Local adds no limit: certificate clients get
// what their certificate allows, from any source, for their own address.
type Local struct {
	// Allow, when not empty, limits the services: a certificate client
	// may open only ports both in its certificate and in Allow.
	Allow []service.Range
	// MaxDuration, when positive, caps the certificate's maximum duration.
	MaxDuration time.Duration
	// Sources are the prefixes certificate clients may send from (and ask
	// to open for); empty means any.
	Sources []netip.Prefix
	// OtherAddress lets certificate clients ask to open for an address
	// other than the packet's source.
	OtherAddress bool
}

// Client is the policy a verified certificate gets at a gateway with
// local policy l, or ErrNotAuthorized when they have no service in
// common. The client is named by the certificate's common name and
// expires with it.
func (l Local) Client(c *Cert) (*policy.Client, error) {
	allow := intersect(c.Authorization.Services, l.Allow)
	if len(allow) == 0 {
		return nil, fmt.Errorf("%w: %s (serial %s) may open %s, this gateway allows %s: nothing in common",
			ErrNotAuthorized, c.Name, c.Serial(), ranges(c.Authorization.Services), ranges(l.Allow))
	}
	maxDur := c.Authorization.MaxDuration
	if l.MaxDuration > 0 && l.MaxDuration < maxDur {
		maxDur = l.MaxDuration
	}
	pc := &policy.Client{
		Name:         c.Name,
		Allow:        allow,
		MaxDuration:  maxDur,
		Sources:      slices.Clone(l.Sources),
		Expires:      c.Leaf.NotAfter.Add(time.Nanosecond), // valid through NotAfter
		OtherAddress: l.OtherAddress,
	}
	if k, ok := c.Key.(ed25519.PublicKey); ok {
		pc.Key = k
	}
	return pc, nil
}

// intersect is the ports of cert also in local, per protocol; an empty
// local means no local limit.
func intersect(cert, local []service.Range) []service.Range {
	if len(local) == 0 {
		return slices.Clone(cert)
	}
	var out []service.Range
	for _, c := range cert {
		for _, l := range local {
			if c.Proto != l.Proto {
				continue
			}
			first, last := max(c.First, l.First), min(c.Last, l.Last)
			if first <= last {
				out = append(out, service.Range{Proto: c.Proto, First: first, Last: last})
			}
		}
	}
	return out
}

func ranges(rs []service.Range) string {
	if len(rs) == 0 {
		return "everything"
	}
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = r.String()
	}
	return strings.Join(s, ",")
}

// Resolver adapts v to spa.Resolver for the gateway scope s with local
// policy l (docs/protocol.md §6 step 8 for credential kind 2): it parses
// the chain framing (spa.ParseChain), runs Check, checks the scope
// (not-authorized), and returns the leaf's key, which must have signed the
// packet, with the intersected policy.Client. Other credential kinds are
// refused with spa.ErrCredential. Combine it with spa.KeyResolver through
// spa.ByKind. Safe for concurrent use; the CRL in use is read on every
// call, so SetCRL takes effect for the next packet.
func (v *Verifier) Resolver(s Scope, l Local) spa.Resolver[*policy.Client] {
	s = Scope{Key: slices.Clone(s.Key), Names: slices.Clone(s.Names)}
	l.Allow = slices.Clone(l.Allow)
	l.Sources = slices.Clone(l.Sources)
	return func(cred spa.Credential, now time.Time) (crypto.PublicKey, *policy.Client, error) {
		if cred.Kind != spa.CredX509 {
			return nil, nil, fmt.Errorf("%w: %v not accepted", spa.ErrCredential, cred.Kind)
		}
		chain, err := spa.ParseChain(cred.Data)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrBadCertificate, err)
		}
		c, err := v.Check(chain, now)
		if err != nil {
			return nil, nil, err
		}
		if !c.Authorization.ValidAt(s) {
			return nil, nil, fmt.Errorf("%w: %s (serial %s) is not valid at this gateway", ErrNotAuthorized, c.Name, c.Serial())
		}
		pc, err := l.Client(c)
		if err != nil {
			return nil, nil, err
		}
		return c.Key, pc, nil
	}
}

package policy

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ErrConfig is wrapped by every error of Client.Validate and NewSet.
var ErrConfig = errors.New("invalid client policy")

// Validate checks that c is usable: a name, a 32-byte key, valid services
// and sources, no negative duration.
func (c *Client) Validate() error {
	if c.Name == "" {
		return fmt.Errorf("%w: client without a name", ErrConfig)
	}
	if len(c.Key) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: client %q: public key is %d bytes, want %d", ErrConfig, c.Name, len(c.Key), ed25519.PublicKeySize)
	}
	for _, r := range c.Allow {
		if !validRange(r) {
			return fmt.Errorf("%w: client %q: invalid service %v", ErrConfig, c.Name, r)
		}
	}
	for _, p := range c.Sources {
		if !p.IsValid() {
			return fmt.Errorf("%w: client %q: invalid source prefix %v", ErrConfig, c.Name, p)
		}
	}
	if c.MaxDuration < 0 {
		return fmt.Errorf("%w: client %q: negative max_duration %v", ErrConfig, c.Name, c.MaxDuration)
	}
	return nil
}

// Set is the configured clients, looked up by public key in O(1). It is
// immutable and safe for concurrent use; a config reload builds a new Set.
type Set struct {
	byKey  map[[ed25519.PublicKeySize]byte]*Client
	byName map[string]*Client
}

// NewSet validates clients and indexes them. Names and keys must be unique.
// The Set keeps its own copies of the clients.
func NewSet(clients []Client) (*Set, error) {
	s := &Set{
		byKey:  make(map[[ed25519.PublicKeySize]byte]*Client, len(clients)),
		byName: make(map[string]*Client, len(clients)),
	}
	for i := range clients {
		c := clients[i]
		if err := c.Validate(); err != nil {
			return nil, err
		}
		k := [ed25519.PublicKeySize]byte(c.Key)
		if other, dup := s.byKey[k]; dup {
			return nil, fmt.Errorf("%w: clients %q and %q have the same public key", ErrConfig, other.Name, c.Name)
		}
		if _, dup := s.byName[c.Name]; dup {
			return nil, fmt.Errorf("%w: two clients named %q", ErrConfig, c.Name)
		}
		c.Key = slices.Clone(c.Key)
		c.Allow = slices.Clone(c.Allow)
		c.Sources = slices.Clone(c.Sources)
		s.byKey[k] = &c
		s.byName[c.Name] = &c
	}
	return s, nil
}

// ByKey returns the client whose public key is pub. Its signature fits
// spa.KeyResolver. The returned Client must not be modified.
func (s *Set) ByKey(pub ed25519.PublicKey) (*Client, bool) {
	if s == nil || len(pub) != ed25519.PublicKeySize {
		return nil, false
	}
	c, ok := s.byKey[[ed25519.PublicKeySize]byte(pub)]
	return c, ok
}

// ByName returns the client called name.
func (s *Set) ByName(name string) (*Client, bool) {
	if s == nil {
		return nil, false
	}
	c, ok := s.byName[name]
	return c, ok
}

// All returns the clients sorted by name (for `sesame status`). They
// must not be modified.
func (s *Set) All() []*Client {
	if s == nil {
		return nil
	}
	out := make([]*Client, 0, len(s.byName))
	for _, c := range s.byName {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *Client) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Len is the number of clients.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.byKey)
}

// Expired lists the names of clients expired at now, for a startup warning.
func (s *Set) Expired(now time.Time) []string {
	var out []string
	for _, c := range s.byKey {
		if !c.Expires.IsZero() && !now.Before(c.Expires) {
			out = append(out, c.Name)
		}
	}
	slices.Sort(out)
	return out
}

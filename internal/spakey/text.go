// Package spakey reads and writes Sesame's key files and the one-line
// public key text used in configs and on command lines (docs/protocol.md
// §3).
//
// A key file is a PEM "PRIVATE KEY" block (PKCS #8, RFC 5958/8410) holding
// either an Ed25519 key (a client identity) or an X25519 key (a gateway);
// the algorithm says which, so one reader serves both. Files are created
// mode 0600 and never overwritten; a private key file readable or writable
// by group or others is refused. Public keys are written
// "sesame-id1:<base64url>" (identity) or "sesame-gw1:<base64url>" (gateway),
// 32 bytes without padding.
//
// Text and PEM functions are pure; only ReadFile and WriteFile touch the
// file system. Values are immutable and safe for concurrent use.
package spakey

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Kind is what a key is for.
type Kind uint8

// Key kinds.
const (
	// Identity is a client's Ed25519 signing key.
	Identity Kind = iota + 1
	// Gateway is a gateway's X25519 HPKE key.
	Gateway
)

func (k Kind) String() string {
	switch k {
	case Identity:
		return "identity"
	case Gateway:
		return "gateway"
	}
	return fmt.Sprintf("kind-%d", uint8(k))
}

// Public key text prefixes. The digit names the algorithm pair of protocol
// version 1 (Ed25519 identities, X25519 gateways).
const (
	IdentityPrefix = "sesame-id1:"
	GatewayPrefix  = "sesame-gw1:"
)

const keySize = 32

var b64 = base64.RawURLEncoding.Strict()

// ErrPublicKey is wrapped by every public key text parse error.
var ErrPublicKey = errors.New("invalid public key")

// PublicKey is a parsed public key text. The zero value is invalid.
type PublicKey struct {
	kind Kind
	raw  [keySize]byte
}

// Kind is Identity or Gateway.
func (p PublicKey) Kind() Kind { return p.kind }

// String is the one-line text form, e.g. "sesame-id1:Nf3N...".
func (p PublicKey) String() string {
	prefix := IdentityPrefix
	if p.kind == Gateway {
		prefix = GatewayPrefix
	}
	return prefix + b64.EncodeToString(p.raw[:])
}

// Identity returns the Ed25519 public key, or nil if p is not an identity.
func (p PublicKey) Identity() ed25519.PublicKey {
	if p.kind != Identity {
		return nil
	}
	return ed25519.PublicKey(append([]byte(nil), p.raw[:]...))
}

// Gateway returns the X25519 public key, or nil if p is not a gateway key.
func (p PublicKey) Gateway() *ecdh.PublicKey {
	if p.kind != Gateway {
		return nil
	}
	k, err := ecdh.X25519().NewPublicKey(p.raw[:])
	if err != nil { // every 32-byte string is an X25519 public key
		return nil
	}
	return k
}

// ParsePublic reads a public key text of either kind. Surrounding white
// space is ignored; everything else is strict: the exact prefix, unpadded
// base64url, 32 bytes.
func ParsePublic(s string) (PublicKey, error) {
	s = strings.TrimSpace(s)
	var p PublicKey
	var rest string
	switch {
	case strings.HasPrefix(s, IdentityPrefix):
		p.kind, rest = Identity, s[len(IdentityPrefix):]
	case strings.HasPrefix(s, GatewayPrefix):
		p.kind, rest = Gateway, s[len(GatewayPrefix):]
	default:
		return PublicKey{}, fmt.Errorf("%w %q: want %s... or %s...", ErrPublicKey, abbreviate(s), IdentityPrefix, GatewayPrefix)
	}
	// encoding/base64 skips '\r' and '\n' even in Strict mode: check the
	// alphabet first so that one key has exactly one text.
	b, err := b64.DecodeString(rest)
	if !isBase64URL(rest) || err != nil || len(b) != keySize {
		return PublicKey{}, fmt.Errorf("%w %q: want %d bytes of unpadded base64url after the prefix", ErrPublicKey, abbreviate(s), keySize)
	}
	p.raw = [keySize]byte(b)
	return p, nil
}

// ParseIdentity reads a client public key (config public_key). A gateway
// key is refused.
func ParseIdentity(s string) (ed25519.PublicKey, error) {
	p, err := ParsePublic(s)
	if err != nil {
		return nil, err
	}
	if p.kind != Identity {
		return nil, fmt.Errorf("%w: %s is a gateway key, a client key (%s...) is expected here", ErrPublicKey, abbreviate(s), IdentityPrefix)
	}
	return p.Identity(), nil
}

// ParseGateway reads a gateway public key (--gateway-key). A client key is
// refused.
func ParseGateway(s string) (*ecdh.PublicKey, error) {
	p, err := ParsePublic(s)
	if err != nil {
		return nil, err
	}
	if p.kind != Gateway {
		return nil, fmt.Errorf("%w: %s is a client key, a gateway key (%s...) is expected here", ErrPublicKey, abbreviate(s), GatewayPrefix)
	}
	return p.Gateway(), nil
}

// FormatIdentity is the text of a client public key.
func FormatIdentity(pub ed25519.PublicKey) string {
	return IdentityPrefix + b64.EncodeToString(pub)
}

// FormatGateway is the text of a gateway public key.
func FormatGateway(pub *ecdh.PublicKey) string {
	return GatewayPrefix + b64.EncodeToString(pub.Bytes())
}

// abbreviate keeps error messages one short line.
func abbreviate(s string) string {
	if len(s) > 64 {
		return s[:61] + "..."
	}
	return s
}

func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

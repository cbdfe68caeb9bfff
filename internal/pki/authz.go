package pki

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/sesame-gw/sesame/internal/service"
)

// OIDAuthorization identifies the Sesame authorization extension
// (docs/pki.md §3). The arc 1.3.6.1.4.1.32473 is IANA's Private Enterprise
// Number for documentation (RFC 5612), used provisionally: it belongs to no
// one else, so the OID cannot collide with another vendor's. .83 is
// Sesame, .1 certificates, .1 the authorization extension, version 1.
var OIDAuthorization = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 32473, 83, 1, 1}

// Limits of the authorization extension.
const (
	MaxAuthServices = 32 // ranges in one certificate
	MaxScope        = 16 // gateway keys, and gateway names
	MaxNameLen      = 253
	gatewayKeySize  = 32 // X25519 public key
)

// ErrAuthorization is wrapped by every error of ParseAuthorization and
// Authorization.Marshal.
var ErrAuthorization = errors.New("invalid sesame authorization extension")

// Authorization is what a certificate allows its holder: the value of the
// extension OIDAuthorization. The zero value is invalid (no services).
type Authorization struct {
	// Services are the services and port ranges the holder may open.
	Services []service.Range
	// MaxDuration is the longest grant the holder may ask for, in whole
	// seconds (1 s to 2^32-1 s).
	MaxDuration time.Duration
	// GatewayKeys and GatewayNames are the scope: when both are empty the
	// certificate is valid at every gateway that trusts the CA; otherwise
	// only at a gateway whose X25519 public key (32 bytes) is in
	// GatewayKeys or whose configured name is in GatewayNames.
	GatewayKeys  [][]byte
	GatewayNames []string
}

// authASN1 is the DER structure (docs/pki.md §3):
//
//	SesameAuthorization ::= SEQUENCE {
//	    services      SEQUENCE SIZE (1..32) OF ServiceRange,
//	    maxDuration   INTEGER (1..4294967295),  -- seconds
//	    gatewayKeys   [0] IMPLICIT SEQUENCE SIZE (1..16) OF OCTET STRING (SIZE (32)) OPTIONAL,
//	    gatewayNames  [1] IMPLICIT SEQUENCE SIZE (1..16) OF PrintableString (SIZE (1..253)) OPTIONAL }
//	ServiceRange ::= SEQUENCE {
//	    protocol INTEGER { tcp(6), udp(17) },
//	    first    INTEGER (1..65535),
//	    last     INTEGER (1..65535) }         -- first <= last
type authASN1 struct {
	Services     []rangeASN1
	MaxDuration  int64
	GatewayKeys  [][]byte `asn1:"optional,omitempty,tag:0"`
	GatewayNames []string `asn1:"optional,omitempty,tag:1"`
}

type rangeASN1 struct {
	Proto, First, Last int
}

// validate checks every rule of the ASN.1 module above.
func (a *Authorization) validate() error {
	if n := len(a.Services); n == 0 || n > MaxAuthServices {
		return fmt.Errorf("%w: %d services (want 1 to %d)", ErrAuthorization, n, MaxAuthServices)
	}
	for _, r := range a.Services {
		if (r.Proto != service.TCP && r.Proto != service.UDP) || r.First == 0 || r.First > r.Last {
			return fmt.Errorf("%w: invalid service %v", ErrAuthorization, r)
		}
	}
	if a.MaxDuration < time.Second || a.MaxDuration > math.MaxUint32*time.Second || a.MaxDuration%time.Second != 0 {
		return fmt.Errorf("%w: max duration %v (want whole seconds, 1s to %ds)", ErrAuthorization, a.MaxDuration, uint32(math.MaxUint32))
	}
	if len(a.GatewayKeys) > MaxScope || len(a.GatewayNames) > MaxScope {
		return fmt.Errorf("%w: more than %d gateway keys or names", ErrAuthorization, MaxScope)
	}
	for _, k := range a.GatewayKeys {
		if len(k) != gatewayKeySize {
			return fmt.Errorf("%w: gateway key of %d bytes", ErrAuthorization, len(k))
		}
	}
	for _, n := range a.GatewayNames {
		if err := checkGatewayName(n); err != nil {
			return fmt.Errorf("%w: %v", ErrAuthorization, err)
		}
	}
	return nil
}

// checkGatewayName allows host-name characters: letters, digits, '-' and
// '.', 1 to 253 of them (all PrintableString characters).
func checkGatewayName(n string) error {
	if len(n) == 0 || len(n) > MaxNameLen {
		return fmt.Errorf("gateway name of %d characters", len(n))
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return fmt.Errorf("gateway name %q: only letters, digits, '-' and '.'", n)
		}
	}
	return nil
}

// Marshal encodes a as the DER value of the extension.
func (a Authorization) Marshal() ([]byte, error) {
	if err := a.validate(); err != nil {
		return nil, err
	}
	v := authASN1{MaxDuration: int64(a.MaxDuration / time.Second), GatewayKeys: a.GatewayKeys, GatewayNames: a.GatewayNames}
	for _, r := range a.Services {
		v.Services = append(v.Services, rangeASN1{int(r.Proto), int(r.First), int(r.Last)})
	}
	der, err := asn1.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAuthorization, err)
	}
	return der, nil
}

// Extension is a as a critical X.509 extension, for
// x509.Certificate.ExtraExtensions. Critical, so that software which does
// not know it refuses the certificate rather than ignoring the limits.
func (a Authorization) Extension() (pkix.Extension, error) {
	der, err := a.Marshal()
	if err != nil {
		return pkix.Extension{}, err
	}
	return pkix.Extension{Id: OIDAuthorization, Critical: true, Value: der}, nil
}

// ParseAuthorization decodes the DER value of the extension strictly: the
// structure above, every constraint, nothing trailing, and exactly the
// bytes Marshal would produce (one encoding per value).
func ParseAuthorization(der []byte) (Authorization, error) {
	var v authASN1
	rest, err := asn1.Unmarshal(der, &v)
	if err != nil {
		return Authorization{}, fmt.Errorf("%w: %v", ErrAuthorization, err)
	}
	if len(rest) != 0 {
		return Authorization{}, fmt.Errorf("%w: %d trailing bytes", ErrAuthorization, len(rest))
	}
	var a Authorization
	for _, r := range v.Services {
		if r.Proto < 0 || r.Proto > 255 || r.First < 0 || r.First > 65535 || r.Last < 0 || r.Last > 65535 {
			return Authorization{}, fmt.Errorf("%w: service %d/%d-%d", ErrAuthorization, r.Proto, r.First, r.Last)
		}
		a.Services = append(a.Services, service.Range{Proto: service.Proto(r.Proto), First: uint16(r.First), Last: uint16(r.Last)})
	}
	if v.MaxDuration < 1 || v.MaxDuration > math.MaxUint32 {
		return Authorization{}, fmt.Errorf("%w: max duration %d s", ErrAuthorization, v.MaxDuration)
	}
	a.MaxDuration = time.Duration(v.MaxDuration) * time.Second
	a.GatewayKeys = v.GatewayKeys
	a.GatewayNames = v.GatewayNames
	if err := a.validate(); err != nil {
		return Authorization{}, err
	}
	again, err := a.Marshal()
	if err != nil || !bytes.Equal(again, der) {
		return Authorization{}, fmt.Errorf("%w: not the canonical encoding", ErrAuthorization)
	}
	return a, nil
}

// AuthorizationOf finds and decodes the extension in cert. It must be
// present exactly once and marked critical.
func AuthorizationOf(cert *x509.Certificate) (Authorization, error) {
	var found *pkix.Extension
	for i, e := range cert.Extensions {
		if e.Id.Equal(OIDAuthorization) {
			if found != nil {
				return Authorization{}, fmt.Errorf("%w: present twice", ErrAuthorization)
			}
			found = &cert.Extensions[i]
		}
	}
	if found == nil {
		return Authorization{}, fmt.Errorf("%w: missing", ErrAuthorization)
	}
	if !found.Critical {
		return Authorization{}, fmt.Errorf("%w: not marked critical", ErrAuthorization)
	}
	return ParseAuthorization(found.Value)
}

// Scope is how a gateway names itself for the certificates' gateway scope.
type Scope struct {
	// Key is the gateway's X25519 public key (32 bytes).
	Key []byte
	// Names are the names the gateway answers to ([pki] name).
	Names []string
}

// ValidAt reports whether the certificate may be used at the gateway s:
// always when the authorization names no gateway, otherwise when s's key
// or one of its names (compared without regard to case) is listed.
func (a Authorization) ValidAt(s Scope) bool {
	if len(a.GatewayKeys) == 0 && len(a.GatewayNames) == 0 {
		return true
	}
	for _, k := range a.GatewayKeys {
		if len(s.Key) == gatewayKeySize && bytes.Equal(k, s.Key) {
			return true
		}
	}
	for _, n := range a.GatewayNames {
		if slices.ContainsFunc(s.Names, func(m string) bool { return strings.EqualFold(m, n) }) {
			return true
		}
	}
	return false
}

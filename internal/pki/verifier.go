package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCacheSize is how many verified certificates a Verifier remembers
// when Options.CacheSize is zero.
const DefaultCacheSize = 1024

// Options tune a Verifier. The zero value is fail-open on a stale CRL:
// set CRLRequired for fail-closed (the configuration's default).
type Options struct {
	// CRLRequired refuses every certificate with ErrStaleCRL while the CRL
	// in use is outside ThisUpdate..NextUpdate ([pki] crl_required =
	// true). When false, a stale CRL is still used (the last good one) and
	// the caller warns. Without any CRL, both refuse with ErrNoCRL.
	CRLRequired bool
	// CacheSize bounds the cache of certificates whose CA signature and
	// profile were verified (keyed by their DER; validity, revocation and
	// the CRL are checked on every use). 0 means DefaultCacheSize, a
	// negative value disables the cache.
	CacheSize int
}

// Verifier checks client certificates against one CA and its CRL. It is
// safe for concurrent use.
type Verifier struct {
	ca       *x509.Certificate
	required bool

	crlMu sync.Mutex // serialises SetCRL; readers use crl without it
	crl   atomic.Pointer[crlState]

	cache *certCache
}

// NewVerifier returns a Verifier for the CA certificate ca, which must be a
// CA (basic constraints) allowed to sign certificates and CRLs. It has no
// CRL until SetCRL succeeds.
func NewVerifier(ca *x509.Certificate, opts Options) (*Verifier, error) {
	if ca == nil {
		return nil, errors.New("pki: nil CA certificate")
	}
	if !ca.BasicConstraintsValid || !ca.IsCA {
		return nil, fmt.Errorf("pki: %q is not a CA certificate", ca.Subject)
	}
	if ca.KeyUsage != 0 && ca.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		return nil, fmt.Errorf("pki: CA %q may not sign both certificates and CRLs (key usage)", ca.Subject)
	}
	size := opts.CacheSize
	if size == 0 {
		size = DefaultCacheSize
	}
	return &Verifier{ca: ca, required: opts.CRLRequired, cache: newCertCache(size)}, nil
}

// CA is the CA certificate the Verifier trusts.
func (v *Verifier) CA() *x509.Certificate { return v.ca }

// CRLRequired reports Options.CRLRequired.
func (v *Verifier) CRLRequired() bool { return v.required }

// Cert is a verified client certificate. It is shared and must not be
// modified.
type Cert struct {
	Leaf *x509.Certificate
	// Name is the subject common name (sesame ca issue --name).
	Name string
	// Key is the leaf's public key: ed25519.PublicKey or *ecdsa.PublicKey
	// on P-256.
	Key crypto.PublicKey
	// Authorization is the decoded Sesame extension.
	Authorization Authorization
}

// Serial is the leaf's serial number in hex, as `sesame ca list` prints it.
func (c *Cert) Serial() string { return SerialText(c.Leaf.SerialNumber) }

// SerialText formats a certificate serial as lower-case hex.
func SerialText(n *big.Int) string { return fmt.Sprintf("%x", n) }

// Check verifies a certificate chain (DER, leaf first, as spa.ParseChain
// returns it) at now, cheapest checks first, and returns the verified leaf.
// Errors wrap exactly one Reason:
//
//   - bad-certificate: not exactly one certificate (the CA issues leaves
//     directly), unparsable, or a profile violation (below);
//   - no-crl / stale-crl: no CRL yet; or, with CRLRequired, the CRL is not
//     fresh at now;
//   - unknown-ca: issuer name or authority key id is not the CA's;
//   - bad-signature: the CA's signature does not verify;
//   - bad-certificate: key not Ed25519 or P-256, a CA certificate, no
//     client-auth extended key usage, digital signature not in key usage,
//     an unknown critical extension, or a missing or invalid
//     authorization extension;
//   - not-yet-valid / expired: now outside the leaf's or the CA's validity;
//   - revoked: the serial is in the CRL in use.
func (v *Verifier) Check(chain [][]byte, now time.Time) (*Cert, error) {
	if len(chain) != 1 {
		return nil, fmt.Errorf("%w: chain of %d certificates, want the leaf only", ErrBadCertificate, len(chain))
	}
	crl := v.crl.Load()
	if crl == nil {
		return nil, fmt.Errorf("%w: no valid CRL loaded yet", ErrNoCRL)
	}
	if v.required && !crl.info.Fresh(now) {
		return nil, fmt.Errorf("%w: CRL %v valid %s to %s", ErrStaleCRL, crl.info.Number,
			crl.info.ThisUpdate.UTC().Format(time.RFC3339), crl.info.NextUpdate.UTC().Format(time.RFC3339))
	}
	c, ok := v.cache.get(chain[0])
	if !ok {
		var err error
		if c, err = v.verifyLeaf(chain[0]); err != nil {
			return nil, err
		}
		v.cache.put(chain[0], c)
	}
	if err := validAt(c.Leaf, now, "certificate"); err != nil {
		return nil, fmt.Errorf("%w (%s, serial %s)", err, c.Name, c.Serial())
	}
	if err := validAt(v.ca, now, "CA certificate"); err != nil {
		return nil, err
	}
	if at, revoked := crl.revoked[serialKey(c.Leaf.SerialNumber)]; revoked {
		return nil, fmt.Errorf("%w: %s, serial %s, revoked %s (CRL %v)", ErrRevoked, c.Name, c.Serial(),
			at.UTC().Format(time.RFC3339), crl.info.Number)
	}
	return c, nil
}

// validAt checks NotBefore <= now <= NotAfter (RFC 5280 §4.1.2.5).
func validAt(c *x509.Certificate, now time.Time, what string) error {
	if now.Before(c.NotBefore) {
		return fmt.Errorf("%w: %s valid from %s", ErrNotYetValid, what, c.NotBefore.UTC().Format(time.RFC3339))
	}
	if now.After(c.NotAfter) {
		return fmt.Errorf("%w: %s expired %s", ErrExpired, what, c.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// verifyLeaf runs the time-independent checks: parse, issuer, signature,
// profile. Its result may be cached.
func (v *Verifier) verifyLeaf(der []byte) (*Cert, error) {
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCertificate, err)
	}
	if !bytes.Equal(leaf.RawIssuer, v.ca.RawSubject) {
		return nil, fmt.Errorf("%w: issued by %q (serial %s), the CA is %q", ErrUnknownCA, leaf.Issuer, SerialText(leaf.SerialNumber), v.ca.Subject)
	}
	if len(leaf.AuthorityKeyId) != 0 && len(v.ca.SubjectKeyId) != 0 && !bytes.Equal(leaf.AuthorityKeyId, v.ca.SubjectKeyId) {
		return nil, fmt.Errorf("%w: authority key id %x (serial %s), the CA's is %x", ErrUnknownCA, leaf.AuthorityKeyId, SerialText(leaf.SerialNumber), v.ca.SubjectKeyId)
	}
	if err := leaf.CheckSignatureFrom(v.ca); err != nil {
		return nil, fmt.Errorf("%w: %q serial %s: %v", ErrBadSignature, leaf.Subject.CommonName, SerialText(leaf.SerialNumber), err)
	}
	c := &Cert{Leaf: leaf, Name: leaf.Subject.CommonName}
	if c.Name == "" {
		c.Name = "serial:" + SerialText(leaf.SerialNumber)
	}
	bad := func(format string, a ...any) (*Cert, error) {
		return nil, fmt.Errorf("%w: %s (serial %s): %s", ErrBadCertificate, c.Name, c.Serial(), fmt.Sprintf(format, a...))
	}
	switch k := leaf.PublicKey.(type) {
	case ed25519.PublicKey:
		c.Key = k
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return bad("ECDSA key on %s, want P-256", k.Curve.Params().Name)
		}
		c.Key = k
	default:
		return bad("%T key, want Ed25519 or ECDSA P-256", leaf.PublicKey)
	}
	if leaf.IsCA {
		return bad("a CA certificate")
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return bad("no client authentication extended key usage")
	}
	if leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return bad("key usage without digital signature")
	}
	for _, id := range leaf.UnhandledCriticalExtensions {
		if !id.Equal(OIDAuthorization) {
			return bad("unknown critical extension %v", id)
		}
	}
	a, err := AuthorizationOf(leaf)
	if err != nil {
		return bad("%v", err)
	}
	c.Authorization = a
	return c, nil
}

// certCache remembers verified certificates by DER. Entries are only
// added after the CA's signature verified, so an attacker cannot fill it
// with certificates of their own; when full, an arbitrary entry goes.
type certCache struct {
	mu  sync.Mutex
	max int
	m   map[string]*Cert
}

func newCertCache(max int) *certCache {
	if max <= 0 {
		return &certCache{}
	}
	return &certCache{max: max, m: make(map[string]*Cert)}
}

func (c *certCache) get(der []byte) (*Cert, bool) {
	if c.max == 0 {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[string(der)]
	return v, ok
}

func (c *certCache) put(der []byte, v *Cert) {
	if c.max == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[string(der)] = v
}

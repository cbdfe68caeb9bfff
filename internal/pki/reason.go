package pki

import (
	"slices"

	"github.com/sesame-gw/sesame/internal/spa"
)

// Refusal reasons for certificate clients, in the order Check and the
// Resolver test them. They are spa.Reason values so that an error returned
// through spa.Opener.Open reports them with spa.ReasonOf and errors.Is.
const (
	// ErrNoCRL: no valid CRL has been loaded yet, so no certificate can be
	// checked for revocation (both crl_required modes refuse).
	ErrNoCRL spa.Reason = "no-crl"
	// ErrStaleCRL: with crl_required, the CRL in use is outside its
	// ThisUpdate..NextUpdate window.
	ErrStaleCRL spa.Reason = "stale-crl"
	// ErrBadCertificate: not a single parsable X.509 leaf with an Ed25519 or
	// P-256 key, client-auth usage and one valid authorization extension.
	ErrBadCertificate spa.Reason = "bad-certificate"
	// ErrUnknownCA: the leaf names another issuer than the configured CA.
	ErrUnknownCA spa.Reason = "unknown-ca"
	// ErrBadSignature: the leaf names the CA but the CA did not sign it
	// (forged or tampered certificate).
	ErrBadSignature spa.Reason = "bad-signature"
	// ErrExpired: after the leaf's (or the CA's) NotAfter.
	ErrExpired spa.Reason = "expired"
	// ErrNotYetValid: before the leaf's (or the CA's) NotBefore.
	ErrNotYetValid spa.Reason = "not-yet-valid"
	// ErrRevoked: the leaf's serial is in the CRL.
	ErrRevoked spa.Reason = "revoked"
	// ErrNotAuthorized: the certificate is not for this gateway (scope),
	// or it allows nothing this gateway's local policy allows. A request
	// for a service outside the granted intersection is refused later by
	// policy.Decide with service-not-allowed.
	ErrNotAuthorized spa.Reason = "not-authorized"
)

var reasons = []spa.Reason{
	ErrNoCRL, ErrStaleCRL, ErrBadCertificate, ErrUnknownCA, ErrBadSignature,
	ErrExpired, ErrNotYetValid, ErrRevoked, ErrNotAuthorized,
}

// IsReason reports whether r is one of this package's reasons: a refusal
// of a certificate client after decryption, worth a log line.
func IsReason(r spa.Reason) bool { return slices.Contains(reasons, r) }

// Reasons lists this package's reasons.
func Reasons() []spa.Reason { return slices.Clone(reasons) }

// Package pki is the gateway side of certificate SPA (credential kind 2,
// docs/pki.md and docs/protocol.md §9), the sKnock model with its gaps
// fixed: one CA for many gateways, authorization carried in the client
// certificate, revocation by a CRL that is signed, fresh, and never
// fail-open unless the operator says so.
//
// A Verifier holds the CA certificate and the CRL in use. Check verifies a
// chain: exactly one leaf issued by the CA, its signature, validity window,
// key usage (client authentication), the Sesame authorization extension
// (Authorization, OID 1.3.6.1.4.1.32473.83.1.1), and its serial against the
// CRL. Resolver adapts a Verifier to spa.Resolver: the policy.Client it
// returns is the intersection of the certificate's authorization and the
// gateway's Local policy, limited to gateways in the certificate's Scope.
//
// Every refusal wraps exactly one Reason (a spa.Reason, so spa.ReasonOf
// reports it through spa.Opener.Open): expired, not-yet-valid, revoked,
// unknown-ca, bad-signature, bad-certificate, not-authorized, stale-crl,
// no-crl.
//
// The package is pure: bytes and time.Time in, decisions out; no I/O, no
// clock, no logging. Loading the CRL from a file or a URL is package
// pki/crlsrc; the CA directory and `sesame ca` are package pki/cadir; key
// and certificate files are package pki/certfile. A Verifier is safe for
// concurrent use; SetCRL swaps the CRL atomically.
package pki

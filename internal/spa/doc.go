// Package spa implements Sesame's native Single Packet Authorization wire
// format, version 1 (docs/protocol.md): one UDP datagram of at most 1232
// bytes, sealed with HPKE (RFC 9180: DHKEM(X25519, HKDF-SHA256),
// HKDF-SHA256, ChaCha20-Poly1305, base mode) to the gateway's static key and
// signed inside with the client's Ed25519 key (RFC 8032) — or, for
// certificate clients (credential kind 2, §9), the certificate's Ed25519 or
// ECDSA P-256 key.
//
// Clients call Seal with a KeyIdentity or a CertIdentity. Gateways build
// one Opener from their private key and a Resolver (KeyResolver over the
// configured clients; ByKind to add the certificate resolver of package
// pki), run Prefilter on every datagram (length, magic, version and the
// mac1 keyed hash: one HMAC, no public-key work) and Open on those that
// pass (one X25519, one map lookup or chain check, one signature
// verification, the timestamp window). Replay detection is the
// caller's next step, with Opened.ReplayKey and Opened.ReplayUntil (package
// replay), then the policy (package policy).
//
// The package is pure: bytes, time.Time and keys in, values and sentinel
// errors out; no I/O, no clock, no logging. Every error returned by Prefilter
// and Open wraps exactly one Reason, a stable token for logs.
package spa

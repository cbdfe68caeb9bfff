package spa

import "errors"

// Reason is a stable, log-friendly token naming why a datagram was refused
// (docs/protocol.md §6). The sentinel errors below are Reasons; Prefilter and
// Open return errors wrapping exactly one of them, so callers branch with
// errors.Is and log ReasonOf(err).
type Reason string

func (r Reason) Error() string { return string(r) }

// Refusal reasons, in the order the gateway checks them.
const (
	ErrShort      Reason = "short"       // fewer than MinSize bytes
	ErrTooLong    Reason = "too-long"    // more than MaxSize bytes
	ErrMagic      Reason = "magic"       // first byte is not Magic: not a Sesame packet (maybe fwknop)
	ErrVersion    Reason = "version"     // a protocol version this gateway does not speak
	ErrPrefilter  Reason = "prefilter"   // mac1 does not match this gateway's public key
	ErrDecrypt    Reason = "decrypt"     // HPKE open failed (wrong gateway, tampered, garbage)
	ErrMalformed  Reason = "malformed"   // decrypted plaintext is not a valid encoding
	ErrCredential Reason = "credential"  // credential kind not accepted, or not usable
	ErrUnknownKey Reason = "unknown-key" // no configured client has this public key
	ErrSignature  Reason = "signature"   // the signature does not verify
	ErrStale      Reason = "stale"       // timestamp outside the window, past or future
)

// ReasonOf returns the Reason wrapped by err, or "" if there is none.
func ReasonOf(err error) Reason {
	var r Reason
	if errors.As(err, &r) {
		return r
	}
	return ""
}

package fwknop

import "errors"

// Sentinel errors. Every error Decode returns wraps exactly one of the
// first six, so a caller can branch with errors.Is and log a stable
// reason. They are ordered by the stage that rejects the packet.
var (
	// ErrFormat: the payload is not a Rijndael fwknop packet at all
	// (length outside 140..399 chars, a character outside the base64
	// alphabet, a "U2FsdGVkX1" prefix, non-canonical base64, a blob that
	// is not "Salted__" + whole AES blocks). Checked before any crypto.
	ErrFormat = errors.New("not an fwknop SPA packet")
	// ErrHMAC: the keys carry an HMAC key and the packet's HMAC does not
	// match (wrong HMAC key, wrong HMAC_DIGEST_TYPE, tampering).
	ErrHMAC = errors.New("HMAC mismatch")
	// ErrDecrypt: decryption did not yield an fwknop plaintext (wrong
	// KEY, wrong ENCRYPTION_MODE, or an HMAC on a packet decoded
	// without an HMAC key).
	ErrDecrypt = errors.New("decryption failed")
	// ErrDigest: the plaintext decrypted but its inner digest does not
	// match the encoded fields.
	ErrDigest = errors.New("SPA digest mismatch")
	// ErrMessage: authenticated plaintext whose fields libfko rejects
	// (bad user name, message type, access/NAT/command message, ...).
	ErrMessage = errors.New("invalid SPA message")
	// ErrStale: the packet is valid but its timestamp is further from
	// now than the allowed age (fwknopd MAX_SPA_PACKET_AGE). Decode
	// returns the decoded Message together with this error.
	ErrStale = errors.New("SPA packet too old or from the future")

	// ErrKeys: the Keys are unusable (empty or too long, identical
	// encryption and HMAC keys, unknown digest type).
	ErrKeys = errors.New("invalid fwknop keys")
	// ErrTooLong: Encode would produce a packet of 400 characters or
	// more, which a stock fwknopd treats as GPG data and never decrypts
	// with a Rijndael key.
	ErrTooLong = errors.New("SPA packet would be 400 characters or more")
)

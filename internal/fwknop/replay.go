package fwknop

import "crypto/sha256"

// ReplayDigest returns the key fwknopd stores in digest.cache for a
// packet: the '='-stripped base64 of SHA-256 over the payload exactly as
// received (ciphertext and HMAC, no prefix), 43 characters. It needs no
// key, so it can be checked before any decryption (get_raw_digest in
// server/incoming_spa.c).
func ReplayDigest(packet []byte) string {
	s := sha256.Sum256(packet)
	return b64.EncodeToString(s[:])
}

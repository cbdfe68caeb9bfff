// Package totp is RFC 6238 (TOTP) and RFC 4226 (HOTP) arithmetic, and the
// derivation of Sesame's rotating knock sequences from it: a door whose
// sequence changes every period, computed by the client and the gateway
// from a shared secret and the time (docs/configuration.md, "Rotating
// doors").
//
// The package is pure (no I/O) and safe for concurrent use.
package totp

import (
	"crypto/hmac"
	"encoding/binary"
	"hash"
	"time"
)

// Counter is RFC 6238 §4.2's T = floor((Unix time - T0) / X) with T0 = 0
// and X = period, which must be a whole number of seconds ≥ 1 (a shorter
// period counts as 1 s). Times before the Unix epoch give 0.
func Counter(t time.Time, period time.Duration) uint64 {
	x := int64(period / time.Second)
	if x < 1 {
		x = 1
	}
	u := t.Unix()
	if u < 0 {
		return 0
	}
	return uint64(u / x)
}

// Truncate is RFC 4226 §5.3's dynamic truncation of an HMAC value: the low
// four bits of the last byte select an offset, and the 31 bits from there
// are the result. mac must be at least 20 bytes (SHA-1); every HMAC-SHA-x
// value is.
func Truncate(mac []byte) uint32 {
	off := int(mac[len(mac)-1] & 0x0f)
	return binary.BigEndian.Uint32(mac[off:off+4]) & 0x7fffffff
}

// HOTP is RFC 4226's HOTP(K, C) = Truncate(HMAC-H(K, C)) mod 10^digits, with
// C as an 8-byte big-endian counter. digits is from 1 to 9.
func HOTP(h func() hash.Hash, key []byte, counter uint64, digits int) uint32 {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], counter)
	mac := hmac.New(h, key)
	mac.Write(msg[:])
	v := Truncate(mac.Sum(nil))
	mod := uint32(1)
	for range min(max(digits, 1), 9) {
		mod *= 10
	}
	return v % mod
}

// TOTP is RFC 6238's TOTP = HOTP(K, T) with T = Counter(t, period).
func TOTP(h func() hash.Hash, key []byte, t time.Time, period time.Duration, digits int) uint32 {
	return HOTP(h, key, Counter(t, period), digits)
}

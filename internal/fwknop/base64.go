package fwknop

import (
	"encoding/base64"
	"fmt"
)

// b64 is the encoding fwknop writes everywhere: standard alphabet, '='
// padding stripped (lib/base64.c b64_encode + strip_b64_eq).
var b64 = base64.RawStdEncoding

// b64Strict rejects non-zero trailing bits, so every byte string has one
// accepted text form. Used for the outer ciphertext (see Decode).
var b64Strict = base64.RawStdEncoding.Strict()

// b64Map maps a byte to its 6-bit value, or 0xff outside the alphabet.
var b64Map = func() (m [256]byte) {
	for i := range m {
		m[i] = 0xff
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(alphabet); i++ {
		m[alphabet[i]] = byte(i)
	}
	return m
}()

// isB64Char reports whether c is in the standard base64 alphabet (no '=').
func isB64Char(c byte) bool { return b64Map[c] != 0xff }

// lenientB64 decodes s exactly as libfko's b64_decode does: it stops at
// the first '=', rejects any other character outside the alphabet, and
// silently drops leftover bits (a trailing single character decodes to
// nothing). Go's decoders are stricter, and fwknop users have keys and
// fields that only the lenient form accepts.
func lenientB64(s string) ([]byte, error) {
	out := make([]byte, 0, len(s)*3/4+1)
	v := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '=' {
			break
		}
		d := b64Map[c]
		if d == 0xff {
			return nil, fmt.Errorf("invalid base64 character %q at offset %d", c, i)
		}
		v = v<<6 | int(d)
		if i&3 != 0 {
			out = append(out, byte(v>>(6-2*(i&3))))
		}
	}
	return out, nil
}

// DecodeKeyBase64 decodes a KEY_BASE64 / HMAC_KEY_BASE64 value (or the
// client's --key-base64-* options) the way fwknop does: characters must
// be alphanumeric, '+', '/' or '='; decoding stops at the first '='; a
// partial final group is dropped. An empty result is an error.
func DecodeKeyBase64(s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isB64Char(c) && c != '=' {
			return nil, fmt.Errorf("%w: base64 key has invalid character %q", ErrKeys, c)
		}
	}
	k, err := lenientB64(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeys, err)
	}
	if len(k) == 0 {
		return nil, fmt.Errorf("%w: base64 key decodes to nothing", ErrKeys)
	}
	return k, nil
}

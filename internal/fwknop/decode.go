package fwknop

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/subtle"
	"fmt"
	"time"
)

// Packet length limits in characters. fwknopd drops UDP payloads outside
// 140..1500 bytes (MIN_SPA_DATA_SIZE, MAX_SPA_PACKET_LEN) and treats a
// payload of 400 or more as GPG data (MIN_GNUPG_MSG_SIZE), which no
// Rijndael stanza decrypts; Sesame does not implement GPG.
const (
	MinPacketLen = 140
	MaxPacketLen = 1500
	GPGPacketLen = 400
)

// DefaultMaxAge is fwknopd's default MAX_SPA_PACKET_AGE.
const DefaultMaxAge = 120 * time.Second

// saltedPrefix is base64("Salted__") without its last character: fwknop
// removes it from the wire and puts it back before checking the HMAC.
const saltedPrefix = "U2FsdGVkX1"

// DecodeOptions tune Decode. The zero value decodes without an age check.
type DecodeOptions struct {
	// MaxAge, when positive, rejects packets whose timestamp differs from
	// Now by more than MaxAge in either direction (fwknopd
	// MAX_SPA_PACKET_AGE with ENABLE_SPA_PACKET_AGING Y).
	MaxAge time.Duration
	// Now is the reference time for MaxAge.
	Now time.Time
}

// Decode verifies and decrypts one fwknop SPA packet (the UDP payload as
// received, ASCII) with one set of keys, the way fwknopd tries one
// access.conf stanza:
//
//  1. cheap format checks, no crypto (CheckFormat): 140..399 characters,
//     base64 alphabet only (no '='), no "U2FsdGVkX1" prefix, a first
//     character that completes "Salted__";
//  2. with an HMAC key: the last B64Len characters are the HMAC of
//     "U2FsdGVkX1"+rest, compared in constant time before any decryption;
//  3. canonical base64, "Salted__" + salt + whole AES blocks, EVP_BytesToKey
//     and AES-256-CBC (ModeLegacy pads the passphrase with '0');
//  4. PKCS#7 padding is removed when well formed and otherwise left in
//     place, as libfko does (rij_decrypt); the plaintext must start with
//     16 digits and ':' (libfko's "did decryption work" test);
//  5. printable ASCII, at least 6 ':', the inner digest (type from its
//     length, SHA-2 tried before SHA-3) compared in constant time;
//  6. every field, as lib/fko_decode.c validates it;
//  7. with opts.MaxAge > 0, the timestamp.
//
// Every error wraps one of ErrFormat, ErrHMAC, ErrDecrypt, ErrDigest,
// ErrMessage, ErrStale (or ErrKeys for unusable keys). With ErrStale the
// fully decoded Message is returned too: fwknopd burns the replay digest
// of any packet that decrypted, stale or not.
//
// Deliberate differences from libfko, none of which affect a packet an
// fwknop client produces: '=' anywhere and non-canonical base64 are
// rejected (libfko stops decoding at '=' and ignores stray low bits, so
// without an HMAC a replayed packet could be re-spelled to dodge the
// replay cache); the 8 header bytes must read "Salted__" (libfko skips
// them unread); numbers must be
// plain digits; NUL bytes in decoded fields and leading zeros in the
// allow IP are rejected.
func Decode(packet []byte, keys Keys, opts DecodeOptions) (*Message, error) {
	if err := CheckFormat(packet); err != nil {
		return nil, err
	}
	if err := keys.Validate(); err != nil {
		return nil, err
	}
	ct := packet
	if h := keys.hmacHash(); h != 0 {
		n := h.B64Len()
		if len(packet)-n < minEncodedLen {
			return nil, fmt.Errorf("%w: packet too short for an HMAC-%v", ErrHMAC, h)
		}
		ct = packet[:len(packet)-n]
		if !verifyHMAC(h, keys.HMACKey, ct, packet[len(packet)-n:]) {
			return nil, fmt.Errorf("%w (HMAC-%v)", ErrHMAC, h)
		}
	}
	var ptBuf [MaxPacketLen]byte
	pt, err := decrypt(ptBuf[:0], ct, keys)
	if err != nil {
		return nil, err
	}
	m, err := decodePlaintext(pt)
	if err != nil {
		return nil, err
	}
	if opts.MaxAge > 0 {
		d := opts.Now.Sub(time.Unix(m.Timestamp, 0))
		if d > opts.MaxAge || d < -opts.MaxAge {
			return m, fmt.Errorf("%w: timestamp %d is %v from now (limit %v)", ErrStale, m.Timestamp, d.Round(time.Second), opts.MaxAge)
		}
	}
	return m, nil
}

// DecodeString is Decode for a packet held in a string.
func DecodeString(packet string, keys Keys, opts DecodeOptions) (*Message, error) {
	return Decode([]byte(packet), keys, opts)
}

// CheckFormat performs Decode's key-less checks (step 1): length
// 140..399, standard base64 alphabet without '=', no "U2FsdGVkX1" prefix,
// and a first character that completes "Salted__" (see LooksLikeFwknop).
// Errors wrap ErrFormat.
func CheckFormat(packet []byte) error {
	n := len(packet)
	switch {
	case n < MinPacketLen:
		return fmt.Errorf("%w: %d characters, fwknopd ignores fewer than %d", ErrFormat, n, MinPacketLen)
	case n >= GPGPacketLen:
		return fmt.Errorf("%w: %d characters, fwknopd treats %d or more as GPG (not supported)", ErrFormat, n, GPGPacketLen)
	case bytes.HasPrefix(packet, []byte(saltedPrefix)):
		return fmt.Errorf("%w: starts with the %q prefix fwknop clients strip", ErrFormat, saltedPrefix)
	case !saltedFirstChar(packet[0]):
		return fmt.Errorf("%w: first character %q cannot follow %q (the blob must start with \"Salted__\")", ErrFormat, packet[0], saltedPrefix)
	}
	for i, c := range packet {
		if !isB64Char(c) {
			return fmt.Errorf("%w: byte %#02x at offset %d is not base64", ErrFormat, c, i)
		}
	}
	return nil
}

// verifyHMAC compares mac with base64(HMAC_h(key, "U2FsdGVkX1"+ct)) in
// constant time.
func verifyHMAC(h Hash, key, ct, mac []byte) bool {
	want := hmacB64(h, key, ct)
	return hmac.Equal(want, mac)
}

// hmacB64 returns the '='-stripped base64 HMAC fwknop appends.
func hmacB64(h Hash, key, ct []byte) []byte {
	mac := hmac.New(h.New, key)
	mac.Write([]byte(saltedPrefix))
	mac.Write(ct)
	var sum [64]byte
	s := mac.Sum(sum[:0])
	out := make([]byte, b64.EncodedLen(len(s)))
	b64.Encode(out, s)
	return out
}

// decrypt base64-decodes "U2FsdGVkX1"+ct, decrypts it with keys and
// removes well-formed PKCS#7 padding, appending the plaintext to dst.
func decrypt(dst, ct []byte, keys Keys) ([]byte, error) {
	var textBuf [MaxPacketLen + len(saltedPrefix)]byte
	text := append(append(textBuf[:0], saltedPrefix...), ct...)
	var blobBuf [MaxPacketLen]byte
	if b64Strict.DecodedLen(len(text)) > len(blobBuf) {
		return nil, fmt.Errorf("%w: ciphertext too long", ErrFormat)
	}
	n, err := b64Strict.Decode(blobBuf[:], text)
	if err != nil {
		return nil, fmt.Errorf("%w: ciphertext is not canonical base64", ErrDecrypt)
	}
	blob := blobBuf[:n]
	if len(blob) < 32 || len(blob)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("%w: ciphertext is %d bytes, not salt + whole AES blocks", ErrDecrypt, len(blob))
	}
	if string(blob[:8]) != "Salted__" {
		return nil, fmt.Errorf("%w: no Salted__ header", ErrFormat)
	}
	key, iv := deriveKeyIV(passphrase(keys.Key, keys.Mode), blob[8:16])
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDecrypt, err)
	}
	body := blob[16:]
	cipher.NewCBCDecrypter(block, iv[:]).CryptBlocks(body, body)
	body = unpadLenient(body)
	if len(body) < minEncodedLen || len(body) >= maxEncodedLen {
		return nil, fmt.Errorf("%w: plaintext of %d bytes", ErrDecrypt, len(body))
	}
	if !isDigits(string(body[:randLen])) || body[randLen] != ':' {
		return nil, fmt.Errorf("%w: plaintext does not start with the 16-digit random value (wrong key or mode?)", ErrDecrypt)
	}
	return append(dst, body...), nil
}

// unpadLenient removes PKCS#7 padding when the last byte p is 1..16 and
// the last p bytes all equal p; otherwise it leaves b unchanged, as
// libfko's rij_decrypt does (some old clients sent unpadded plaintexts).
func unpadLenient(b []byte) []byte {
	p := int(b[len(b)-1])
	if p == 0 || p > aes.BlockSize || p > len(b) {
		return b
	}
	for _, c := range b[len(b)-p:] {
		if int(c) != p {
			return b
		}
	}
	return b[:len(b)-p]
}

// decodePlaintext checks the inner digest and parses ENCODED:DIGEST.
func decodePlaintext(pt []byte) (*Message, error) {
	for i, c := range pt {
		if c < 0x20 || c > 0x7e {
			return nil, fmt.Errorf("%w: non-printable byte %#02x at offset %d", ErrMessage, c, i)
		}
	}
	if bytes.Count(pt, []byte{':'}) < 6 {
		return nil, fmt.Errorf("%w: fewer than 7 fields", ErrMessage)
	}
	last := bytes.LastIndexByte(pt, ':')
	enc, dig := pt[:last], pt[last+1:]
	h := hashForDigestLen(len(dig))
	if h == 0 {
		return nil, fmt.Errorf("%w: digest of %d characters matches no digest type", ErrMessage, len(dig))
	}
	if !digestMatches(h, enc, dig) {
		switch h {
		case SHA256:
			h = SHA3_256
		case SHA512:
			h = SHA3_512
		default:
			return nil, fmt.Errorf("%w (%v)", ErrDigest, h)
		}
		if !digestMatches(h, enc, dig) {
			return nil, fmt.Errorf("%w (SHA-2 or SHA-3 of %d bits)", ErrDigest, h.Size()*8)
		}
	}
	m := &Message{Digest: h}
	if err := parseEncoded(string(enc), m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMessage, err)
	}
	return m, nil
}

// digestMatches compares base64(H(enc)) with dig in constant time.
func digestMatches(h Hash, enc, dig []byte) bool {
	var sum [64]byte
	var text [86]byte
	s := h.sum(sum[:0], enc)
	b64.Encode(text[:], s)
	return subtle.ConstantTimeCompare(text[:b64.EncodedLen(len(s))], dig) == 1
}

package fwknop

import (
	"encoding/base64"
	"fmt"
	"io"
)

// KeyGenHMACLen is the HMAC key length fwknop --key-gen uses for h
// (fko_key_gen): the block size for SHA-256 (64), SHA-384 and SHA-512
// (128); the digest size for MD5 (16) and SHA-1 (20); for SHA3 fwknop
// 2.6.10 has no special case and falls back to 64 bytes.
func KeyGenHMACLen(h Hash) int {
	switch h {
	case MD5:
		return 16
	case SHA1:
		return 20
	case SHA384, SHA512:
		return 128
	}
	return 64
}

// GenerateKeys returns fresh keys as fwknop --key-gen makes them: a
// 32-byte Rijndael key and an HMAC key of KeyGenHMACLen(h) bytes, read
// from r. Print them with EncodeKeyBase64.
func GenerateKeys(r io.Reader, h Hash) (Keys, error) {
	if h == 0 {
		h = SHA256
	}
	if !h.Valid() {
		return Keys{}, fmt.Errorf("%w: invalid HMAC digest type %d", ErrKeys, h)
	}
	k := Keys{Key: make([]byte, MaxKeyLen), HMACKey: make([]byte, KeyGenHMACLen(h)), HMACHash: h}
	if _, err := io.ReadFull(r, k.Key); err != nil {
		return Keys{}, fmt.Errorf("fwknop key-gen: %w", err)
	}
	if _, err := io.ReadFull(r, k.HMACKey); err != nil {
		return Keys{}, fmt.Errorf("fwknop key-gen: %w", err)
	}
	return k, nil
}

// EncodeKeyBase64 formats a key for KEY_BASE64 / HMAC_KEY_BASE64 the
// way fwknop --key-gen prints it: standard base64 with '=' padding.
func EncodeKeyBase64(k []byte) string { return base64.StdEncoding.EncodeToString(k) }

package fwknop

import (
	"bytes"
	"crypto/md5"
	"fmt"
	"strings"
)

// Mode is the Rijndael mode of an fwknop stanza (ENCRYPTION_MODE,
// fwknop -M). The zero value is CBC, fwknop's default.
type Mode uint8

// Supported encryption modes. fwknop also knows ECB, CFB, OFB, CTR and
// Asymmetric (GPG); Sesame rejects them at configuration time.
const (
	// ModeCBC: AES-256-CBC, key and IV from EVP_BytesToKey(MD5) over the
	// passphrase and the salt, as "openssl enc -aes-256-cbc -md md5".
	ModeCBC Mode = iota
	// ModeLegacy: fwknop's pre-2.5 "legacy IV" mode: as CBC, but the
	// passphrase is right-padded with ASCII '0' to 16 bytes, and a
	// longer one is cut to 16 bytes (fwknopd and the fwknop client both
	// truncate; they warn).
	ModeLegacy
)

// ParseMode reads ENCRYPTION_MODE values: "CBC" or "legacy" in any case.
// The other modes fwknop knows are reported as unsupported.
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(s) {
	case "cbc":
		return ModeCBC, nil
	case "legacy":
		return ModeLegacy, nil
	case "ecb", "cfb", "ofb", "ctr", "pcbc", "asymmetric":
		return 0, fmt.Errorf("encryption mode %q is not supported by Sesame (use CBC or legacy)", s)
	}
	return 0, fmt.Errorf("unknown encryption mode %q (want CBC or legacy)", s)
}

// String returns "CBC" or "legacy".
func (m Mode) String() string {
	if m == ModeLegacy {
		return "legacy"
	}
	if m == ModeCBC {
		return "CBC"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// Limits from libfko.
const (
	MaxKeyLen     = 32  // RIJNDAEL_MAX_KEYSIZE
	MaxHMACKeyLen = 136 // MAX_DIGEST_BLOCK_LEN (the SHA3-256 block)
)

// Keys is the key material of one access.conf stanza or one client run.
// The zero value is unusable; Key must be set.
type Keys struct {
	// Key is the Rijndael passphrase: the bytes of KEY, or the decoded
	// KEY_BASE64. 1..32 bytes.
	Key []byte
	// HMACKey is the HMAC key (HMAC_KEY or decoded HMAC_KEY_BASE64),
	// 1..136 bytes. Empty means the packets carry no HMAC.
	HMACKey []byte
	// HMACHash is HMAC_DIGEST_TYPE; zero means SHA256. Ignored without
	// an HMACKey.
	HMACHash Hash
	// Mode is ENCRYPTION_MODE.
	Mode Mode
}

// hmacHash returns the effective HMAC algorithm, 0 when there is no HMAC.
func (k *Keys) hmacHash() Hash {
	if len(k.HMACKey) == 0 {
		return 0
	}
	if k.HMACHash == 0 {
		return SHA256
	}
	return k.HMACHash
}

// Validate applies fwknop's checks on key material: lengths, a known
// HMAC type, a legacy-mode key not combined with HMAC (the 2.6.10 client
// refuses; fwknopd would accept, so only Encode enforces that), and
// distinct encryption and HMAC keys (fwknopd refuses such a stanza).
func (k *Keys) Validate() error {
	if len(k.Key) == 0 || len(k.Key) > MaxKeyLen {
		return fmt.Errorf("%w: encryption key must be 1..%d bytes, got %d", ErrKeys, MaxKeyLen, len(k.Key))
	}
	if k.Mode != ModeCBC && k.Mode != ModeLegacy {
		return fmt.Errorf("%w: unsupported encryption mode %v", ErrKeys, k.Mode)
	}
	if len(k.HMACKey) > 0 {
		if len(k.HMACKey) > MaxHMACKeyLen {
			return fmt.Errorf("%w: HMAC key must be 1..%d bytes, got %d", ErrKeys, MaxHMACKeyLen, len(k.HMACKey))
		}
		if k.HMACHash != 0 && !k.HMACHash.Valid() {
			return fmt.Errorf("%w: invalid HMAC digest type %d", ErrKeys, k.HMACHash)
		}
		if bytes.Equal(k.Key, k.HMACKey) {
			return fmt.Errorf("%w: the encryption key and the HMAC key must differ", ErrKeys)
		}
	}
	return nil
}

// passphrase returns the bytes that enter the KDF for mode m.
func passphrase(key []byte, m Mode) []byte {
	if m != ModeLegacy {
		return key
	}
	p := make([]byte, 16)
	n := copy(p, key)
	for i := n; i < 16; i++ {
		p[i] = '0'
	}
	return p
}

// deriveKeyIV is OpenSSL's EVP_BytesToKey with MD5, one iteration and an
// 8-byte salt, as libfko's rij_salt_and_iv computes it:
// D1 = MD5(pass||salt), Di = MD5(Di-1||pass||salt); key = D1||D2, IV = D3.
func deriveKeyIV(pass, salt []byte) (key [32]byte, iv [16]byte) {
	var buf [md5.Size + MaxKeyLen + 8]byte
	n := copy(buf[md5.Size:], pass)
	n += copy(buf[md5.Size+n:], salt)
	d1 := md5.Sum(buf[md5.Size : md5.Size+n])
	copy(buf[:], d1[:])
	d2 := md5.Sum(buf[:md5.Size+n])
	copy(buf[:], d2[:])
	d3 := md5.Sum(buf[:md5.Size+n])
	copy(key[:16], d1[:])
	copy(key[16:], d2[:])
	copy(iv[:], d3[:])
	return key, iv
}

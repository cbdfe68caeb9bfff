package fwknop

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"fmt"
	"hash"
	"strings"
)

// Hash names a digest algorithm with libfko's numbering (fko_digest_type_t
// and fko_hmac_type_t share it). It selects the inner SPA digest
// (fwknop -m, --digest-type) and the HMAC (HMAC_DIGEST_TYPE,
// --hmac-digest-type). The zero value means "not set"; callers substitute
// the default, SHA256.
type Hash uint8

// The algorithms fwknop 2.6.10 supports, in libfko's numbering.
const (
	MD5      Hash = 1
	SHA1     Hash = 2
	SHA256   Hash = 3
	SHA384   Hash = 4
	SHA512   Hash = 5
	SHA3_256 Hash = 6
	SHA3_512 Hash = 7
)

var hashNames = [...]string{"", "md5", "sha1", "sha256", "sha384", "sha512", "sha3_256", "sha3_512"}

// ParseHash reads the names fwknop accepts (case-insensitive): md5, sha1,
// sha256, sha384, sha512, sha3_256, sha3_512.
func ParseHash(s string) (Hash, error) {
	for i, n := range hashNames {
		if i > 0 && strings.EqualFold(s, n) {
			return Hash(i), nil
		}
	}
	return 0, fmt.Errorf("unknown digest type %q (want md5, sha1, sha256, sha384, sha512, sha3_256 or sha3_512)", s)
}

// Valid reports whether h is one of the seven algorithms.
func (h Hash) Valid() bool { return h >= MD5 && h <= SHA3_512 }

// String returns fwknop's lower-case name ("sha256"), or "Hash(N)".
func (h Hash) String() string {
	if h.Valid() {
		return hashNames[h]
	}
	return fmt.Sprintf("Hash(%d)", uint8(h))
}

// MarshalText implements encoding.TextMarshaler with the names of ParseHash.
func (h Hash) MarshalText() ([]byte, error) {
	if !h.Valid() {
		return nil, fmt.Errorf("invalid digest type %d", uint8(h))
	}
	return []byte(h.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (h *Hash) UnmarshalText(b []byte) error {
	v, err := ParseHash(string(b))
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// Size is the digest length in bytes.
func (h Hash) Size() int {
	switch h {
	case MD5:
		return md5.Size
	case SHA1:
		return sha1.Size
	case SHA256, SHA3_256:
		return 32
	case SHA384:
		return 48
	case SHA512, SHA3_512:
		return 64
	}
	return 0
}

// B64Len is the length of the digest in '='-stripped base64, the form
// fwknop puts on the wire: 22, 27, 43, 64 or 86.
func (h Hash) B64Len() int { return (h.Size()*8 + 5) / 6 }

// New returns a fresh hash.Hash for h; it panics on an invalid h.
func (h Hash) New() hash.Hash {
	switch h {
	case MD5:
		return md5.New()
	case SHA1:
		return sha1.New()
	case SHA256:
		return sha256.New()
	case SHA384:
		return sha512.New384()
	case SHA512:
		return sha512.New()
	case SHA3_256:
		return sha3.New256()
	case SHA3_512:
		return sha3.New512()
	}
	panic("fwknop: invalid hash " + h.String())
}

// sum appends H(data) to dst without allocating a hash.Hash for the
// common algorithms.
func (h Hash) sum(dst, data []byte) []byte {
	switch h {
	case MD5:
		s := md5.Sum(data)
		return append(dst, s[:]...)
	case SHA1:
		s := sha1.Sum(data)
		return append(dst, s[:]...)
	case SHA256:
		s := sha256.Sum256(data)
		return append(dst, s[:]...)
	case SHA384:
		s := sha512.Sum384(data)
		return append(dst, s[:]...)
	case SHA512:
		s := sha512.Sum512(data)
		return append(dst, s[:]...)
	case SHA3_256:
		s := sha3.Sum256(data)
		return append(dst, s[:]...)
	case SHA3_512:
		s := sha3.Sum512(data)
		return append(dst, s[:]...)
	}
	panic("fwknop: invalid hash " + h.String())
}

// hashForDigestLen maps the length of a base64 inner digest to the
// algorithm libfko tries first (is_valid_digest_len). For 43 and 86 chars
// SHA-2 is tried before SHA-3.
func hashForDigestLen(n int) Hash {
	switch n {
	case 22:
		return MD5
	case 27:
		return SHA1
	case 43:
		return SHA256
	case 64:
		return SHA384
	case 86:
		return SHA512
	}
	return 0
}

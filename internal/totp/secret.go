package totp

import (
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
)

// MaxSecretFile bounds the size of a secret file read by ParseSecret.
const MaxSecretFile = 4096

// ParseSecret reads a shared secret file: the key in base32 (RFC 4648, the
// alphabet authenticator apps use), upper or lower case, with or without
// "=" padding; spaces and dashes inside are ignored, as are blank lines and
// lines starting with "#". Exactly one key line is allowed. The key must be
// at least MinKeyLen bytes. Generate one with
//
//	head -c 20 /dev/urandom | base32
func ParseSecret(b []byte) ([]byte, error) {
	if len(b) > MaxSecretFile {
		return nil, fmt.Errorf("secret file larger than %d bytes", MaxSecretFile)
	}
	var keyLine string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if keyLine != "" {
			return nil, errors.New("secret file has more than one key line")
		}
		keyLine = line
	}
	if keyLine == "" {
		return nil, errors.New("secret file has no key")
	}
	clean := strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' || r == '\t' {
			return -1
		}
		return r
	}, strings.ToUpper(keyLine))
	clean = strings.TrimRight(clean, "=")
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(clean)
	if err != nil {
		return nil, fmt.Errorf("secret is not base32 (RFC 4648): %w", err)
	}
	if len(key) < MinKeyLen {
		return nil, fmt.Errorf("secret of %d bytes, at least %d (128 bits)", len(key), MinKeyLen)
	}
	return key, nil
}

// Package certfile reads and writes the files of certificate SPA
// (docs/pki.md): private keys (PEM "PRIVATE KEY", PKCS #8; Ed25519 or
// ECDSA P-256), certificates (PEM "CERTIFICATE") and whole-file atomic
// replacement. Private key files are created 0600 and never overwritten,
// and a private key file that group or others may access is refused, as
// package spakey does for raw identity keys (an Ed25519 certificate key
// file is also a valid spakey identity file).
//
// Only the functions named Read*, Write* and LoadIdentity touch the file
// system; the rest is pure. Everything is safe for concurrent use.
package certfile

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// KeyType names a supported key algorithm.
type KeyType string

// Supported key types. Ed25519 makes the smallest certificates and
// packets, and is the default.
const (
	Ed25519 KeyType = "ed25519"
	P256    KeyType = "p256"
)

// ParseKeyType reads "ed25519" or "p256" (also "ecdsa-p256", "P-256").
func ParseKeyType(s string) (KeyType, error) {
	switch s {
	case "ed25519", "Ed25519":
		return Ed25519, nil
	case "p256", "P256", "P-256", "ecdsa-p256", "ecdsa":
		return P256, nil
	}
	return "", fmt.Errorf("unknown key type %q (want ed25519 or p256)", s)
}

// TypeOf names the type of a public or private key, or "" if unsupported.
func TypeOf(key any) KeyType {
	switch k := key.(type) {
	case ed25519.PublicKey, ed25519.PrivateKey:
		return Ed25519
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return P256
		}
	case *ecdsa.PrivateKey:
		if k.Curve == elliptic.P256() {
			return P256
		}
	}
	return ""
}

// GenerateKey makes a new key of type t from crypto/rand.
func GenerateKey(t KeyType) (crypto.Signer, error) {
	switch t {
	case Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	case P256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	return nil, fmt.Errorf("generate key: unknown key type %q", t)
}

const maxFileSize = 64 << 10

// Errors callers branch on.
var (
	// ErrFormat: not a PEM file of the expected kind.
	ErrFormat = errors.New("invalid file")
	// ErrPermissions: a private key file is accessible by group or others.
	ErrPermissions = errors.New("private key file is accessible by others")
)

// MarshalKey encodes key as a PEM "PRIVATE KEY" block (PKCS #8).
func MarshalKey(key crypto.Signer) ([]byte, error) {
	if TypeOf(key) == "" {
		return nil, fmt.Errorf("encode key: unsupported key %T", key)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseKey decodes one PEM "PRIVATE KEY" block holding an Ed25519 or
// ECDSA P-256 key; anything but white space around it is refused.
func ParseKey(b []byte) (crypto.Signer, error) {
	block, rest := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrFormat)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: data after the PEM block", ErrFormat)
	}
	if block.Type != "PRIVATE KEY" || len(block.Headers) != 0 {
		return nil, fmt.Errorf("%w: PEM block %q, want \"PRIVATE KEY\" (PKCS #8; convert with openssl pkey)", ErrFormat, block.Type)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok || TypeOf(s) == "" {
		return nil, fmt.Errorf("%w: %T keys are not supported (want Ed25519 or ECDSA P-256)", ErrFormat, k)
	}
	return s, nil
}

// WriteKey writes key to a new file at path, mode 0600. It never
// overwrites (the error wraps fs.ErrExist); a partly written file is
// removed.
func WriteKey(path string, key crypto.Signer) error {
	data, err := MarshalKey(key)
	if err != nil {
		return err
	}
	return writeNew(path, data, 0o600)
}

// ReadKey reads a private key file, refusing (ErrPermissions) one whose
// mode grants anything to group or others, like OpenSSH.
func ReadKey(path string) (crypto.Signer, error) {
	data, err := readFile(path, true)
	if err != nil {
		return nil, err
	}
	k, err := ParseKey(data)
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", path, err)
	}
	return k, nil
}

// writeNew creates path with O_EXCL and exactly perm, writes and syncs.
func writeNew(path string, data []byte, perm os.FileMode) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(path)
		}
	}()
	if err := f.Chmod(perm); err != nil { // whatever the umask
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

// readFile reads a regular file of at most 64 KiB; private refuses group
// or other access.
func readFile(path string, private bool) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("read %s: %w: not a regular file", path, ErrFormat)
	}
	if perm := fi.Mode().Perm(); private && perm&0o077 != 0 {
		return nil, fmt.Errorf("read key %s: %w (mode %04o; run chmod 600 %s)", path, ErrPermissions, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("read %s: %w: larger than %d bytes", path, ErrFormat, maxFileSize)
	}
	return data, nil
}

package spakey

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
)

const pemType = "PRIVATE KEY"

// maxFileSize bounds ReadFile; a key file is about 120 bytes.
const maxFileSize = 64 << 10

// Errors callers branch on.
var (
	// ErrFormat: the data is not a PEM PKCS #8 key of a supported kind.
	ErrFormat = errors.New("invalid key file")
	// ErrPermissions: a private key file is accessible by group or others.
	ErrPermissions = errors.New("private key file is accessible by others")
)

// PrivateKey is the content of a key file: an Ed25519 identity or an X25519
// gateway key.
type PrivateKey struct {
	kind Kind
	id   ed25519.PrivateKey
	gw   *ecdh.PrivateKey
}

// Generate makes a new key of the given kind from crypto/rand.
func Generate(kind Kind) (*PrivateKey, error) {
	switch kind {
	case Identity:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate identity key: %w", err)
		}
		return &PrivateKey{kind: Identity, id: priv}, nil
	case Gateway:
		priv, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate gateway key: %w", err)
		}
		return &PrivateKey{kind: Gateway, gw: priv}, nil
	}
	return nil, fmt.Errorf("generate: unknown key kind %v", kind)
}

// NewIdentity wraps an existing Ed25519 key.
func NewIdentity(priv ed25519.PrivateKey) (*PrivateKey, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: ed25519 private key of %d bytes", ErrFormat, len(priv))
	}
	return &PrivateKey{kind: Identity, id: priv}, nil
}

// NewGateway wraps an existing X25519 key.
func NewGateway(priv *ecdh.PrivateKey) (*PrivateKey, error) {
	if priv == nil || priv.Curve() != ecdh.X25519() {
		return nil, fmt.Errorf("%w: not an X25519 private key", ErrFormat)
	}
	return &PrivateKey{kind: Gateway, gw: priv}, nil
}

// Kind is Identity or Gateway.
func (k *PrivateKey) Kind() Kind { return k.kind }

// Identity is the Ed25519 key (for spa.KeyIdentity), or nil for a gateway
// key.
func (k *PrivateKey) Identity() ed25519.PrivateKey { return k.id }

// Gateway is the X25519 key (for spa.NewOpener), or nil for an identity.
func (k *PrivateKey) Gateway() *ecdh.PrivateKey { return k.gw }

// Public is the public half, whose String is what keygen prints.
func (k *PrivateKey) Public() PublicKey {
	p := PublicKey{kind: k.kind}
	if k.kind == Identity {
		copy(p.raw[:], k.id.Public().(ed25519.PublicKey))
	} else {
		copy(p.raw[:], k.gw.PublicKey().Bytes())
	}
	return p
}

// MarshalPEM encodes the key as a PEM "PRIVATE KEY" block (PKCS #8).
func (k *PrivateKey) MarshalPEM() ([]byte, error) {
	var key any = k.id
	if k.kind == Gateway {
		key = k.gw
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode %v key: %w", k.kind, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der}), nil
}

// ParsePEM decodes one PEM "PRIVATE KEY" block holding an Ed25519 or X25519
// PKCS #8 key. Anything but white space around the block is refused.
func ParsePEM(b []byte) (*PrivateKey, error) {
	block, rest := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrFormat)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: data after the PEM block", ErrFormat)
	}
	if block.Type == "ENCRYPTED PRIVATE KEY" {
		return nil, fmt.Errorf("%w: encrypted keys are not supported (use openssl pkey to decrypt)", ErrFormat)
	}
	if block.Type != pemType || len(block.Headers) != 0 {
		return nil, fmt.Errorf("%w: PEM block %q, want %q", ErrFormat, block.Type, pemType)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	switch key := key.(type) {
	case ed25519.PrivateKey:
		return NewIdentity(key)
	case *ecdh.PrivateKey:
		return NewGateway(key)
	}
	return nil, fmt.Errorf("%w: %T keys are not used by Sesame (want Ed25519 or X25519)", ErrFormat, key)
}

// WriteFile writes k to a new file at path with mode 0600. It never
// overwrites: if path exists the error wraps fs.ErrExist. A partly written
// file is removed.
func WriteFile(path string, k *PrivateKey) (err error) {
	data, err := k.MarshalPEM()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(path)
		}
	}()
	if err := f.Chmod(0o600); err != nil { // exactly 0600 whatever the umask
		return fmt.Errorf("write key: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	return nil
}

// ReadFile reads a key file. It refuses (ErrPermissions) a file whose mode
// grants any permission to group or others, like OpenSSH does, and files
// that are not regular or larger than 64 KiB.
func ReadFile(path string) (*PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat() // the opened file, not the path: no race with a rename
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("read key %s: %w: not a regular file", path, ErrFormat)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("read key %s: %w (mode %04o; run chmod 600 %s)", path, ErrPermissions, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("read key %s: %w: larger than %d bytes", path, ErrFormat, maxFileSize)
	}
	k, err := ParsePEM(data)
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", path, err)
	}
	return k, nil
}

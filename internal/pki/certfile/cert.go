package certfile

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sesame-gw/sesame/internal/spa"
)

const certPEM = "CERTIFICATE"

// MarshalCerts encodes DER certificates as consecutive PEM "CERTIFICATE"
// blocks.
func MarshalCerts(ders ...[]byte) []byte {
	var out []byte
	for _, d := range ders {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: certPEM, Bytes: d})...)
	}
	return out
}

// ParseCerts decodes one or more PEM "CERTIFICATE" blocks (leaf first) and
// parses each; anything else in the data is refused.
func ParseCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := data
	for {
		block, r := pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != certPEM {
			return nil, fmt.Errorf("%w: PEM block %q, want %q", ErrFormat, block.Type, certPEM)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate %d: %v", ErrFormat, len(out)+1, err)
		}
		out = append(out, c)
		rest = r
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no PEM CERTIFICATE block", ErrFormat)
	}
	for _, b := range rest {
		if b != ' ' && b != '\t' && b != '\r' && b != '\n' {
			return nil, fmt.Errorf("%w: data after the last certificate", ErrFormat)
		}
	}
	return out, nil
}

// ReadCerts reads a PEM certificate file (a chain: leaf first).
func ReadCerts(path string) ([]*x509.Certificate, error) {
	data, err := readFile(path, false)
	if err != nil {
		return nil, err
	}
	cs, err := ParseCerts(data)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return cs, nil
}

// ReadCert reads a PEM file holding exactly one certificate (ca.crt).
func ReadCert(path string) (*x509.Certificate, error) {
	cs, err := ReadCerts(path)
	if err != nil {
		return nil, err
	}
	if len(cs) != 1 {
		return nil, fmt.Errorf("read %s: %w: %d certificates, want one", path, ErrFormat, len(cs))
	}
	return cs[0], nil
}

// WriteCert writes certificates to a new PEM file (mode 0644); it never
// overwrites.
func WriteCert(path string, ders ...[]byte) error {
	return writeNew(path, MarshalCerts(ders...), 0o644)
}

// LoadIdentity reads a client certificate (chain, leaf first) and its
// private key, for spa.Seal: `sesame open --cert alice.crt --key
// alice.key`. The key must match the certificate and be private (0600).
func LoadIdentity(certPath, keyPath string) (spa.Identity, error) {
	certs, err := ReadCerts(certPath)
	if err != nil {
		return spa.Identity{}, err
	}
	key, err := ReadKey(keyPath)
	if err != nil {
		return spa.Identity{}, err
	}
	chain := make([][]byte, len(certs))
	for i, c := range certs {
		chain[i] = c.Raw
	}
	id, err := spa.CertIdentity(chain, key)
	if err != nil {
		return spa.Identity{}, fmt.Errorf("%s and %s: %w", certPath, keyPath, err)
	}
	return id, nil
}

// WriteAtomic replaces path with data: a temporary file in the same
// directory, fsync, rename, directory fsync. Readers see the old or the
// new content, never a mix (a CRL being reloaded, the CA index).
func WriteAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(perm); err != nil {
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
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

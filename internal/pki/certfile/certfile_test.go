package certfile

import (
	"crypto"
	"crypto/ed25519"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/spa"
	"github.com/sesame-gw/sesame/internal/spakey"
)

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	for _, kt := range []KeyType{Ed25519, P256} {
		key, err := GenerateKey(kt)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, string(kt)+".key")
		if err := WriteKey(path, key); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v, %v", kt, fi.Mode(), err)
		}
		if err := WriteKey(path, key); !errors.Is(err, fs.ErrExist) {
			t.Errorf("%s: overwrite: %v, want fs.ErrExist", kt, err)
		}
		back, err := ReadKey(path)
		if err != nil {
			t.Fatal(err)
		}
		if TypeOf(back) != kt || !back.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
			t.Errorf("%s: read back another key", kt)
		}
		if err := os.Chmod(path, 0o640); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadKey(path); !errors.Is(err, ErrPermissions) {
			t.Errorf("%s: group-readable key: %v, want ErrPermissions", kt, err)
		}
	}
	// An Ed25519 certificate key is also a raw identity key file.
	if err := os.Chmod(filepath.Join(dir, "ed25519.key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := spakey.ReadFile(filepath.Join(dir, "ed25519.key")); err != nil {
		t.Errorf("spakey cannot read an Ed25519 certificate key: %v", err)
	}
}

func TestParseKeyRejects(t *testing.T) {
	for name, data := range map[string]string{
		"empty":     "",
		"garbage":   "hello",
		"wrong PEM": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
		"bad DER":   "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
	} {
		if _, err := ParseKey([]byte(data)); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v, want ErrFormat", name, err)
		}
	}
	if _, err := ParseKeyType("rsa"); err == nil {
		t.Error("rsa accepted as a key type")
	}
}

func selfSigned(t *testing.T, key ed25519.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<32, 0)}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestCertsAndIdentity(t *testing.T) {
	dir := t.TempDir()
	_, key, _ := ed25519.GenerateKey(nil)
	der := selfSigned(t, key)
	cp, kp := filepath.Join(dir, "a.crt"), filepath.Join(dir, "a.key")
	if err := WriteCert(cp, der); err != nil {
		t.Fatal(err)
	}
	if err := WriteKey(kp, key); err != nil {
		t.Fatal(err)
	}
	c, err := ReadCert(cp)
	if err != nil || string(c.Raw) != string(der) {
		t.Fatalf("ReadCert: %v", err)
	}
	id, err := LoadIdentity(cp, kp)
	if err != nil {
		t.Fatal(err)
	}
	if id.Credential.Kind != spa.CredX509 {
		t.Errorf("identity kind %v", id.Credential.Kind)
	}
	_, other, _ := ed25519.GenerateKey(nil)
	op := filepath.Join(dir, "other.key")
	if err := WriteKey(op, other); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadIdentity(cp, op); err == nil {
		t.Error("LoadIdentity accepted a key that does not match the certificate")
	}
	for name, data := range map[string]string{
		"no block":      "nothing",
		"key, not cert": string(mustMarshal(t, key)),
		"trailing junk": string(MarshalCerts(der)) + "junk",
	} {
		if _, err := ParseCerts([]byte(data)); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v, want ErrFormat", name, err)
		}
	}
	two := filepath.Join(dir, "two.crt")
	if err := WriteCert(two, der, der); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadCert(two); !errors.Is(err, ErrFormat) {
		t.Errorf("ReadCert of two certificates: %v", err)
	}
}

func mustMarshal(t *testing.T, key ed25519.PrivateKey) []byte {
	t.Helper()
	b, err := MarshalKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "crl.pem")
	for _, content := range []string{"one", "two"} {
		if err := WriteAtomic(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != content {
			t.Fatalf("read %q, %v", got, err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

package spakey

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/spa"
)

func seq(b byte) []byte {
	out := make([]byte, 32)
	for i := range out {
		out[i] = b + byte(i)
	}
	return out
}

// Known answers: fixed keys give fixed text (base64url of RFC 8032 / RFC
// 7748 public keys). The expected strings were computed independently with
// pyca/cryptography.
func TestPublicTextKnownAnswers(t *testing.T) {
	id, _ := NewIdentity(ed25519.NewKeyFromSeed(seq(0)))
	xk, err := ecdh.X25519().NewPrivateKey(seq(0))
	if err != nil {
		t.Fatal(err)
	}
	gw, _ := NewGateway(xk)
	for _, c := range []struct{ got, want string }{
		{id.Public().String(), "sesame-id1:A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg"},
		{gw.Public().String(), "sesame-gw1:j0DFrbaPJWJK5bIU6nZ6bslNgp09e14a0bpvPiE4KF8"},
	} {
		if c.got != c.want {
			t.Errorf("got %s, want %s", c.got, c.want)
		}
	}
}

func TestGenerateWriteRead(t *testing.T) {
	dir := t.TempDir()
	for _, kind := range []Kind{Identity, Gateway} {
		t.Run(kind.String(), func(t *testing.T) {
			k, err := Generate(kind)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, kind.String()+".key")
			if err := WriteFile(path, k); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("mode %v, %v; want 0600", fi.Mode(), err)
			}
			back, err := ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if back.Kind() != kind || back.Public() != k.Public() {
				t.Fatalf("read back %v %v, wrote %v %v", back.Kind(), back.Public(), kind, k.Public())
			}
			text := k.Public().String()
			p, err := ParsePublic(text + "\n")
			if err != nil || p != k.Public() || p.String() != text || len(text) != 54 {
				t.Fatalf("public text %q round trip: %v, %v", text, p, err)
			}
			if kind == Identity {
				if back.Identity() == nil || back.Gateway() != nil || !back.Identity().Equal(k.Identity()) {
					t.Error("identity accessors")
				}
				if _, err := ParseGateway(text); !errors.Is(err, ErrPublicKey) {
					t.Errorf("identity text accepted as a gateway key: %v", err)
				}
				pub, err := ParseIdentity(text)
				if err != nil || !pub.Equal(k.Identity().Public()) || FormatIdentity(pub) != text {
					t.Errorf("ParseIdentity: %v", err)
				}
			} else {
				if back.Gateway() == nil || back.Identity() != nil || !back.Gateway().Equal(k.Gateway()) {
					t.Error("gateway accessors")
				}
				if _, err := ParseIdentity(text); !errors.Is(err, ErrPublicKey) {
					t.Errorf("gateway text accepted as a client key: %v", err)
				}
				pub, err := ParseGateway(text)
				if err != nil || !pub.Equal(k.Gateway().PublicKey()) || FormatGateway(pub) != text {
					t.Errorf("ParseGateway: %v", err)
				}
			}
		})
	}
}

func TestWriteFileRefusesOverwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "id.key")
	if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	k, _ := Generate(Identity)
	if err := WriteFile(path, k); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("WriteFile over an existing file: %v, want fs.ErrExist", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Fatalf("existing file changed: %q", b)
	}
	// Not even through a dangling symlink.
	link := filepath.Join(t.TempDir(), "link.key")
	os.Symlink(filepath.Join(t.TempDir(), "target"), link)
	if err := WriteFile(link, k); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("WriteFile through a symlink: %v, want fs.ErrExist", err)
	}
}

func TestReadFilePermissions(t *testing.T) {
	dir := t.TempDir()
	k, _ := Generate(Identity)
	pemBytes, _ := k.MarshalPEM()
	for _, c := range []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o600, true}, {0o400, true}, {0o700, true},
		{0o640, false}, {0o604, false}, {0o644, false}, {0o660, false}, {0o602, false}, {0o610, false}, {0o666, false},
	} {
		path := filepath.Join(dir, c.mode.String())
		os.WriteFile(path, pemBytes, 0o600)
		if err := os.Chmod(path, c.mode); err != nil {
			t.Fatal(err)
		}
		_, err := ReadFile(path)
		if c.ok && err != nil {
			t.Errorf("mode %04o refused: %v", c.mode, err)
		}
		if !c.ok && !errors.Is(err, ErrPermissions) {
			t.Errorf("mode %04o: %v, want ErrPermissions", c.mode, err)
		}
		if !c.ok && err != nil && !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %04o: message does not say how to fix: %v", c.mode, err)
		}
	}
	if _, err := ReadFile(dir); !errors.Is(err, ErrFormat) {
		t.Errorf("directory: %v, want ErrFormat", err)
	}
	if _, err := ReadFile(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestParsePEMRejects(t *testing.T) {
	k, _ := Generate(Identity)
	good, _ := k.MarshalPEM()
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	p256, _ := ecdh.P256().GenerateKey(rand.Reader)
	p256DER, _ := x509.MarshalPKCS8PrivateKey(p256)
	block, _ := pem.Decode(good)
	cases := map[string][]byte{
		"empty":      nil,
		"garbage":    []byte("sesame-id1:not a private key"),
		"two blocks": append(append([]byte(nil), good...), good...),
		"trailing":   append(append([]byte(nil), good...), "x"...),
		"ecdsa":      pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: ecDER}),
		"ecdh p256":  pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: p256DER}),
		"encrypted":  pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: block.Bytes}),
		"wrong type": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: block.Bytes}),
		"headers":    pem.EncodeToMemory(&pem.Block{Type: pemType, Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: block.Bytes}),
		"bad der":    pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: block.Bytes[:10]}),
	}
	for name, b := range cases {
		if _, err := ParsePEM(b); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v, want ErrFormat", name, err)
		}
	}
	if _, err := ParsePEM(append([]byte("\n\n"), good...)); err != nil {
		t.Errorf("white space around the block: %v", err)
	}
}

func TestParsePublicRejects(t *testing.T) {
	good := "sesame-id1:A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg"
	for _, s := range []string{
		"",
		"A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg", // no prefix
		"SESAME-ID1:A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg",
		"sesame-id2:A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg",
		good + "=",                         // padding
		good[:len(good)-1],                 // 31.x bytes
		good + "AA",                        // 33 bytes
		strings.Replace(good, "_", "/", 1), // standard alphabet
		strings.Replace(good, "v", " ", 1), // embedded space
		"sesame-id1: " + good[11:],
		good[:30] + "\n" + good[30:], // encoding/base64 would skip the newline
		good[:30] + "\r" + good[30:],
	} {
		if _, err := ParsePublic(s); !errors.Is(err, ErrPublicKey) {
			t.Errorf("%q: %v, want ErrPublicKey", s, err)
		}
	}
	if (PublicKey{}).Identity() != nil || (PublicKey{}).Gateway() != nil {
		t.Error("zero PublicKey yields a key")
	}
}

// The gateway's unknown-key log line carries the same text as the config.
func TestUnknownKeyLogMatchesText(t *testing.T) {
	k, _ := NewIdentity(ed25519.NewKeyFromSeed(seq(7)))
	resolve := spa.KeyResolver(func(ed25519.PublicKey) (string, bool) { return "", false })
	_, _, err := resolve(spa.Credential{Kind: spa.CredEd25519, Data: k.Public().Identity()}, time.Time{})
	if !errors.Is(err, spa.ErrUnknownKey) || !strings.HasSuffix(err.Error(), " "+k.Public().String()) {
		t.Fatalf("unknown-key error %q does not end with %s", err, k.Public())
	}
}

// OpenSSL reads Sesame key files and Sesame reads OpenSSL's.
func TestOpenSSLInterop(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true: openssl not installed")
		}
		t.Skip("openssl not installed")
	}
	dir := t.TempDir()
	for _, c := range []struct {
		alg  string
		kind Kind
	}{{"ed25519", Identity}, {"x25519", Gateway}} {
		theirs := filepath.Join(dir, "openssl-"+c.alg)
		if out, err := exec.Command(openssl, "genpkey", "-algorithm", c.alg, "-out", theirs).CombinedOutput(); err != nil {
			t.Fatalf("openssl genpkey: %v\n%s", err, out)
		}
		os.Chmod(theirs, 0o600)
		k, err := ReadFile(theirs)
		if err != nil || k.Kind() != c.kind {
			t.Fatalf("%s key from openssl: %v, %v", c.alg, k, err)
		}
		if got, want := opensslPub(t, openssl, theirs), k.Public().raw; !bytes.Equal(got, want[:]) {
			t.Errorf("%s: openssl public %x, ours %x", c.alg, got, want)
		}
		ours := filepath.Join(dir, "sesame-"+c.alg)
		mine, _ := Generate(c.kind)
		if err := WriteFile(ours, mine); err != nil {
			t.Fatal(err)
		}
		if got, want := opensslPub(t, openssl, ours), mine.Public().raw; !bytes.Equal(got, want[:]) {
			t.Errorf("%s: openssl reads our key as %x, want %x", c.alg, got, want)
		}
	}
}

// opensslPub returns the raw 32-byte public key openssl derives from a key
// file (the tail of the SubjectPublicKeyInfo DER).
func opensslPub(t *testing.T, openssl, path string) []byte {
	t.Helper()
	out, err := exec.Command(openssl, "pkey", "-in", path, "-pubout", "-outform", "DER").Output()
	if err != nil || len(out) < 32 {
		t.Fatalf("openssl pkey %s: %v", path, err)
	}
	return out[len(out)-32:]
}

func FuzzParsePublic(f *testing.F) {
	f.Add("sesame-id1:A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg")
	f.Add("sesame-gw1:j0DFrbaPJWJK5bIU6nZ6bslNgp09e14a0bpvPiE4KF8\n")
	f.Add("sesame-gw1:")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePublic(s)
		if err != nil {
			return
		}
		if p.String() != strings.TrimSpace(s) {
			t.Fatalf("%q parsed, re-encodes as %q", s, p.String())
		}
	})
}

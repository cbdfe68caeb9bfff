package main

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/pki"
	"github.com/sesame-gw/sesame/internal/pki/certfile"
	"github.com/sesame-gw/sesame/internal/policy"
	"github.com/sesame-gw/sesame/internal/spa"
	"github.com/sesame-gw/sesame/internal/spakey"
)

// `sesame open --cert alice.crt --key alice.key --gateway-key PUBKEY` as
// issue 7 writes it (and --cert alone, a client.toml cert, a P-256 key,
// `sesame proxy`'s flags): the packet carries the certificate, and a
// gateway trusting the CA resolves it to alice's policy.
func TestOpenWithCertificate(t *testing.T) {
	work := t.TempDir()
	t.Chdir(work)
	dir := filepath.Join(work, "etc/sesame/ca")
	for _, cmd := range [][]string{
		{"ca", "init", "--dir", dir},
		{"ca", "issue", "--dir", dir, "--name", "alice", "--allow", "22/tcp", "--max-duration", "10m", "--valid-for", "90d", "--out", "alice"},
		{"ca", "issue", "--dir", dir, "--name", "bob", "--allow", "22/tcp", "--key-type", "p256", "--out", "bob"},
		{"keygen", "--gateway", "-o", "gw.key"},
	} {
		if out, errs, code := sesame(t, cmd...); code != 0 {
			t.Fatalf("sesame %s: exit %d\n%s%s", strings.Join(cmd, " "), code, out, errs)
		}
	}
	gw, err := spakey.ReadFile("gw.key")
	if err != nil {
		t.Fatal(err)
	}
	gwPub := gw.Public().String()
	ca, err := certfile.ReadCert(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := pki.NewVerifier(ca, pki.Options{CRLRequired: true})
	if err != nil {
		t.Fatal(err)
	}
	crl, _ := os.ReadFile(filepath.Join(dir, "crl.pem"))
	if _, err := v.SetCRL(crl); err != nil {
		t.Fatal(err)
	}
	opener, err := spa.NewOpener(gw.Gateway(), spa.ByKind(map[spa.CredentialKind]spa.Resolver[*policy.Client]{
		spa.CredX509: v.Resolver(pki.Scope{Key: gw.Gateway().PublicKey().Bytes()}, pki.Local{}),
	}), 0)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile("client.toml", []byte(fmt.Sprintf("[profile.gw]\nhost = \"192.0.2.1\"\ngateway_key = %q\ncert = \"bob.crt\"\nservices = [\"22/tcp\"]\n", gwPub)), 0o600)
	for _, tc := range []struct {
		name, client string
		args         []string
	}{
		{"as written", "alice", []string{"open", "192.0.2.1", "22/tcp", "--cert", "alice.crt", "--key", "alice.key", "--gateway-key", gwPub}},
		{"key beside the certificate", "alice", []string{"open", "192.0.2.1", "22/tcp", "--cert", "alice.crt", "--gateway-key", gwPub}},
		{"profile cert, P-256", "bob", []string{"open", "--profiles", "client.toml", "gw"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errs, code := sesame(t, append(tc.args, "--print")...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			pkt, err := hex.DecodeString(strings.TrimSpace(out))
			if err != nil {
				t.Fatal(err)
			}
			if len(pkt) > spa.MaxSize {
				t.Fatalf("%d bytes", len(pkt))
			}
			op, err := opener.Open(pkt, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if op.Client.Name != tc.client || op.Request.Services[0].First != 22 {
				t.Fatalf("opened %+v for %s", op.Request, op.Client.Name)
			}
		})
	}
	// A key that is not the certificate's.
	if _, errs, code := sesame(t, "open", "192.0.2.1", "22/tcp", "--cert", "alice.crt", "--key", "bob.key", "--gateway-key", gwPub, "--print"); code != 1 || !strings.Contains(errs, "does not match") {
		t.Fatalf("mismatched key: exit %d %s", code, errs)
	}
}

package cadir

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/pki/certfile"
)

// TestOpenSSLInterop checks the CA's output with a reference tool: OpenSSL
// verifies the chain, sees the revocation in crl.pem, and refuses the
// certificate when it does not know the critical authorization extension
// (the point of marking it critical).
func TestOpenSSLInterop(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("openssl not installed (Debian package openssl)")
		}
		t.Skip("openssl not installed")
	}
	for _, kt := range []certfile.KeyType{certfile.Ed25519, certfile.P256} {
		now := time.Now() // openssl checks validity against the real clock
		dir := filepath.Join(t.TempDir(), "ca")
		c, err := Init(dir, InitOptions{KeyType: kt}, now)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		key, _ := certfile.GenerateKey(kt)
		cert, err := c.Issue(IssueRequest{Name: "alice", PublicKey: key.Public(), Authorization: ssh(time.Minute), ValidFor: 24 * time.Hour}, now)
		if err != nil {
			t.Fatal(err)
		}
		leaf := filepath.Join(dir, "alice.crt")
		if err := certfile.WriteCert(leaf, cert.Raw); err != nil {
			t.Fatal(err)
		}
		verify := func(extra ...string) string {
			args := append([]string{"verify", "-CAfile", filepath.Join(dir, CertFile)}, extra...)
			out, _ := exec.Command(openssl, append(args, leaf)...).CombinedOutput()
			return string(out)
		}
		if out := verify("-ignore_critical", "-purpose", "sslclient", "-crl_check", "-CRLfile", filepath.Join(dir, CRLFile)); !strings.Contains(out, "alice.crt: OK") {
			t.Errorf("%s: openssl verify: %s", kt, out)
		}
		if out := verify(); !strings.Contains(out, "unhandled critical extension") {
			t.Errorf("%s: openssl accepted the unknown critical extension: %s", kt, out)
		}
		if _, _, err := c.Revoke(cert, now); err != nil {
			t.Fatal(err)
		}
		if out := verify("-ignore_critical", "-crl_check", "-CRLfile", filepath.Join(dir, CRLFile)); !strings.Contains(out, "certificate revoked") {
			t.Errorf("%s: openssl does not see the revocation: %s", kt, out)
		}
	}
}

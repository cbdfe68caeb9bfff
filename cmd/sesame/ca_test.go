package main

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/pki"
	"github.com/sesame-gw/sesame/internal/pki/certfile"
	"github.com/sesame-gw/sesame/internal/service"
	"github.com/sesame-gw/sesame/internal/spa"
	"github.com/sesame-gw/sesame/internal/spakey"
)

func caRunCmd(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return out.String() + errb.String(), code
}

// The commands of issue 7, exactly as written, then a gateway-side check
// of what they produced.
func TestCACommandsAsWritten(t *testing.T) {
	work := t.TempDir()
	t.Chdir(work)
	dir := filepath.Join(work, "etc/sesame/ca") // stands for /etc/sesame/ca
	for _, cmd := range [][]string{
		{"ca", "init", "--dir", dir},
		{"ca", "issue", "--dir", dir, "--name", "alice", "--allow", "22/tcp", "--max-duration", "10m", "--valid-for", "90d", "--out", "alice"},
	} {
		if out, code := caRunCmd(t, cmd...); code != 0 {
			t.Fatalf("sesame %s: exit %d\n%s", strings.Join(cmd, " "), code, out)
		}
	}
	fi, err := os.Stat("alice.key")
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("alice.key: %v, %v", fi, err)
	}
	ca, err := certfile.ReadCert(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := pki.NewVerifier(ca, pki.Options{CRLRequired: true})
	if err != nil {
		t.Fatal(err)
	}
	loadCRL := func() {
		t.Helper()
		crl, err := os.ReadFile(filepath.Join(dir, "crl.pem"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.SetCRL(crl); err != nil {
			t.Fatal(err)
		}
	}
	loadCRL()
	id, err := certfile.LoadIdentity("alice.crt", "alice.key")
	if err != nil {
		t.Fatal(err)
	}
	res := v.Resolver(pki.Scope{}, pki.Local{})
	_, c, err := res(id.Credential, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "alice" || c.MaxDuration != 10*time.Minute || len(c.Allow) != 1 || c.Allow[0] != (service.Range{Proto: service.TCP, First: 22, Last: 22}) {
		t.Errorf("alice's policy: %+v", c)
	}
	if d := c.Expires.Sub(time.Now()); d < 89*24*time.Hour || d > 91*24*time.Hour {
		t.Errorf("alice expires in %v, want about 90 days", d)
	}

	if out, code := caRunCmd(t, "ca", "revoke", "--dir", dir, "--cert", "alice.crt"); code != 0 || !strings.Contains(out, "revoked alice") {
		t.Fatalf("revoke: exit %d\n%s", code, out)
	}
	loadCRL()
	if _, _, err := res(id.Credential, time.Now()); spa.ReasonOf(err) != pki.ErrRevoked {
		t.Errorf("after sesame ca revoke: %v", err)
	}
	out, code := caRunCmd(t, "ca", "list", "--dir", dir)
	if code != 0 || !strings.Contains(out, "alice") || !strings.Contains(out, "revoked") {
		t.Errorf("list: exit %d\n%s", code, out)
	}
}

func TestCACommandErrors(t *testing.T) {
	work := t.TempDir()
	t.Chdir(work)
	dir := filepath.Join(work, "ca")
	if out, code := caRunCmd(t, "ca", "init", "--dir", dir, "--key-type", "p256", "--crl-valid-for", "7d"); code != 0 {
		t.Fatalf("init: %d\n%s", code, out)
	}
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"ca"}, 2, "usage"},
		{[]string{"ca", "frob"}, 2, "unknown command"},
		{[]string{"ca", "init", "--dir", dir}, 1, "already holds a CA"},
		{[]string{"ca", "issue", "--dir", dir, "--allow", "22/tcp"}, 2, "--name is required"},
		{[]string{"ca", "issue", "--dir", dir, "--name", "bob"}, 2, "--allow is required"},
		{[]string{"ca", "issue", "--dir", dir, "--name", "bob", "--allow", "22"}, 2, "missing protocol"},
		{[]string{"ca", "issue", "--dir", dir, "--name", "bob", "--allow", "22/tcp", "--valid-for", "90x"}, 2, "invalid"},
		{[]string{"ca", "issue", "--dir", dir, "--name", "bob", "--allow", "22/tcp", "--max-duration", "1500ms"}, 2, "whole seconds"},
		{[]string{"ca", "issue", "--dir", dir, "--name", "bob", "--allow", "22/tcp", "--gateway", "sesame-gw1:short"}, 2, "invalid public key"},
		{[]string{"ca", "revoke", "--dir", dir}, 2, "--cert FILE or --serial"},
		{[]string{"ca", "revoke", "--dir", dir, "--serial", "abc"}, 1, "not in"},
		{[]string{"ca", "list", "--dir", filepath.Join(work, "nothing")}, 1, "no such file"},
	} {
		out, code := caRunCmd(t, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.msg) {
			t.Errorf("sesame %s: exit %d, want %d with %q:\n%s", strings.Join(tc.args, " "), code, tc.code, tc.msg, out)
		}
	}
	// Issue with a scope, an existing public key and a range, then revoke
	// by serial; a second issue to the same files is refused.
	key, err := certfile.GenerateKey(certfile.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	pub := spakey.FormatIdentity(key.Public().(ed25519.PublicKey))
	out, code := caRunCmd(t, "ca", "issue", "--dir", dir, "--name", "carol", "--allow", "22/tcp,60000-61000/udp", "--gateway", "gw1", "--public-key", pub, "--max-duration", "5m")
	if code != 0 || !strings.Contains(out, "gateways gw1") {
		t.Fatalf("issue carol: %d\n%s", code, out)
	}
	if _, err := os.Stat("carol.key"); !os.IsNotExist(err) {
		t.Errorf("--public-key wrote a private key: %v", err)
	}
	if out, code := caRunCmd(t, "ca", "issue", "--dir", dir, "--name", "carol", "--allow", "22/tcp", "--public-key", pub); code != 1 || !strings.Contains(out, "already exists") {
		t.Errorf("issue over carol.crt: %d\n%s", code, out)
	}
	crt, err := certfile.ReadCert("carol.crt")
	if err != nil {
		t.Fatal(err)
	}
	a, err := pki.AuthorizationOf(crt)
	if err != nil || len(a.Services) != 2 || a.GatewayNames[0] != "gw1" || a.MaxDuration != 5*time.Minute {
		t.Errorf("carol's authorization: %+v, %v", a, err)
	}
	if out, code := caRunCmd(t, "ca", "revoke", "--dir", dir, "--serial", pki.SerialText(crt.SerialNumber)); code != 0 || !strings.Contains(out, "revoked carol") {
		t.Errorf("revoke by serial: %d\n%s", code, out)
	}
	if out, code := caRunCmd(t, "ca", "crl", "--dir", dir); code != 0 || !strings.Contains(out, "wrote CRL 3") {
		t.Errorf("crl: %d\n%s", code, out)
	}
}

func TestCAParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"90d": 90 * 24 * time.Hour, "2w": 14 * 24 * time.Hour, "1y": 365 * 24 * time.Hour, "10m": 10 * time.Minute, "36h": 36 * time.Hour,
	} {
		if got, err := caParseDuration(in); err != nil || got != want {
			t.Errorf("%s: %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "0d", "-1d", "d", "1.5d", "0", "-5m", "9999999d"} {
		if _, err := caParseDuration(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

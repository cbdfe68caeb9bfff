package cadir

import (
	"crypto/ecdh"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/pki"
	"github.com/sesame-gw/sesame/internal/pki/certfile"
	"github.com/sesame-gw/sesame/internal/policy"
	"github.com/sesame-gw/sesame/internal/service"
	"github.com/sesame-gw/sesame/internal/spa"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func ssh(d time.Duration) pki.Authorization {
	return pki.Authorization{Services: []service.Range{{Proto: service.TCP, First: 22, Last: 22}}, MaxDuration: d}
}

func initCA(t *testing.T, kt certfile.KeyType) (string, *CA) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	c, err := Init(dir, InitOptions{KeyType: kt}, t0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return dir, c
}

func verifier(t *testing.T, dir string) *pki.Verifier {
	t.Helper()
	ca, err := certfile.ReadCert(filepath.Join(dir, CertFile))
	if err != nil {
		t.Fatal(err)
	}
	v, err := pki.NewVerifier(ca, pki.Options{CRLRequired: true})
	if err != nil {
		t.Fatal(err)
	}
	crl, err := os.ReadFile(filepath.Join(dir, CRLFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.SetCRL(crl); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestInitLayout(t *testing.T) {
	dir, c := initCA(t, "")
	for name, perm := range map[string]os.FileMode{CertFile: 0o644, KeyFile: 0o600, CRLFile: 0o644, IndexFile: 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != perm {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode().Perm(), perm)
		}
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, want 0700", fi.Mode().Perm())
	}
	cert := c.Cert()
	if !cert.IsCA || cert.Subject.CommonName != DefaultName || certfile.TypeOf(cert.PublicKey) != certfile.Ed25519 || !cert.MaxPathLenZero {
		t.Errorf("CA certificate: %+v", cert)
	}
	info, ok := verifier(t, dir).CRL()
	if !ok || info.Number.Int64() != 1 || info.Revoked != 0 || info.NextUpdate.Sub(info.ThisUpdate) != DefaultCRLValidFor {
		t.Errorf("first CRL: %+v", info)
	}
	c.Close()
	if _, err := Init(dir, InitOptions{}, t0); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second Init: %v, want fs.ErrExist", err)
	}
	// The refused Init removed nothing.
	if _, err := Open(dir); err != nil {
		t.Errorf("Open after a refused Init: %v", err)
	}
}

// The full life of a client certificate: issue, verify at a gateway,
// revoke, refused after the gateway loads the new CRL.
func TestIssueRevoke(t *testing.T) {
	for _, kt := range []certfile.KeyType{certfile.Ed25519, certfile.P256} {
		t.Run(string(kt), func(t *testing.T) {
			dir, c := initCA(t, kt)
			key, err := certfile.GenerateKey(kt)
			if err != nil {
				t.Fatal(err)
			}
			gw, err := ecdh.X25519().GenerateKey(nil)
			if err != nil {
				t.Fatal(err)
			}
			a := ssh(10 * time.Minute)
			a.GatewayNames = []string{"gw1"}
			cert, err := c.Issue(IssueRequest{Name: "alice", PublicKey: key.Public(), Authorization: a, ValidFor: 90 * 24 * time.Hour}, t0)
			if err != nil {
				t.Fatal(err)
			}
			if !cert.NotBefore.Equal(t0.Add(-Backdate)) || !cert.NotAfter.Equal(t0.Add(90*24*time.Hour)) {
				t.Errorf("validity %v .. %v", cert.NotBefore, cert.NotAfter)
			}
			v := verifier(t, dir)
			res := v.Resolver(pki.Scope{Key: gw.PublicKey().Bytes(), Names: []string{"gw1"}}, pki.Local{})
			id, err := spa.CertIdentity([][]byte{cert.Raw}, key)
			if err != nil {
				t.Fatal(err)
			}
			if _, pc, err := res(id.Credential, t0); err != nil || pc.Name != "alice" || pc.MaxDuration != 10*time.Minute {
				t.Fatalf("fresh certificate: %+v, %v", pc, err)
			}
			already, info, err := c.Revoke(cert, t0.Add(time.Hour))
			if err != nil || already || info.Number.Int64() != 2 || info.Revoked != 1 {
				t.Fatalf("Revoke = %v, %+v, %v", already, info, err)
			}
			already, info, err = c.Revoke(cert, t0.Add(2*time.Hour))
			if err != nil || !already || info.Number.Int64() != 3 || info.Revoked != 1 {
				t.Fatalf("second Revoke = %v, %+v, %v", already, info, err)
			}
			crl, _ := os.ReadFile(filepath.Join(dir, CRLFile))
			if _, err := v.SetCRL(crl); err != nil {
				t.Fatal(err)
			}
			_, _, err = res(id.Credential, t0.Add(2*time.Hour))
			if spa.ReasonOf(err) != pki.ErrRevoked {
				t.Fatalf("after revocation: %v", err)
			}
			l := c.List()
			if len(l) != 1 || l[0].Status(t0) != "revoked" || !l[0].RevokedAt.Equal(t0.Add(time.Hour)) ||
				!slices.Equal(l[0].Allow, []string{"22/tcp"}) || l[0].MaxDuration != "10m0s" || l[0].KeyType != string(kt) {
				t.Errorf("List = %+v", l)
			}
		})
	}
}

func TestSignCRLNumbers(t *testing.T) {
	dir, c := initCA(t, "")
	for want := int64(2); want <= 4; want++ {
		info, err := c.SignCRL(t0.Add(time.Duration(want) * time.Hour))
		if err != nil || info.Number.Int64() != want {
			t.Fatalf("SignCRL = %+v, %v; want number %d", info, err, want)
		}
	}
	c.Close()
	// An index behind crl.pem (a crash between the two writes, a restored
	// backup) never makes the CA reuse a number.
	c2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.ix.CRLNumber = 1
	info, err := c2.SignCRL(t0.Add(5 * time.Hour))
	if err != nil || info.Number.Int64() != 5 {
		t.Fatalf("SignCRL with an old index = %+v, %v; want number 5", info, err)
	}
	// Revoked certificates that expired more than a day ago leave the CRL.
	key, _ := certfile.GenerateKey(certfile.Ed25519)
	cert, err := c2.Issue(IssueRequest{Name: "short", PublicKey: key.Public(), Authorization: ssh(time.Minute), ValidFor: time.Hour}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, info, _ := c2.Revoke(cert, t0); info.Revoked != 1 {
		t.Errorf("CRL lists %d, want 1", info.Revoked)
	}
	if info, _ := c2.SignCRL(t0.Add(26 * time.Hour)); info.Revoked != 0 {
		t.Errorf("CRL lists %d long-expired certificates, want 0", info.Revoked)
	}
}

func TestIssueRejects(t *testing.T) {
	_, c := initCA(t, "")
	key, _ := certfile.GenerateKey(certfile.Ed25519)
	many := ssh(time.Minute)
	for i := range pki.MaxScope {
		many.GatewayKeys = append(many.GatewayKeys, slices.Repeat([]byte{byte(i)}, 32))
		many.GatewayNames = append(many.GatewayNames, strings.Repeat("g", 40))
	}
	for name, r := range map[string]IssueRequest{
		"no name":           {PublicKey: key.Public(), Authorization: ssh(time.Minute), ValidFor: time.Hour},
		"bad name":          {Name: "alice smith", PublicKey: key.Public(), Authorization: ssh(time.Minute), ValidFor: time.Hour},
		"no key":            {Name: "alice", Authorization: ssh(time.Minute), ValidFor: time.Hour},
		"no services":       {Name: "alice", PublicKey: key.Public(), Authorization: pki.Authorization{MaxDuration: time.Minute}, ValidFor: time.Hour},
		"no validity":       {Name: "alice", PublicKey: key.Public(), Authorization: ssh(time.Minute)},
		"outlives the CA":   {Name: "alice", PublicKey: key.Public(), Authorization: ssh(time.Minute), ValidFor: 11 * 365 * 24 * time.Hour},
		"too large to send": {Name: "alice", PublicKey: key.Public(), Authorization: many, ValidFor: time.Hour},
	} {
		if _, err := c.Issue(r, t0); err == nil {
			t.Errorf("%s: issued", name)
		}
	}
	if len(c.List()) != 0 {
		t.Errorf("refused requests left index entries: %+v", c.List())
	}
	// Revoking a certificate of another CA is refused.
	_, other := initCA(t, "")
	foreign, err := other.Issue(IssueRequest{Name: "mallory", PublicKey: key.Public(), Authorization: ssh(time.Minute), ValidFor: time.Hour}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Revoke(foreign, t0); err == nil {
		t.Error("revoked another CA's certificate")
	}
}

func TestLock(t *testing.T) {
	dir, _ := initCA(t, "") // holds the lock until cleanup
	f, err := os.Open(filepath.Join(dir, lockFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); !errors.Is(err, syscall.EWOULDBLOCK) {
		t.Errorf("flock while the CA is open: %v, want EWOULDBLOCK", err)
	}
}

// TestPacketSizes measures real datagrams: certificates as `sesame ca
// issue` makes them (127-bit serial, "Sesame CA" issuer), one service.
func TestPacketSizes(t *testing.T) {
	gw, err := ecdh.X25519().GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, caType := range []certfile.KeyType{certfile.Ed25519, certfile.P256} {
		_, c := initCA(t, caType)
		for _, kt := range []certfile.KeyType{certfile.Ed25519, certfile.P256} {
			key, _ := certfile.GenerateKey(kt)
			cert, err := c.Issue(IssueRequest{Name: "alice", PublicKey: key.Public(), Authorization: ssh(10 * time.Minute), ValidFor: 90 * 24 * time.Hour}, t0)
			if err != nil {
				t.Fatal(err)
			}
			id, err := spa.CertIdentity([][]byte{cert.Raw}, key)
			if err != nil {
				t.Fatal(err)
			}
			for _, addr := range []string{"", "198.51.100.7", "2001:db8::7"} {
				r := policy.Request{Services: ssh(0).Services, Duration: time.Minute}
				if addr != "" {
					r.Addr = netip.MustParseAddr(addr)
				}
				pkt, err := spa.Seal(id, gw.PublicKey(), r, t0)
				if err != nil {
					t.Fatal(err)
				}
				if len(pkt) >= spa.MaxSize {
					t.Errorf("%d bytes", len(pkt))
				}
				if addr == "" {
					addr = "source"
				}
				t.Logf("CA %-7s leaf %-7s cert %3d B, addr %-12s -> datagram %d B (+28 IPv4 / +48 IPv6 headers)", caType, kt, len(cert.Raw), addr, len(pkt))
			}
		}
	}
}

package e2e

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/netns"
	"github.com/sesame-gw/sesame/internal/pki/certfile"
)

// Certificate SPA (issue 7, docs/pki.md) end to end: the `sesame ca`
// commands as an admin runs them, gateways with [pki] and no [[client]],
// `sesame open --cert` from the client namespace.

const (
	crlPort     = 8080 // the CRL's HTTP server, in the gateway namespace
	pkiRefresh  = "1s" // [pki] crl_refresh: revocations are noticed fast
	pkiGrantTTL = "2s" // grants asked for in these tests
)

// pkiBench is a CA directory and a gateway key, in dir.
type pkiBench struct {
	dir, ca      string
	gwKey, gwPub string
}

func newPKIBench(t *testing.T) *pkiBench {
	t.Helper()
	p := &pkiBench{dir: t.TempDir()}
	p.ca = filepath.Join(p.dir, "etc/sesame/ca")
	caCmd(t, p.dir, "ca", "init", "--dir", p.ca)
	p.gwKey, p.gwPub = keygen(t, p.dir, "gateway.key", true)
	return p
}

// caCmd runs `sesame ARGS` on the host in dir (the CA needs no
// namespace) and returns its output; it fails the test on an error.
func caCmd(t *testing.T, dir string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sesameBin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sesame %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// issue runs `sesame ca issue --dir CA --name NAME ARGS --out NAME` in
// p.dir and returns the path of NAME (NAME.crt, NAME.key).
func (p *pkiBench) issue(t *testing.T, name string, args ...string) string {
	t.Helper()
	caCmd(t, p.dir, append(append([]string{"ca", "issue", "--dir", p.ca, "--name", name}, args...), "--out", name)...)
	return filepath.Join(p.dir, name)
}

func (p *pkiBench) crlFile() string { return filepath.Join(p.ca, "crl.pem") }

// config is a gateway with [spa] and [pki] only: certificate clients may
// open svcPort, unaskedPort and outsidePort here (all three protected).
// sock is its control socket.
func (p *pkiBench) config(t *testing.T, gwKey, crl, extra string) (cfg, sock string) {
	sock = filepath.Join(t.TempDir(), "control.sock")
	return fmt.Sprintf(`[gateway]
state_dir = %q
control_socket = %q

[spa]
port = %d
key = %q

[pki]
ca = %q
crl = %q
crl_refresh = %q
allow = ["%d/tcp", "%d/tcp", "%d/tcp"]
%s`, t.TempDir(), sock, spaPort, gwKey, filepath.Join(p.ca, "ca.crt"), crl, pkiRefresh,
		svcPort, unaskedPort, outsidePort, extra), sock
}

// open runs `sesame open HOST ARGS --cert NAME.crt --key NAME.key
// --gateway-key GW` in the client namespace, as issue 7 writes it.
func pkiOpen(t *testing.T, b *netns.Bench, gwPub, name string, args ...string) string {
	t.Helper()
	argv := append(append([]string{sesameBin, "open"}, args...), "--cert", name+".crt", "--key", name+".key", "--gateway-key", gwPub)
	out, _ := run(t, b, b.Client, 20*time.Second, false, argv...)
	return out
}

// crlServer serves a CRL file over plain HTTP from the gateway namespace,
// with an ETag (so the gateway's conditional GET sees every rewrite, even
// within one second).
type crlServer struct {
	srv         *http.Server
	url         string
	hits, fresh atomic.Int64 // requests; 200 answers
}

func serveCRL(t *testing.T, b *netns.Bench, path string) *crlServer {
	t.Helper()
	addr := netip.AddrPortFrom(b.GW4, crlPort)
	l, err := b.ListenTCP(b.GW, addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &crlServer{url: "http://" + addr.String() + "/crl.pem"}
	s.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		data, err := os.ReadFile(path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("ETag", fmt.Sprintf(`"%x"`, sha256.Sum256(data)))
		w.Header().Set("Content-Type", "application/x-pem-file")
		if match := r.Header.Get("If-None-Match"); match != "" && match == w.Header().Get("ETag") {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		s.fresh.Add(1)
		w.Write(data)
	})}
	go s.srv.Serve(l)
	t.Cleanup(func() { s.srv.Close() })
	return s
}

// stop makes the URL unreachable (connection refused).
func (s *crlServer) stop() { s.srv.Close() }

// pkiStatus is `sesame status` of the daemon on control socket sock.
func pkiStatus(t *testing.T, sock string) string {
	t.Helper()
	out, errs, code := sesameCmd(t, "status", "--socket", sock)
	if code != 0 {
		t.Fatalf("sesame status: %d %s", code, errs)
	}
	return out
}

// An issued certificate opens its service for its source and nothing
// else, IPv4 and IPv6; after `sesame ca revoke` the gateway notices the
// rewritten CRL file and refuses it, with the reason in its log.
func TestPKICertificateOpensItsServiceOnly(t *testing.T) {
	b := newBench(t)
	serveService(t, b)
	serveExtra(t, b)
	p := newPKIBench(t)
	// As an admin runs it (2222/tcp stands for 22/tcp).
	alice := p.issue(t, "alice", "--allow", fmt.Sprintf("%d/tcp", svcPort), "--allow", fmt.Sprintf("%d/tcp", unaskedPort),
		"--max-duration", "10m", "--valid-for", "90d")
	cfg, sock := p.config(t, p.gwKey, p.crlFile(), "")
	g := startGateway(t, b, cfg)
	waitLog(t, g, "msg=\"certificate SPA\"", "crl_required=true")
	waitLog(t, g, "msg=\"CRL loaded\"", "number=1", "revoked=0")
	if st := pkiStatus(t, sock); !strings.Contains(st, "certificates: CRL 1, 0 revoked") || !strings.Contains(st, "fresh") {
		t.Fatalf("sesame status:\n%s", st)
	}
	for _, f := range families(b) {
		t.Run(f.name, func(t *testing.T) {
			dst := netip.AddrPortFrom(f.gw, svcPort)
			hidden(t, b, f.cl, dst)
			pkiOpen(t, b, p.gwPub, alice, f.gw.String(), fmt.Sprintf("%d/tcp", svcPort), "--duration", pkiGrantTTL, "--wait")
			reachable(t, b, f.cl, dst)
			hidden(t, b, f.second, dst)                               // another source stays blocked
			hidden(t, b, f.cl, netip.AddrPortFrom(f.gw, unaskedPort)) // in the certificate, not asked
			waitLog(t, g, "msg=grant", "proto=spa", "client=alice", "src="+f.cl.String(), fmt.Sprintf("services=[%d/tcp]", svcPort))
			// Allowed at this gateway, but in nobody's certificate.
			pkiOpen(t, b, p.gwPub, alice, f.gw.String(), fmt.Sprintf("%d/tcp", outsidePort))
			waitLog(t, g, "msg=reject", "reason=service-not-allowed", "client=alice", "src="+f.cl.String(), fmt.Sprintf("%d/tcp", outsidePort))
			hidden(t, b, f.cl, netip.AddrPortFrom(f.gw, outsidePort))
		})
	}

	// Exactly as issue 7 writes it, from the directory holding alice.crt.
	caCmd(t, p.dir, "ca", "revoke", "--dir", p.ca, "--cert", "alice.crt")
	waitLog(t, g, "msg=\"CRL loaded\"", "number=2", "revoked=1")
	for _, f := range families(b) {
		dst := netip.AddrPortFrom(f.gw, svcPort)
		waitHidden(t, b, dst, 5*time.Second) // the grant made before expires
		from := len(g.log())
		pkiOpen(t, b, p.gwPub, alice, f.gw.String(), fmt.Sprintf("%d/tcp", svcPort))
		l := waitNewLog(t, g, from, "msg=reject", "reason=revoked", "src="+f.cl.String(), "alice, serial")
		if !strings.Contains(l, "level=INFO") {
			t.Errorf("revocation logged as %q, want info", l)
		}
		hidden(t, b, f.cl, dst)
	}
	if st := pkiStatus(t, sock); !strings.Contains(st, "certificates: CRL 2, 1 revoked") {
		t.Fatalf("sesame status:\n%s", st)
	}
	if n := strings.Count(g.log(), "msg=grant"); n != 2 {
		t.Fatalf("%d grants, want 2:\n%s", n, g.log())
	}
}

// A CRL fetched from a URL (plain HTTP inside the gateway namespace):
// refused with no-crl until it can be fetched, then revocation through
// it; once the URL is unreachable, the fresh CRL in use is kept.
func TestPKIRevocationByURL(t *testing.T) {
	b := newBench(t)
	serveService(t, b)
	p := newPKIBench(t)
	svc := fmt.Sprintf("%d/tcp", svcPort)
	alice := p.issue(t, "alice", "--allow", svc)
	bob := p.issue(t, "bob", "--allow", svc)
	url := "http://" + netip.AddrPortFrom(b.GW4, crlPort).String() + "/crl.pem"
	cfg, _ := p.config(t, p.gwKey, url, "")
	g := startGateway(t, b, cfg) // before the CRL server
	dst := netip.AddrPortFrom(b.GW4, svcPort)

	waitLog(t, g, "no valid CRL: refusing every certificate client", "source="+url)
	pkiOpen(t, b, p.gwPub, alice, b.GW4.String(), svc)
	waitLog(t, g, "msg=reject", "reason=no-crl")
	hidden(t, b, netip.Addr{}, dst)

	srv := serveCRL(t, b, p.crlFile())
	waitLog(t, g, "msg=\"CRL loaded\"", "source="+url, "number=1")
	pkiOpen(t, b, p.gwPub, alice, b.GW4.String(), svc, "--duration", pkiGrantTTL, "--wait")
	waitLog(t, g, "msg=grant", "client=alice")

	caCmd(t, p.dir, "ca", "revoke", "--dir", p.ca, "--cert", "alice.crt")
	waitLog(t, g, "msg=\"CRL loaded\"", "source="+url, "number=2", "revoked=1")
	waitHidden(t, b, dst, 5*time.Second)
	from := len(g.log())
	pkiOpen(t, b, p.gwPub, alice, b.GW4.String(), svc)
	waitNewLog(t, g, from, "msg=reject", "reason=revoked", "alice, serial")
	hidden(t, b, netip.Addr{}, dst)
	// Polled every second with a conditional GET: most answers are 304.
	if hits, fresh := srv.hits.Load(), srv.fresh.Load(); fresh != 2 || hits <= fresh {
		t.Errorf("CRL server: %d requests, %d answered with the CRL; want 2 with the CRL and the rest 304", hits, fresh)
	}

	srv.stop()
	waitLog(t, g, "CRL not updated: keeping the one in use", "source="+url)
	pkiOpen(t, b, p.gwPub, bob, b.GW4.String(), svc, "--duration", pkiGrantTTL, "--wait")
	waitLog(t, g, "msg=grant", "client=bob")
	from = len(g.log())
	pkiOpen(t, b, p.gwPub, alice, b.GW4.String(), svc)
	waitNewLog(t, g, from, "msg=reject", "reason=revoked", "alice")
}

// Expired, from another CA, tampered, for another gateway, and for
// nothing this gateway allows: each refused with its reason, logged at
// info with the certificate's name; scoped certificates for this
// gateway's key or name work.
func TestPKIRefusesWithReason(t *testing.T) {
	b := newBench(t)
	serveService(t, b)
	p := newPKIBench(t)
	svc := fmt.Sprintf("%d/tcp", svcPort)
	short := p.issue(t, "short", "--allow", svc, "--valid-for", "1s")
	_, otherGW := keygen(t, p.dir, "other-gw.key", true)
	elsewhere := p.issue(t, "elsewhere", "--allow", svc, "--gateway", otherGW)
	here := p.issue(t, "here", "--allow", svc, "--gateway", p.gwPub)
	named := p.issue(t, "named", "--allow", svc, "--gateway", "gw1.example.org")
	web := p.issue(t, "web", "--allow", "8443/tcp")
	alice := p.issue(t, "alice", "--allow", svc)
	// mallory's certificate is from another CA.
	otherCA := filepath.Join(p.dir, "other-ca")
	caCmd(t, p.dir, "ca", "init", "--dir", otherCA, "--name", "Other CA")
	caCmd(t, p.dir, "ca", "issue", "--dir", otherCA, "--name", "mallory", "--allow", svc, "--out", "mallory")
	mallory := filepath.Join(p.dir, "mallory")
	// tampered is alice's certificate with one byte of the CA's signature
	// changed, with alice's key.
	tampered := filepath.Join(p.dir, "tampered")
	cert, err := certfile.ReadCert(alice + ".crt")
	if err != nil {
		t.Fatal(err)
	}
	der := append([]byte(nil), cert.Raw...)
	der[len(der)-1] ^= 1
	if err := certfile.WriteCert(tampered+".crt", der); err != nil {
		t.Fatal(err)
	}
	key, _ := os.ReadFile(alice + ".key")
	os.WriteFile(tampered+".key", key, 0o600)

	cfg, _ := p.config(t, p.gwKey, p.crlFile(), "name = [\"gw1.example.org\"]\n")
	g := startGateway(t, b, cfg)
	dst := netip.AddrPortFrom(b.GW4, svcPort)
	if c, err := certfile.ReadCert(short + ".crt"); err != nil {
		t.Fatal(err)
	} else if d := time.Until(c.NotAfter); d > 0 {
		time.Sleep(d + 1100*time.Millisecond) // past NotAfter, whole seconds
	}
	for _, tc := range []struct{ name, cert, reason, detail string }{
		{"expired", short, "expired", "short"},
		{"another CA", mallory, "unknown-ca", `Other CA`},
		{"tampered", tampered, "bad-signature", "alice"},
		{"scoped to another gateway", elsewhere, "not-authorized", "not valid at this gateway"},
		{"nothing in common", web, "not-authorized", "8443/tcp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from := len(g.log())
			pkiOpen(t, b, p.gwPub, tc.cert, b.GW4.String(), svc)
			l := waitNewLog(t, g, from, "msg=reject", "proto=spa", "reason="+tc.reason, tc.detail)
			if !strings.Contains(l, "level=INFO") {
				t.Errorf("logged as %q, want info", l)
			}
			hidden(t, b, netip.Addr{}, dst)
		})
	}
	if strings.Contains(g.log(), "msg=grant") {
		t.Fatalf("a refused certificate was granted:\n%s", g.log())
	}
	for name, cert := range map[string]string{"here": here, "named": named} {
		pkiOpen(t, b, p.gwPub, cert, b.GW4.String(), svc, "--duration", pkiGrantTTL, "--wait")
		waitLog(t, g, "msg=grant", "client="+name)
		waitHidden(t, b, dst, 5*time.Second)
	}
}

// Two gateways that share only the CA (each its own key, state, CRL
// source) accept the same certificate. Then the CRL goes stale and the
// URL goes away: crl_required (the default) refuses every certificate
// client (fail closed); crl_required = false keeps the last good CRL.
func TestPKITwoGatewaysShareOnlyTheCA(t *testing.T) {
	p := newPKIBench(t)
	svc := fmt.Sprintf("%d/tcp", svcPort)
	alice := p.issue(t, "alice", "--allow", svc, "--max-duration", "10m")
	bA, bB := newBench(t), newBench(t)
	serveService(t, bA)
	serveService(t, bB)
	// A: its own copy of crl.pem (as rsync would publish it), fail closed.
	crlA := filepath.Join(t.TempDir(), "crl.pem")
	copyFile(t, p.crlFile(), crlA)
	cfgA, _ := p.config(t, p.gwKey, crlA, "")
	gA := startGateway(t, bA, cfgA)
	// B: another key, the CRL from a URL, crl_required = false.
	keyB, pubB := keygen(t, t.TempDir(), "gateway-b.key", true)
	srvB := serveCRL(t, bB, p.crlFile())
	cfgB, _ := p.config(t, keyB, srvB.url, "crl_required = false\n")
	gB := startGateway(t, bB, cfgB)
	waitLog(t, gA, "msg=\"CRL loaded\"", "number=1")
	waitLog(t, gB, "msg=\"CRL loaded\"", "number=1")

	pkiOpen(t, bA, p.gwPub, alice, bA.GW4.String(), svc, "--duration", pkiGrantTTL, "--wait")
	pkiOpen(t, bB, pubB, alice, bB.GW4.String(), svc, "--duration", pkiGrantTTL, "--wait")
	waitLog(t, gA, "msg=grant", "client=alice")
	waitLog(t, gB, "msg=grant", "client=alice")

	// A CRL signed by the CA an hour after its next update (a CA whose
	// cron job stopped), then B's URL goes away.
	stale := staleCRL(t, p.ca)
	if err := certfile.WriteAtomic(crlA, stale, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := certfile.WriteAtomic(p.crlFile(), stale, 0o644); err != nil {
		t.Fatal(err)
	}
	waitLog(t, gA, "msg=\"CRL loaded\"", "number=1000")
	waitLog(t, gB, "msg=\"CRL loaded\"", "number=1000")
	srvB.stop()
	waitLog(t, gA, "level=ERROR", "CRL outside its validity: refusing every certificate client")
	waitLog(t, gB, "level=WARN", "CRL outside its validity: still using it (crl_required = false)")
	waitLog(t, gB, "level=WARN", "keeping the last good CRL past its next update", "source="+srvB.url)

	dstA, dstB := netip.AddrPortFrom(bA.GW4, svcPort), netip.AddrPortFrom(bB.GW4, svcPort)
	waitHidden(t, bA, dstA, 5*time.Second)
	waitHidden(t, bB, dstB, 5*time.Second)
	pkiOpen(t, bA, p.gwPub, alice, bA.GW4.String(), svc)
	waitLog(t, gA, "msg=reject", "reason=stale-crl", "CRL 1000")
	hidden(t, bA, netip.Addr{}, dstA)
	from := len(gB.log())
	pkiOpen(t, bB, pubB, alice, bB.GW4.String(), svc, "--duration", pkiGrantTTL, "--wait")
	waitNewLog(t, gB, from, "msg=grant", "client=alice")
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// staleCRL signs, with the CA's key, an empty CRL numbered 1000 whose
// next update was an hour ago.
func staleCRL(t *testing.T, caDir string) []byte {
	t.Helper()
	ca, err := certfile.ReadCert(filepath.Join(caDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := certfile.ReadKey(filepath.Join(caDir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1000), ThisUpdate: now.Add(-2 * time.Hour), NextUpdate: now.Add(-time.Hour),
	}, ca, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

// A reload that changes [pki] ca and crl (SIGHUP) trusts the new CA at
// once and stops following the old CRL; one naming a CA file that is not
// there (`sesame reload`) is refused with the file, line and key, and the
// running configuration stays.
func TestPKIReloadChangesCA(t *testing.T) {
	b := newBench(t)
	serveService(t, b)
	p := newPKIBench(t)
	svc := fmt.Sprintf("%d/tcp", svcPort)
	alice := p.issue(t, "alice", "--allow", svc)
	// A second CA, as another team's.
	p2 := &pkiBench{dir: p.dir, ca: filepath.Join(p.dir, "ca2")}
	caCmd(t, p.dir, "ca", "init", "--dir", p2.ca, "--name", "Second CA")
	bob := p2.issue(t, "bob", "--allow", svc)
	cfg, sock := p.config(t, p.gwKey, p.crlFile(), "")
	g := startGateway(t, b, cfg)
	dst := netip.AddrPortFrom(b.GW4, svcPort)
	pkiOpen(t, b, p.gwPub, alice, b.GW4.String(), svc, "--duration", pkiGrantTTL, "--wait")
	waitLog(t, g, "msg=grant", "client=alice")

	cfg2 := strings.Replace(strings.Replace(cfg, p.crlFile(), p2.crlFile(), 1), filepath.Join(p.ca, "ca.crt"), filepath.Join(p2.ca, "ca.crt"), 1)
	if err := os.WriteFile(g.cfg, []byte(cfg2), 0o600); err != nil {
		t.Fatal(err)
	}
	from := len(g.log())
	if err := syscall.Kill(g.proc.PID(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitNewLog(t, g, from, "msg=\"CRL loaded\"", "source="+p2.crlFile(), "number=1")
	waitNewLog(t, g, from, "configuration reloaded")
	waitHidden(t, b, dst, 5*time.Second)
	pkiOpen(t, b, p.gwPub, alice, b.GW4.String(), svc)
	waitNewLog(t, g, from, "msg=reject", "reason=unknown-ca", "Sesame CA")
	pkiOpen(t, b, p.gwPub, bob, b.GW4.String(), svc, "--duration", pkiGrantTTL, "--wait")
	waitNewLog(t, g, from, "msg=grant", "client=bob")
	// The old CRL is no longer followed: a revocation there is not loaded
	// (three polls).
	caCmd(t, p.dir, "ca", "revoke", "--dir", p.ca, "--cert", "alice.crt")
	time.Sleep(3 * time.Second)
	if strings.Contains(g.log()[from:], "source="+p.crlFile()) {
		t.Fatalf("the old CRL is still polled after the reload:\n%s", g.log())
	}

	bad := strings.Replace(cfg2, filepath.Join(p2.ca, "ca.crt"), filepath.Join(p2.ca, "missing.crt"), 1)
	if err := os.WriteFile(g.cfg, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errs, code := sesameCmd(t, "reload", "--socket", sock)
	if code != 1 || !strings.Contains(errs, "sesame.toml:10: pki.ca:") || !strings.Contains(errs, "missing.crt") {
		t.Fatalf("sesame reload with a missing CA: exit %d: %s", code, errs)
	}
	waitHidden(t, b, dst, 5*time.Second)
	from = len(g.log())
	pkiOpen(t, b, p.gwPub, bob, b.GW4.String(), svc, "--duration", pkiGrantTTL, "--wait")
	waitNewLog(t, g, from, "msg=grant", "client=bob")
}

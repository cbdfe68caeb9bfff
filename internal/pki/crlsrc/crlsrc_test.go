package crlsrc

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sesame-gw/sesame/internal/pki"
	"github.com/sesame-gw/sesame/internal/pki/certfile"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

type fixture struct {
	ca  *x509.Certificate
	key ed25519.PrivateKey
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "CRL test CA"},
		NotBefore: t0.AddDate(-1, 0, 0), NotAfter: t0.AddDate(5, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{ca: ca, key: key}
}

// crl signs a CRL; forged uses another key under the same issuer name.
func (f *fixture) crl(t testing.TB, number int64, this, next time.Time, forged bool, revoked ...int64) []byte {
	t.Helper()
	rl := &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: this, NextUpdate: next}
	for _, s := range revoked {
		rl.RevokedCertificateEntries = append(rl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: big.NewInt(s), RevocationTime: this})
	}
	issuer, key := f.ca, f.key
	if forged {
		key = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, 32))
		fake := *f.ca
		fake.PublicKey = key.Public()
		issuer = &fake
	}
	der, err := x509.CreateRevocationList(nil, rl, issuer, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

func (f *fixture) fresh(t testing.TB, number int64, revoked ...int64) []byte {
	return f.crl(t, number, t0.Add(-time.Hour), t0.Add(7*24*time.Hour), false, revoked...)
}

func (f *fixture) verifier(t testing.TB, required bool) *pki.Verifier {
	t.Helper()
	v, err := pki.NewVerifier(f.ca, pki.Options{CRLRequired: required})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func number(t *testing.T, v *pki.Verifier) int64 {
	t.Helper()
	info, ok := v.CRL()
	if !ok {
		return 0
	}
	return info.Number.Int64()
}

// logBuf records log lines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuf) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestFile(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(t, true)
	path := filepath.Join(t.TempDir(), "crl.pem")
	var log logBuf
	u, err := New(v, path, Options{Log: log.logger(), Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := u.Refresh(ctx); err == nil {
		t.Fatal("a missing file is not an error")
	}
	if !strings.Contains(log.String(), "no valid CRL: refusing every certificate client") {
		t.Errorf("log: %s", log.String())
	}
	write := func(data []byte) {
		t.Helper()
		if err := certfile.WriteAtomic(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(f.fresh(t, 1))
	if err := u.Refresh(ctx); err != nil || number(t, v) != 1 {
		t.Fatalf("first load: %v, number %d", err, number(t, v))
	}
	if err := u.Refresh(ctx); err != nil {
		t.Fatalf("unchanged file: %v", err)
	}
	// A revocation rewrites the file: reloaded.
	write(f.fresh(t, 2, 42))
	if err := u.Refresh(ctx); err != nil || number(t, v) != 2 {
		t.Fatalf("reload: %v, number %d", err, number(t, v))
	}
	// A forged, a truncated and an old CRL never replace the good one.
	for name, data := range map[string][]byte{
		"forged":    f.crl(t, 3, t0, t0.Add(time.Hour), true),
		"truncated": f.fresh(t, 3)[:100],
		"rollback":  f.fresh(t, 1),
	} {
		write(data)
		if err := u.Refresh(ctx); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if number(t, v) != 2 {
			t.Errorf("%s: CRL in use is now %d", name, number(t, v))
		}
	}
	if !strings.Contains(log.String(), "CRL not updated: keeping the one in use") {
		t.Errorf("log: %s", log.String())
	}
}

func TestHTTP(t *testing.T) {
	f := newFixture(t)
	var (
		mu     sync.Mutex
		body   = f.fresh(t, 1)
		status = http.StatusOK
		n304   atomic.Int32
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if status != http.StatusOK {
			http.Error(w, "down", status)
			return
		}
		etag := fmt.Sprintf(`"%x"`, sha256.Sum256(body))
		if r.Header.Get("If-None-Match") == etag {
			n304.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", etag)
		w.Write(body)
	}))
	defer srv.Close()
	set := func(b []byte, s int) { mu.Lock(); body, status = b, s; mu.Unlock() }

	v := f.verifier(t, false)
	var log logBuf
	now := t0
	u, err := New(v, srv.URL+"/crl.pem", Options{Log: log.logger(), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := u.Refresh(ctx); err != nil || number(t, v) != 1 {
		t.Fatalf("first fetch: %v, number %d", err, number(t, v))
	}
	if err := u.Refresh(ctx); err != nil || number(t, v) != 1 || n304.Load() != 1 {
		t.Fatalf("not modified: %v, %d 304 answers", err, n304.Load())
	}
	// Swap: the server publishes a new CRL, the next fetch uses it.
	set(f.fresh(t, 2, 7), http.StatusOK)
	if err := u.Refresh(ctx); err != nil || number(t, v) != 2 {
		t.Fatalf("swap: %v, number %d", err, number(t, v))
	}
	// Failure: the server is down, the last good CRL stays; past its
	// NextUpdate the log says so (crl_required = false).
	set(nil, http.StatusServiceUnavailable)
	now = t0.Add(8 * 24 * time.Hour)
	if err := u.Refresh(ctx); err == nil {
		t.Fatal("HTTP 503 is not an error")
	}
	if number(t, v) != 2 {
		t.Errorf("CRL in use after a failed fetch: %d", number(t, v))
	}
	if s := log.String(); !strings.Contains(s, "keeping the last good CRL past its next update") || !strings.Contains(s, "still using it (crl_required = false)") {
		t.Errorf("log: %s", s)
	}
	// A forged CRL served over the URL is refused.
	set(f.crl(t, 9, now, now.Add(time.Hour), true, 1), http.StatusOK)
	if err := u.Refresh(ctx); !errors.Is(err, pki.ErrCRL) || number(t, v) != 2 {
		t.Errorf("forged over HTTP: %v, number %d", err, number(t, v))
	}
	// The server recovers with a fresh CRL.
	set(f.crl(t, 3, now.Add(-time.Minute), now.Add(time.Hour), false), http.StatusOK)
	if err := u.Refresh(ctx); err != nil || number(t, v) != 3 {
		t.Errorf("recovery: %v, number %d", err, number(t, v))
	}
	if !strings.Contains(log.String(), "CRL fresh again") {
		t.Errorf("log: %s", log.String())
	}
	// An unreachable server is an error, not a hang.
	srv.Close()
	if err := u.Refresh(ctx); err == nil {
		t.Error("closed server: no error")
	}
}

// Run polls the source on its interval, with an injected fetcher, in a
// synctest bubble (fake time): a stale CRL under crl_required is logged as
// refusing every certificate client, once, and a fresh one ends it.
func TestRun(t *testing.T) {
	f := newFixture(t)
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var (
			mu    sync.Mutex
			crl   = f.crl(t, 1, start.Add(-time.Minute), start.Add(10*time.Minute), false)
			calls int
		)
		fetch := func(context.Context) ([]byte, error) {
			mu.Lock()
			defer mu.Unlock()
			calls++
			if crl == nil {
				return nil, errors.New("server down")
			}
			return crl, nil
		}
		v := f.verifier(t, true)
		var log logBuf
		u, err := New(v, "https://ca.invalid/crl.pem", Options{Fetch: fetch, Interval: time.Minute, Log: log.logger()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- u.Run(ctx) }()
		synctest.Wait()
		if number(t, v) != 1 {
			t.Fatalf("not loaded at start")
		}
		mu.Lock()
		crl = nil // the CA's server goes down
		mu.Unlock()
		time.Sleep(15 * time.Minute) // past NextUpdate
		synctest.Wait()
		s := log.String()
		if strings.Count(s, "refusing every certificate client") != 1 {
			t.Errorf("want one refusal line, log:\n%s", s)
		}
		mu.Lock()
		if calls != 16 {
			t.Errorf("%d fetches in 15 minutes at a 1-minute interval, want 16", calls)
		}
		crl = f.crl(t, 2, time.Now().Add(-time.Second), time.Now().Add(time.Hour), false)
		mu.Unlock()
		time.Sleep(time.Minute)
		synctest.Wait()
		if number(t, v) != 2 || !strings.Contains(log.String(), "CRL fresh again") {
			t.Errorf("recovery: number %d, log:\n%s", number(t, v), log.String())
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v", err)
		}
	})
}

func TestNew(t *testing.T) {
	v := newFixture(t).verifier(t, true)
	if _, err := New(v, "", Options{}); err == nil {
		t.Error("empty source accepted")
	}
	if _, err := New(v, "https://", Options{}); err == nil {
		t.Error("URL without a host accepted")
	}
	if _, err := New(nil, "/x", Options{}); err == nil {
		t.Error("nil verifier accepted")
	}
	if u, err := New(v, "https://ca.example.org/crl.pem", Options{}); err != nil || u.interval != DefaultURLInterval {
		t.Errorf("URL source: %v", err)
	}
	if u, err := New(v, "/etc/sesame/ca/crl.pem", Options{}); err != nil || u.interval != DefaultFileInterval {
		t.Errorf("file source: %v", err)
	}
}

package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sesame-gw/sesame/internal/config"
	"github.com/sesame-gw/sesame/internal/pki"
	"github.com/sesame-gw/sesame/internal/pki/certfile"
	"github.com/sesame-gw/sesame/internal/pki/crlsrc"
	"github.com/sesame-gw/sesame/internal/spagw"
)

// initialCRLTimeout bounds the first CRL fetch when a verifier is made
// (start, or a reload that changes the CA or the CRL): the gateway does
// not wait longer for an unreachable URL; certificate clients are refused
// (no-crl) until the background updater gets one.
const initialCRLTimeout = 10 * time.Second

// addPKI fills s.Certs from the [pki] table, if any (docs/pki.md §7): the
// verifier of the CA and its CRL, kept current by a background updater
// shared across reloads that keep the CA, the CRL source and their
// settings (see sharedPKI). The returned function releases this
// configuration's hold on it.
func addPKI(s *spagw.Settings, cfg *config.Config, log *slog.Logger) (func(), error) {
	if cfg.PKI == nil {
		return func() {}, nil
	}
	v, release, err := certs.acquire(cfg, log)
	if err != nil {
		return nil, err
	}
	p := cfg.PKI
	s.Certs = &spagw.Certificates{Verifier: v, Names: slices.Clone(p.Names), Local: p.Local()}
	allow := "what certificates say"
	if len(p.Allow) > 0 {
		var a []string
		for _, r := range p.Local().Allow {
			a = append(a, r.String())
		}
		allow = strings.Join(a, ",")
	}
	log.Info("certificate SPA", "ca", v.CA().Subject.String(), "crl", cfg.PKICRLSource(), "crl_required", p.CRLRequired(),
		"names", p.Names, "allow", allow)
	return release, nil
}

// sharedPKI keeps one verifier and CRL updater per [pki] setting (the CA
// certificate, the CRL source, crl_required, crl_refresh) for as long as
// a configuration uses it. A reload that keeps them keeps the verifier,
// with its CRL (and the CRL number that refuses a rollback); one that
// changes them makes a new verifier, loads its CRL before the new
// configuration goes live, and the old updater stops when the old
// configuration is released.
type sharedPKI struct {
	mu   sync.Mutex
	m    map[pkiKey]*pkiRef
	live []*pkiRef // in use, the most recently acquired last
}

type pkiKey struct {
	ca       string // DER
	crl      string
	required bool
	refresh  time.Duration
}

type pkiRef struct {
	key    pkiKey
	v      *pki.Verifier
	u      *crlsrc.Updater
	cancel context.CancelFunc
	done   chan struct{}
	refs   int
}

var certs = sharedPKI{m: map[pkiKey]*pkiRef{}}

func (r *sharedPKI) acquire(cfg *config.Config, log *slog.Logger) (*pki.Verifier, func(), error) {
	p := cfg.PKI
	ca := p.CACert()
	if ca == nil { // a config from config.Parse rather than Load
		var err error
		if ca, err = certfile.ReadCert(cfg.PKICAPath()); err != nil {
			return nil, nil, fmt.Errorf("[pki] ca: %w", err)
		}
	}
	key := pkiKey{ca: string(ca.Raw), crl: cfg.PKICRLSource(), required: p.CRLRequired(), refresh: p.CRLRefresh.D()}
	r.mu.Lock()
	defer r.mu.Unlock()
	ref, ok := r.m[key]
	if !ok {
		var err error
		if ref, err = startPKI(key, ca, log); err != nil {
			return nil, nil, err
		}
		r.m[key] = ref
	}
	ref.refs++
	r.live = append(slices.DeleteFunc(r.live, func(x *pkiRef) bool { return x == ref }), ref)
	var once sync.Once
	release := func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			if ref.refs--; ref.refs > 0 {
				return
			}
			delete(r.m, key)
			r.live = slices.DeleteFunc(r.live, func(x *pkiRef) bool { return x == ref })
			ref.cancel()
			<-ref.done
		})
	}
	return ref.v, release, nil
}

// startPKI makes the verifier for key, loads the CRL once (bounded by
// initialCRLTimeout; a failure is logged by the updater and the gateway
// goes on) and starts the updater.
func startPKI(key pkiKey, ca *x509.Certificate, log *slog.Logger) (*pkiRef, error) {
	v, err := pki.NewVerifier(ca, pki.Options{CRLRequired: key.required})
	if err != nil {
		return nil, fmt.Errorf("[pki] ca: %w", err)
	}
	u, err := crlsrc.New(v, key.crl, crlsrc.Options{Interval: key.refresh, Log: log})
	if err != nil {
		return nil, fmt.Errorf("[pki] crl: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), initialCRLTimeout)
	u.Refresh(ctx)
	cancel()
	ref := &pkiRef{key: key, v: v, u: u, done: make(chan struct{})}
	ctx, ref.cancel = context.WithCancel(context.Background())
	go func() {
		defer close(ref.done)
		u.Run(ctx)
	}()
	return ref, nil
}

// current is the verifier of the configuration acquired last and still
// in use (the running one), or nil.
func (r *sharedPKI) current() *pki.Verifier {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.live) == 0 {
		return nil
	}
	return r.live[len(r.live)-1].v
}

// Counters `sesame status` shows in its certificates line (and --json
// under counters). Times are Unix seconds.
const (
	crlLoaded     = "crl_loaded"
	crlFresh      = "crl_fresh"
	crlNumber     = "crl_number"
	crlRevoked    = "crl_revoked"
	crlThisUpdate = "crl_this_update_unix"
	crlNextUpdate = "crl_next_update_unix"
)

// addCRLStatus adds the running verifier's CRL state to counters: nothing
// without [pki].
func addCRLStatus(counters map[string]uint64, now time.Time) {
	v := certs.current()
	if v == nil || counters == nil {
		return
	}
	info, ok := v.CRL()
	counters[crlLoaded] = b2u(ok)
	if !ok {
		return
	}
	counters[crlFresh] = b2u(info.Fresh(now))
	if info.Number.IsUint64() {
		counters[crlNumber] = info.Number.Uint64()
	}
	counters[crlRevoked] = uint64(info.Revoked)
	counters[crlThisUpdate] = uint64(max(0, info.ThisUpdate.Unix()))
	counters[crlNextUpdate] = uint64(max(0, info.NextUpdate.Unix()))
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

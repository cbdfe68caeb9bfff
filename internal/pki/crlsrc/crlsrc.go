// Package crlsrc keeps a pki.Verifier's CRL current (docs/pki.md §4): it
// reads the CRL from a file, reloaded when the file changes, or fetches it
// from an http(s) URL, and hands every new CRL to Verifier.SetCRL, which
// verifies it and swaps it in atomically. A CRL that fails (unreadable,
// not signed by the CA, older than the one in use) never replaces a good
// one. It logs what gateways operators need to know: a new CRL, a failed
// update, and a CRL going past its NextUpdate, with what that means under
// crl_required (every certificate client refused) or not (the last good
// CRL still used).
//
// The fetcher and the clock are injectable (Options.Fetch, Options.Now), so
// tests need neither a network nor real time. An Updater is safe for
// concurrent use.
package crlsrc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/sesame-gw/sesame/internal/pki"
)

// Default polling intervals.
const (
	DefaultFileInterval = 5 * time.Second
	DefaultURLInterval  = 5 * time.Minute
)

// ErrNotModified is returned by a Fetcher when the CRL has not changed
// since its last successful fetch (same file, HTTP 304).
var ErrNotModified = errors.New("CRL not modified")

// Fetcher returns the current CRL (PEM or DER), or ErrNotModified.
type Fetcher func(ctx context.Context) ([]byte, error)

// Options configure an Updater. Zero fields take defaults.
type Options struct {
	// Interval is how often the source is polled: DefaultFileInterval for a
	// file, DefaultURLInterval for a URL.
	Interval time.Duration
	// Fetch replaces the fetcher built from the source (tests).
	Fetch Fetcher
	// Now is the clock used to judge freshness for the logs; time.Now.
	Now func() time.Time
	// Log receives the updater's messages; nil discards.
	Log *slog.Logger
	// HTTP configures URL fetching.
	HTTP HTTPOptions
}

// Updater polls one CRL source for one Verifier.
type Updater struct {
	v        *pki.Verifier
	source   string
	fetch    Fetcher
	interval time.Duration
	now      func() time.Time
	log      *slog.Logger

	mu      sync.Mutex // serialises Refresh; guards the fields below
	lastErr string
	stale   bool
}

// IsURL reports whether source names an http or https URL rather than a
// file.
func IsURL(source string) bool {
	return strings.HasPrefix(source, "https://") || strings.HasPrefix(source, "http://")
}

// New returns an Updater loading source — a file path, or an http:// or
// https:// URL ([pki] crl) — into v. Nothing is read until Refresh or Run.
func New(v *pki.Verifier, source string, opts Options) (*Updater, error) {
	if v == nil {
		return nil, errors.New("crlsrc: nil verifier")
	}
	if source == "" && opts.Fetch == nil {
		return nil, errors.New("crlsrc: no CRL source (a file or an http(s) URL)")
	}
	u := &Updater{v: v, source: source, fetch: opts.Fetch, interval: opts.Interval, now: opts.Now, log: opts.Log}
	if u.now == nil {
		u.now = time.Now
	}
	if u.log == nil {
		u.log = slog.New(slog.DiscardHandler)
	}
	isURL := IsURL(source)
	if u.interval <= 0 {
		u.interval = DefaultFileInterval
		if isURL {
			u.interval = DefaultURLInterval
		}
	}
	if u.fetch == nil {
		if isURL {
			p, err := url.Parse(source)
			if err != nil || p.Host == "" {
				return nil, fmt.Errorf("crlsrc: bad CRL URL %q", source)
			}
			u.fetch = HTTPFetcher(source, opts.HTTP)
		} else {
			u.fetch = FileFetcher(source)
		}
	}
	return u, nil
}

// Source is the file or URL the Updater reads.
func (u *Updater) Source() string { return u.source }

// Refresh fetches the CRL once and, if it changed, hands it to
// Verifier.SetCRL. It returns nil when the CRL in use is now the newest
// one the source offered (including "not modified"), and the fetch or
// verification error otherwise; the CRL in use is then unchanged.
func (u *Updater) Refresh(ctx context.Context) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	err := u.refresh(ctx)
	u.report(err)
	return err
}

func (u *Updater) refresh(ctx context.Context) error {
	data, err := u.fetch(ctx)
	if errors.Is(err, ErrNotModified) {
		if _, ok := u.v.CRL(); ok {
			return nil
		}
		return errors.New("CRL not modified since it was refused")
	}
	if err != nil {
		return err
	}
	before, had := u.v.CRL()
	info, err := u.v.SetCRL(data)
	if err != nil {
		return err
	}
	if !had || info.Number.Cmp(before.Number) != 0 {
		u.log.Info("CRL loaded", "source", u.source, "number", info.Number.String(),
			"this_update", info.ThisUpdate.UTC().Format(time.RFC3339),
			"next_update", info.NextUpdate.UTC().Format(time.RFC3339), "revoked", info.Revoked)
	}
	return nil
}

// report logs a failed update once per distinct error, and a change of
// freshness once per transition, with its consequence. u.mu is held.
func (u *Updater) report(err error) {
	now := u.now()
	info, ok := u.v.CRL()
	if err == nil {
		u.lastErr = ""
	} else if msg := err.Error(); msg != u.lastErr {
		u.lastErr = msg
		switch {
		case !ok:
			u.log.Error("no valid CRL: refusing every certificate client", "source", u.source, "err", err)
		case !info.Fresh(now) && u.v.CRLRequired():
			u.log.Error("CRL not updated and the one in use is stale: refusing every certificate client (crl_required)", "source", u.source, "err", err, "next_update", info.NextUpdate.UTC().Format(time.RFC3339))
		case !info.Fresh(now):
			u.log.Warn("CRL not updated: keeping the last good CRL past its next update (crl_required = false)", "source", u.source, "err", err, "next_update", info.NextUpdate.UTC().Format(time.RFC3339))
		default:
			u.log.Warn("CRL not updated: keeping the one in use", "source", u.source, "err", err, "next_update", info.NextUpdate.UTC().Format(time.RFC3339))
		}
	}
	if !ok {
		return
	}
	stale := !info.Fresh(now)
	if stale == u.stale {
		return
	}
	u.stale = stale
	switch {
	case !stale:
		u.log.Info("CRL fresh again", "source", u.source, "number", info.Number.String(), "next_update", info.NextUpdate.UTC().Format(time.RFC3339))
	case u.v.CRLRequired():
		u.log.Error("CRL outside its validity: refusing every certificate client until a fresh one is loaded (crl_required)", "source", u.source, "number", info.Number.String(),
			"this_update", info.ThisUpdate.UTC().Format(time.RFC3339), "next_update", info.NextUpdate.UTC().Format(time.RFC3339))
	default:
		u.log.Warn("CRL outside its validity: still using it (crl_required = false)", "source", u.source, "number", info.Number.String(),
			"this_update", info.ThisUpdate.UTC().Format(time.RFC3339), "next_update", info.NextUpdate.UTC().Format(time.RFC3339))
	}
}

// Run refreshes at once, then every interval, until ctx is done; it
// returns ctx's error. Errors are logged, never fatal: the gateway keeps
// serving raw-key clients, and certificate clients as the CRL state
// allows.
func (u *Updater) Run(ctx context.Context) error {
	t := time.NewTicker(u.interval)
	defer t.Stop()
	for {
		u.Refresh(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

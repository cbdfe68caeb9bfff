package config

import (
	"crypto/x509"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/sesame-gw/sesame/internal/pki"
	"github.com/sesame-gw/sesame/internal/pki/certfile"
	"github.com/sesame-gw/sesame/internal/pki/crlsrc"
	"github.com/sesame-gw/sesame/internal/service"
)

// Limits of the [pki] table.
const (
	MinCRLRefresh = time.Second
	MaxCRLRefresh = 24 * time.Hour
	maxPKINames   = 16 // as many as a certificate's scope may list
)

// PKI is the [pki] table: certificate SPA (docs/pki.md §7), credential
// kind 2 of the native SPA protocol. Present means enabled; it needs
// [spa] (the gateway key and port). The gateway trusts client
// certificates signed by CA, checks them against the CA's CRL, and grants
// the intersection of each certificate's authorization and the local
// limits below.
type PKI struct {
	// CA is the CA certificate file (PEM, `sesame ca init` writes
	// ca.crt). A relative path is relative to the config file's directory.
	CA string `toml:"ca"`
	// CRL is the CA's CRL: a file (reloaded when it changes) or an http://
	// or https:// URL (fetched in the background).
	CRL string `toml:"crl"`
	// CRLRequiredSet is crl_required as written; nil means the default,
	// true. Use CRLRequired.
	CRLRequiredSet *bool `toml:"crl_required"`
	// CRLRefresh is how often the CRL source is polled; 0 means the
	// default: 5s for a file, 5m for a URL.
	CRLRefresh Duration `toml:"crl_refresh"`
	// Names are the names this gateway answers to in a certificate's
	// scope (sesame ca issue --gateway NAME).
	Names []string `toml:"name"`
	// Allow, when not empty, limits what certificate clients may open to
	// these services (intersected with their certificate's); the services
	// are protected (hidden until granted). Empty: what certificates say.
	Allow []Range `toml:"allow"`
	// MaxDuration, when set, caps every certificate's maximum duration.
	MaxDuration Duration `toml:"max_duration"`
	// Sources limits where certificate clients may send from; empty means
	// anywhere.
	Sources []Prefix `toml:"sources"`
	// OtherAddress lets certificate clients ask to open for an address
	// other than the packet's source.
	OtherAddress bool `toml:"other_address"`

	ca *x509.Certificate // read by Load
}

// CRLRequired is crl_required: true (the default) refuses every
// certificate client while the CRL is stale (fail closed).
func (p *PKI) CRLRequired() bool { return p.CRLRequiredSet == nil || *p.CRLRequiredSet }

// CACert is the CA certificate, read and checked by Load (nil after Parse
// alone).
func (p *PKI) CACert() *x509.Certificate { return p.ca }

// Local is the [pki] local limit as the resolver takes it.
func (p *PKI) Local() pki.Local {
	l := pki.Local{MaxDuration: p.MaxDuration.D(), Sources: prefixes(p.Sources), OtherAddress: p.OtherAddress}
	for _, r := range p.Allow {
		l.Allow = append(l.Allow, service.Range(r))
	}
	return l
}

// PKICAPath is [pki] ca, a relative path taken from the config file's
// directory; "" without [pki].
func (c *Config) PKICAPath() string {
	if c.PKI == nil {
		return ""
	}
	return c.relative(c.PKI.CA)
}

// PKICRLSource is [pki] crl: a URL as written, or a file path (relative
// paths taken from the config file's directory); "" without [pki].
func (c *Config) PKICRLSource() string {
	if c.PKI == nil {
		return ""
	}
	if crlsrc.IsURL(c.PKI.CRL) {
		return c.PKI.CRL
	}
	return c.relative(c.PKI.CRL)
}

func (c *Config) relative(path string) string {
	if path == "" || filepath.IsAbs(path) || c.File == "" {
		return path
	}
	return filepath.Join(filepath.Dir(c.File), path)
}

// pkiErr records an error for a key of the [pki] table, named pki.KEY as
// unknown keys are.
func pkiErr(v *validator, key, format string, args ...any) {
	name := "pki"
	if key != "" {
		name += "." + key
	}
	v.errs = append(v.errs, &Error{File: v.file, Line: locate(v.src, "pki", 0, key), Key: name, Err: fmt.Errorf(format, args...)})
}

// validatePKI checks [pki].
func (c *Config) validatePKI(v *validator) {
	p := c.PKI
	if p == nil {
		return
	}
	if c.SPA == nil {
		pkiErr(v, "", "[pki] needs an [spa] table with the gateway key and port")
	}
	if p.CA == "" {
		pkiErr(v, "ca", "missing: the CA certificate file (sesame ca init writes ca.crt)")
	}
	switch {
	case p.CRL == "":
		pkiErr(v, "crl", "missing: the CA's CRL, a file (crl.pem) or an http(s) URL")
	case crlsrc.IsURL(p.CRL):
		if u, err := url.Parse(p.CRL); err != nil || u.Host == "" {
			pkiErr(v, "crl", "%q is not a valid URL", p.CRL)
		}
	case strings.Contains(p.CRL, "://"):
		pkiErr(v, "crl", "%q: only http:// and https:// URLs, or a file path", p.CRL)
	}
	if p.CRLRefresh != 0 && (p.CRLRefresh.D() < MinCRLRefresh || p.CRLRefresh.D() > MaxCRLRefresh) {
		pkiErr(v, "crl_refresh", "%v is not from %v to %v", p.CRLRefresh.D(), MinCRLRefresh, MaxCRLRefresh)
	}
	if len(p.Names) > maxPKINames {
		pkiErr(v, "name", "%d names, at most %d", len(p.Names), maxPKINames)
	}
	for _, n := range p.Names {
		if err := checkGatewayName(n); err != nil {
			pkiErr(v, "name", "%v", err)
		}
	}
	if p.MaxDuration < 0 || p.MaxDuration.D() > MaxDuration {
		pkiErr(v, "max_duration", "%v is not from 1ms to %v", p.MaxDuration.D(), MaxDuration)
	}
	knocks := map[service.Service]string{}
	for _, d := range c.Doors {
		for _, s := range d.Sequence {
			knocks[service.Service(s)] = d.Name
		}
	}
	spaPort, hasSPA := c.SPAPort()
	for _, r := range p.Allow {
		r := service.Range(r)
		if r.Len() > maxAllowRange {
			pkiErr(v, "allow", "range %v is too wide (at most %d ports)", r, maxAllowRange)
			continue
		}
		if hasSPA && r.Contains(spaPort) {
			pkiErr(v, "allow", "%v is the SPA port; it must stay closed", spaPort)
		}
		for _, s := range r.Services() {
			if door, ok := knocks[s]; ok {
				pkiErr(v, "allow", "%v is a knock port of door %q; a knock port must stay closed", s, door)
				break
			}
		}
	}
	if len(p.Allow) == 0 && len(c.Doors) == 0 && len(c.Clients) == 0 {
		pkiErr(v, "allow", "empty, and no [[door]] or [[client]] protects a service: nothing would be hidden; list what certificate holders may open here (e.g. allow = [\"22/tcp\"])")
	}
}

// checkGatewayName is the rule of a certificate's gateway names
// (docs/pki.md §3.2): 1 to 253 letters, digits, '-' and '.'.
func checkGatewayName(n string) error {
	if len(n) == 0 || len(n) > pki.MaxNameLen {
		return fmt.Errorf("name of %d characters (want 1 to %d)", len(n), pki.MaxNameLen)
	}
	for i := 0; i < len(n); i++ {
		ch := n[i]
		if !('a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' || ch == '-' || ch == '.') {
			return fmt.Errorf("name %q: only letters, digits, '-' and '.'", n)
		}
	}
	return nil
}

// addPKIServices adds the services [pki] allow lets certificate clients
// open to set: they are protected like a client's.
func (c *Config) addPKIServices(set map[service.Service]bool) {
	if c.PKI == nil {
		return
	}
	for _, r := range c.PKI.Allow {
		if r := service.Range(r); r.Len() <= maxAllowRange {
			for _, s := range r.Services() {
				set[s] = true
			}
		}
	}
}

// loadPKI reads the [pki] CA certificate, which must be a CA allowed to
// sign certificates and CRLs.
func (c *Config) loadPKI(src string) error {
	if c.PKI == nil {
		return nil
	}
	fail := func(err error) error {
		return &Error{File: c.File, Line: locate(src, "pki", 0, "ca"), Key: "pki.ca", Err: err}
	}
	ca, err := certfile.ReadCert(c.PKICAPath())
	if err != nil {
		return fail(err)
	}
	if _, err := pki.NewVerifier(ca, pki.Options{}); err != nil {
		return fail(fmt.Errorf("%s: %w", c.PKICAPath(), err))
	}
	c.PKI.ca = ca
	return nil
}

// Package cadir is a Sesame certificate authority kept in one directory
// (docs/pki.md §5), the engine of `sesame ca`:
//
//	ca.crt      the CA certificate (PEM), what every gateway is given
//	ca.key      its private key (PKCS #8 PEM, 0600)
//	crl.pem     the CRL signed by the CA, rewritten by every revocation
//	index.json  issued and revoked certificates, the last CRL number
//	.lock       flock(2) target: one `sesame ca` at a time
//
// Init creates the directory's content; Open takes the lock and reads it;
// Issue signs client certificates carrying a pki.Authorization; Revoke
// marks one revoked and re-signs the CRL; SignCRL re-signs it unchanged
// (run it from cron well before NextUpdate). A CA is not safe for
// concurrent use; the lock excludes other processes.
package cadir

import (
	"crypto"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/sesame-gw/sesame/internal/pki"
	"github.com/sesame-gw/sesame/internal/pki/certfile"
	"github.com/sesame-gw/sesame/internal/spa"
	"github.com/sesame-gw/sesame/internal/spakey"
)

// File names inside the CA directory.
const (
	CertFile  = "ca.crt"
	KeyFile   = "ca.key"
	CRLFile   = "crl.pem"
	IndexFile = "index.json"
	lockFile  = ".lock"
)

// Defaults.
const (
	DefaultName        = "Sesame CA"
	DefaultCAValidity  = 10 * 365 * 24 * time.Hour
	DefaultCRLValidFor = 30 * 24 * time.Hour
	// Backdate is how far before "now" certificates start, so that a
	// gateway whose clock is a little behind accepts a fresh certificate.
	Backdate = 5 * time.Minute
	// MaxNameLen bounds a client name (the certificate's common name).
	MaxNameLen = 64
)

// CA is an opened CA directory, holding its lock until Close.
type CA struct {
	dir  string
	lock *os.File
	cert *x509.Certificate
	key  crypto.Signer
	ix   *index
}

// InitOptions configure Init. Zero fields take the defaults.
type InitOptions struct {
	Name        string           // subject common name; DefaultName
	KeyType     certfile.KeyType // certfile.Ed25519 (default) or P256
	ValidFor    time.Duration    // CA certificate lifetime; DefaultCAValidity
	CRLValidFor time.Duration    // NextUpdate - ThisUpdate; DefaultCRLValidFor
}

// Init creates a CA in dir (made 0700 if missing): a self-signed CA
// certificate, its key (0600), an empty index and a first, empty CRL.
// It refuses a directory that already holds a CA (the error wraps
// fs.ErrExist). The returned CA is open; Close it.
func Init(dir string, opts InitOptions, now time.Time) (*CA, error) {
	if opts.Name == "" {
		opts.Name = DefaultName
	}
	if opts.KeyType == "" {
		opts.KeyType = certfile.Ed25519
	}
	if opts.ValidFor == 0 {
		opts.ValidFor = DefaultCAValidity
	}
	if opts.CRLValidFor == 0 {
		opts.CRLValidFor = DefaultCRLValidFor
	}
	if opts.ValidFor < 0 || opts.CRLValidFor < time.Minute {
		return nil, fmt.Errorf("ca init: validity %v, CRL validity %v", opts.ValidFor, opts.CRLValidFor)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ca init: %w", err)
	}
	c, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	var written []string // removed again if Init fails half-way
	fail := func(err error) (*CA, error) {
		for _, f := range written {
			os.Remove(f)
		}
		c.Close()
		return nil, fmt.Errorf("ca init: %w", err)
	}
	for _, f := range []string{KeyFile, CertFile, IndexFile, CRLFile} {
		if _, err := os.Lstat(filepath.Join(dir, f)); err == nil {
			return fail(fmt.Errorf("%s already holds a CA (%s): %w", dir, f, fs.ErrExist))
		}
	}
	key, err := certfile.GenerateKey(opts.KeyType)
	if err != nil {
		return fail(err)
	}
	serial, err := randomSerial()
	if err != nil {
		return fail(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: opts.Name},
		NotBefore:             now.Add(-Backdate).UTC().Truncate(time.Second),
		NotAfter:              now.Add(opts.ValidFor).UTC().Truncate(time.Second),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true, // leaves only: no intermediates
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fail(err)
	}
	if c.cert, err = x509.ParseCertificate(der); err != nil {
		return fail(err)
	}
	c.key = key
	if err := certfile.WriteKey(c.path(KeyFile), key); err != nil {
		return fail(err)
	}
	written = append(written, c.path(KeyFile))
	if err := certfile.WriteCert(c.path(CertFile), der); err != nil {
		return fail(err)
	}
	written = append(written, c.path(CertFile), c.path(IndexFile), c.path(CRLFile))
	c.ix = &index{Version: 1, CRLValidFor: opts.CRLValidFor.String(), Certs: []Entry{}}
	if _, err := c.SignCRL(now); err != nil {
		return fail(err)
	}
	return c, nil
}

// Open opens the CA in dir, waiting for its lock.
func Open(dir string) (*CA, error) {
	c, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*CA, error) { c.Close(); return nil, fmt.Errorf("open CA %s: %w", dir, err) }
	if c.cert, err = certfile.ReadCert(c.path(CertFile)); err != nil {
		return fail(err)
	}
	if c.key, err = certfile.ReadKey(c.path(KeyFile)); err != nil {
		return fail(err)
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if pub, ok := c.key.Public().(equaler); !ok || !pub.Equal(c.cert.PublicKey) {
		return fail(errors.New("ca.key does not match ca.crt"))
	}
	if c.ix, err = readIndex(c.path(IndexFile)); err != nil {
		return fail(err)
	}
	return c, nil
}

func lockDir(dir string) (*CA, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("CA directory %s: %w", dir, err)
	}
	if err := lock(f); err != nil {
		f.Close()
		return nil, err
	}
	return &CA{dir: dir, lock: f}, nil
}

// Close releases the directory lock.
func (c *CA) Close() error {
	if c.lock == nil {
		return nil
	}
	err := c.lock.Close()
	c.lock = nil
	return err
}

func (c *CA) path(name string) string { return filepath.Join(c.dir, name) }

// Cert is the CA certificate.
func (c *CA) Cert() *x509.Certificate { return c.cert }

// Dir is the CA directory.
func (c *CA) Dir() string { return c.dir }

// List returns the index entries, oldest first.
func (c *CA) List() []Entry { return slices.Clone(c.ix.Certs) }

// randomSerial is 127 random bits, never zero (RFC 5280 §4.1.2.2: positive,
// at most 20 octets).
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 127)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("serial: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// IssueRequest is a client certificate to issue.
type IssueRequest struct {
	// Name is the client's name: the subject common name, and the client
	// name in gateway logs. 1 to 64 of letters, digits, '.', '_', '@', '-'.
	Name string
	// PublicKey is the client's key: ed25519.PublicKey or *ecdsa.PublicKey
	// on P-256.
	PublicKey crypto.PublicKey
	// Authorization is what the holder may open, and where.
	Authorization pki.Authorization
	// ValidFor is the certificate's lifetime from now. It must end before
	// the CA certificate does.
	ValidFor time.Duration
}

// Issue signs a client certificate and records it in the index. The
// certificate has the client-auth extended key usage, digital signature
// key usage and the critical authorization extension, and is refused if
// it would be too large to travel in a packet asking for all its
// services.
func (c *CA) Issue(req IssueRequest, now time.Time) (*x509.Certificate, error) {
	if err := checkName(req.Name); err != nil {
		return nil, fmt.Errorf("issue: %w", err)
	}
	kt := certfile.TypeOf(req.PublicKey)
	if kt == "" {
		return nil, fmt.Errorf("issue: unsupported public key %T (want Ed25519 or ECDSA P-256)", req.PublicKey)
	}
	ext, err := req.Authorization.Extension()
	if err != nil {
		return nil, fmt.Errorf("issue: %w", err)
	}
	if req.ValidFor <= 0 {
		return nil, fmt.Errorf("issue: validity %v is not positive", req.ValidFor)
	}
	notAfter := now.Add(req.ValidFor).UTC().Truncate(time.Second)
	if notAfter.After(c.cert.NotAfter) {
		return nil, fmt.Errorf("issue: the certificate would outlive the CA certificate (expires %s)", c.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if !now.Before(c.cert.NotAfter) || now.Before(c.cert.NotBefore) {
		return nil, errors.New("issue: the CA certificate is not valid now")
	}
	var serial *big.Int
	for serial == nil || c.ix.find(pki.SerialText(serial)) != nil {
		if serial, err = randomSerial(); err != nil {
			return nil, fmt.Errorf("issue: %w", err)
		}
	}
	tmpl := &x509.Certificate{
		SerialNumber:    serial,
		Subject:         pkix.Name{CommonName: req.Name},
		NotBefore:       now.Add(-Backdate).UTC().Truncate(time.Second),
		NotAfter:        notAfter,
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		ExtraExtensions: []pkix.Extension{ext},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, req.PublicKey, c.key)
	if err != nil {
		return nil, fmt.Errorf("issue: %w", err)
	}
	if room := spa.CredentialRoom(len(req.Authorization.Services)); 2+len(der) > room {
		return nil, fmt.Errorf("issue: the certificate is %d bytes, packets have room for %d: fewer services, gateways or a shorter name", len(der), room-2)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("issue: %w", err)
	}
	e := Entry{
		Serial:      pki.SerialText(serial),
		Name:        req.Name,
		NotBefore:   cert.NotBefore,
		NotAfter:    cert.NotAfter,
		MaxDuration: req.Authorization.MaxDuration.String(),
		KeyType:     string(kt),
	}
	for _, r := range req.Authorization.Services {
		e.Allow = append(e.Allow, r.String())
	}
	for _, k := range req.Authorization.GatewayKeys {
		pub, err := ecdh.X25519().NewPublicKey(k)
		if err != nil {
			return nil, fmt.Errorf("issue: %w", err)
		}
		e.Gateways = append(e.Gateways, spakey.FormatGateway(pub))
	}
	e.Gateways = append(e.Gateways, req.Authorization.GatewayNames...)
	c.ix.Certs = append(c.ix.Certs, e)
	if err := c.ix.write(c.path(IndexFile)); err != nil {
		c.ix.Certs = c.ix.Certs[:len(c.ix.Certs)-1]
		return nil, fmt.Errorf("issue: %w", err)
	}
	return cert, nil
}

func checkName(n string) error {
	if len(n) == 0 || len(n) > MaxNameLen {
		return fmt.Errorf("name of %d characters (want 1 to %d)", len(n), MaxNameLen)
	}
	for i := 0; i < len(n); i++ {
		ch := n[i]
		if !('a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' || ch == '.' || ch == '_' || ch == '@' || ch == '-') {
			return fmt.Errorf("name %q: only letters, digits, '.', '_', '@' and '-'", n)
		}
	}
	return nil
}

// Revoke marks cert revoked at now and re-signs the CRL. cert must have
// been signed by this CA; one missing from the index (an index restored
// from backup) is added. Revoking a revoked certificate keeps the first
// revocation time and still re-signs the CRL (so a revocation interrupted
// between the index and the CRL completes); already reports it.
func (c *CA) Revoke(cert *x509.Certificate, now time.Time) (already bool, info pki.CRLInfo, err error) {
	if err := cert.CheckSignatureFrom(c.cert); err != nil {
		return false, pki.CRLInfo{}, fmt.Errorf("revoke: %q (serial %s) was not issued by this CA: %w", cert.Subject.CommonName, pki.SerialText(cert.SerialNumber), err)
	}
	serial := pki.SerialText(cert.SerialNumber)
	e := c.ix.find(serial)
	if e == nil {
		c.ix.Certs = append(c.ix.Certs, Entry{
			Serial: serial, Name: cert.Subject.CommonName, NotBefore: cert.NotBefore, NotAfter: cert.NotAfter,
			KeyType: string(certfile.TypeOf(cert.PublicKey)),
		})
		e = &c.ix.Certs[len(c.ix.Certs)-1]
	}
	return c.revoke(e, now)
}

// RevokeSerial is Revoke for a certificate known only by its serial (hex,
// as Entry.Serial): it must be in the index.
func (c *CA) RevokeSerial(serial string, now time.Time) (e Entry, already bool, info pki.CRLInfo, err error) {
	p := c.ix.find(serial)
	if p == nil {
		return Entry{}, false, pki.CRLInfo{}, fmt.Errorf("revoke: serial %s is not in %s (revoke with the certificate file instead)", serial, c.path(IndexFile))
	}
	already, info, err = c.revoke(p, now)
	return *p, already, info, err
}

func (c *CA) revoke(e *Entry, now time.Time) (already bool, info pki.CRLInfo, err error) {
	already = e.RevokedAt != nil
	if !already {
		t := now.UTC().Truncate(time.Second)
		e.RevokedAt = &t
	}
	info, err = c.SignCRL(now)
	return already, info, err
}

// SignCRL signs a new CRL at now (ThisUpdate = now, NextUpdate = now +
// the CA's CRL validity, the next CRL number) listing every revoked
// certificate that expired less than a day ago or not at all, and
// replaces crl.pem atomically. The index (with the new number) is written
// first, so a crash between the two never reuses a number.
func (c *CA) SignCRL(now time.Time) (pki.CRLInfo, error) {
	number := c.ix.CRLNumber + 1
	if cur, err := c.currentCRLNumber(); err == nil && cur >= number {
		number = cur + 1 // crl.pem is ahead of the index: never go back
	}
	rl := &x509.RevocationList{
		Number:     new(big.Int).SetUint64(number),
		ThisUpdate: now.UTC().Truncate(time.Second),
		NextUpdate: now.Add(c.ix.crlValidFor()).UTC().Truncate(time.Second),
	}
	for _, e := range c.ix.Certs {
		if e.RevokedAt == nil || e.NotAfter.Before(now.Add(-24*time.Hour)) {
			continue
		}
		n, ok := new(big.Int).SetString(e.Serial, 16)
		if !ok {
			return pki.CRLInfo{}, fmt.Errorf("sign CRL: index: bad serial %q", e.Serial)
		}
		rl.RevokedCertificateEntries = append(rl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: n, RevocationTime: *e.RevokedAt})
	}
	der, err := x509.CreateRevocationList(rand.Reader, rl, c.cert, c.key)
	if err != nil {
		return pki.CRLInfo{}, fmt.Errorf("sign CRL: %w", err)
	}
	c.ix.CRLNumber = number
	if err := c.ix.write(c.path(IndexFile)); err != nil {
		return pki.CRLInfo{}, fmt.Errorf("sign CRL: %w", err)
	}
	if err := certfile.WriteAtomic(c.path(CRLFile), pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644); err != nil {
		return pki.CRLInfo{}, fmt.Errorf("sign CRL: %w", err)
	}
	return pki.CRLInfo{Number: rl.Number, ThisUpdate: rl.ThisUpdate, NextUpdate: rl.NextUpdate, Revoked: len(rl.RevokedCertificateEntries)}, nil
}

// currentCRLNumber reads the number of crl.pem, if there is one.
func (c *CA) currentCRLNumber() (uint64, error) {
	data, err := os.ReadFile(c.path(CRLFile))
	if err != nil {
		return 0, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return 0, errors.New("no PEM block")
	}
	rl, err := x509.ParseRevocationList(block.Bytes)
	if err != nil {
		return 0, err
	}
	if rl.Number == nil || !rl.Number.IsUint64() {
		return 0, errors.New("no usable CRL number")
	}
	return rl.Number.Uint64(), nil
}

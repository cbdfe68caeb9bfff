package pki

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// MaxCRLSize bounds the CRL a Verifier accepts (and crlsrc reads): a
// 100,000-entry CRL is about 4 MB.
const MaxCRLSize = 8 << 20

// Errors of SetCRL. Every one wraps ErrCRL.
var (
	// ErrCRL: the data is not a CRL of this CA usable by Sesame.
	ErrCRL = errors.New("invalid CRL")
	// ErrCRLRollback: a validly signed CRL older than the one in use (a
	// lower CRL number, or the same number with other content). An
	// attacker on the path of a CRL URL could otherwise serve an old CRL
	// that predates a revocation.
	ErrCRLRollback = fmt.Errorf("%w: older than the CRL in use", ErrCRL)
)

// CRLInfo describes a CRL in use.
type CRLInfo struct {
	// Number is the cRLNumber extension (RFC 5280 §5.2.3).
	Number *big.Int
	// ThisUpdate and NextUpdate bound the CRL's validity: it is fresh when
	// ThisUpdate <= now < NextUpdate.
	ThisUpdate, NextUpdate time.Time
	// Revoked is the number of revoked serials listed.
	Revoked int
}

// Fresh reports whether the CRL is within its validity window at now.
func (i CRLInfo) Fresh(now time.Time) bool {
	return !now.Before(i.ThisUpdate) && now.Before(i.NextUpdate)
}

// crlState is a verified CRL, immutable once built.
type crlState struct {
	info    CRLInfo
	raw     []byte               // DER, to recognise a reload of the same CRL
	revoked map[string]time.Time // big-endian serial bytes -> revocation time
}

// parseCRL decodes a PEM ("X509 CRL") or DER CRL and checks that ca issued
// and signed it, that it has a cRLNumber and a NextUpdate after
// ThisUpdate, and no critical extension (a delta CRL, an issuing
// distribution point: not something Sesame's CA writes). Freshness is not
// checked here: a stale CRL is still the best knowledge of revocations, and
// whether to use it is the caller's decision.
func parseCRL(data []byte, ca *x509.Certificate) (*crlState, error) {
	if len(data) > MaxCRLSize {
		return nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrCRL, len(data), MaxCRLSize)
	}
	der := data
	if block, rest := pem.Decode(data); block != nil {
		if block.Type != "X509 CRL" {
			return nil, fmt.Errorf("%w: PEM block %q, want \"X509 CRL\"", ErrCRL, block.Type)
		}
		if len(bytes.TrimSpace(rest)) != 0 {
			return nil, fmt.Errorf("%w: data after the PEM block", ErrCRL)
		}
		der = block.Bytes
	}
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCRL, err)
	}
	if !bytes.Equal(rl.RawIssuer, ca.RawSubject) {
		return nil, fmt.Errorf("%w: issued by %q, not by the CA %q", ErrCRL, rl.Issuer, ca.Subject)
	}
	if len(rl.AuthorityKeyId) != 0 && len(ca.SubjectKeyId) != 0 && !bytes.Equal(rl.AuthorityKeyId, ca.SubjectKeyId) {
		return nil, fmt.Errorf("%w: authority key id does not match the CA", ErrCRL)
	}
	if err := rl.CheckSignatureFrom(ca); err != nil {
		return nil, fmt.Errorf("%w: signature: %v", ErrCRL, err)
	}
	if rl.Number == nil || rl.Number.Sign() < 0 {
		return nil, fmt.Errorf("%w: no CRL number", ErrCRL)
	}
	if rl.NextUpdate.IsZero() || !rl.NextUpdate.After(rl.ThisUpdate) {
		return nil, fmt.Errorf("%w: next update %v is not after this update %v", ErrCRL, rl.NextUpdate, rl.ThisUpdate)
	}
	for _, e := range rl.Extensions {
		if e.Critical {
			return nil, fmt.Errorf("%w: unsupported critical extension %v", ErrCRL, e.Id)
		}
	}
	s := &crlState{
		info: CRLInfo{
			Number:     new(big.Int).Set(rl.Number),
			ThisUpdate: rl.ThisUpdate,
			NextUpdate: rl.NextUpdate,
			Revoked:    len(rl.RevokedCertificateEntries),
		},
		raw:     bytes.Clone(der),
		revoked: make(map[string]time.Time, len(rl.RevokedCertificateEntries)),
	}
	for _, e := range rl.RevokedCertificateEntries {
		if e.SerialNumber == nil {
			return nil, fmt.Errorf("%w: entry without a serial", ErrCRL)
		}
		for _, x := range e.Extensions {
			if x.Critical {
				return nil, fmt.Errorf("%w: entry %x: unsupported critical extension %v", ErrCRL, e.SerialNumber, x.Id)
			}
		}
		s.revoked[serialKey(e.SerialNumber)] = e.RevocationTime
	}
	return s, nil
}

// serialKey is the map key of a serial: its sign and magnitude.
func serialKey(n *big.Int) string {
	if n.Sign() < 0 {
		return "-" + string(n.Bytes())
	}
	return string(n.Bytes())
}

// SetCRL verifies data (a PEM or DER CRL) against the CA and makes it the
// CRL in use, atomically: concurrent Checks see the old or the new one.
// A CRL older than the one in use is refused with ErrCRLRollback; the
// same CRL again is accepted and changes nothing. A stale CRL (outside
// ThisUpdate..NextUpdate) is accepted: it is newer than what is in use;
// Check decides whether a stale CRL may be relied on. On error the CRL in
// use does not change.
func (v *Verifier) SetCRL(data []byte) (CRLInfo, error) {
	s, err := parseCRL(data, v.ca)
	if err != nil {
		return CRLInfo{}, err
	}
	v.crlMu.Lock()
	defer v.crlMu.Unlock()
	if cur := v.crl.Load(); cur != nil {
		switch c := s.info.Number.Cmp(cur.info.Number); {
		case c < 0:
			return CRLInfo{}, fmt.Errorf("%w: number %v, in use %v", ErrCRLRollback, s.info.Number, cur.info.Number)
		case c == 0 && !bytes.Equal(s.raw, cur.raw):
			return CRLInfo{}, fmt.Errorf("%w: number %v reused with other content", ErrCRLRollback, s.info.Number)
		case c == 0:
			return cur.info.clone(), nil
		}
	}
	v.crl.Store(s)
	return s.info.clone(), nil
}

// CRL describes the CRL in use; ok is false before the first SetCRL.
func (v *Verifier) CRL() (info CRLInfo, ok bool) {
	s := v.crl.Load()
	if s == nil {
		return CRLInfo{}, false
	}
	return s.info.clone(), true
}

func (i CRLInfo) clone() CRLInfo {
	i.Number = new(big.Int).Set(i.Number)
	return i
}

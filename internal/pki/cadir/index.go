package cadir

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/sesame-gw/sesame/internal/pki/certfile"
)

// Entry is one issued certificate in the CA's index (index.json).
type Entry struct {
	// Serial is the certificate serial in lower-case hex.
	Serial string `json:"serial"`
	// Name is the subject common name.
	Name      string    `json:"name"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	// Allow and MaxDuration restate the authorization extension.
	Allow       []string `json:"allow"`
	MaxDuration string   `json:"max_duration"`
	// Gateways is the gateway scope (keys as sesame-gw1: text, names).
	Gateways []string `json:"gateways,omitempty"`
	KeyType  string   `json:"key_type"`
	// RevokedAt is set once the certificate is revoked.
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// Status is "valid", "revoked" or "expired" at now.
func (e Entry) Status(now time.Time) string {
	switch {
	case e.RevokedAt != nil:
		return "revoked"
	case now.After(e.NotAfter):
		return "expired"
	}
	return "valid"
}

// index is index.json: the CA's memory of what it issued and revoked.
type index struct {
	Version int `json:"version"`
	// CRLNumber is the number of the last CRL signed.
	CRLNumber uint64 `json:"crl_number"`
	// CRLValidFor is NextUpdate - ThisUpdate of the CRLs this CA signs.
	CRLValidFor string  `json:"crl_valid_for"`
	Certs       []Entry `json:"certs"`
}

func readIndex(path string) (*index, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var ix index
	if err := dec.Decode(&ix); err != nil {
		return nil, fmt.Errorf("read index %s: %w", path, err)
	}
	if ix.Version != 1 {
		return nil, fmt.Errorf("read index %s: version %d, want 1", path, ix.Version)
	}
	if _, err := time.ParseDuration(ix.CRLValidFor); err != nil {
		return nil, fmt.Errorf("read index %s: crl_valid_for: %w", path, err)
	}
	return &ix, nil
}

func (ix *index) write(path string) error {
	data, err := json.MarshalIndent(ix, "", "  ")
	if err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	return certfile.WriteAtomic(path, append(data, '\n'), 0o600)
}

func (ix *index) find(serial string) *Entry {
	for i := range ix.Certs {
		if ix.Certs[i].Serial == serial {
			return &ix.Certs[i]
		}
	}
	return nil
}

func (ix *index) crlValidFor() time.Duration {
	d, _ := time.ParseDuration(ix.CRLValidFor) // checked by readIndex
	return d
}

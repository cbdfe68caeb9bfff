package client

import (
	"fmt"
	"strings"

	"github.com/sesame-gw/sesame/internal/pki/certfile"
	"github.com/sesame-gw/sesame/internal/spa"
	"github.com/sesame-gw/sesame/internal/spakey"
)

// LoadIdentity reads what requests are signed with. Without certPath, the
// raw identity key at keyPath (sesame keygen; docs/protocol.md §3): the
// gateway must list its public key in a [[client]] table. With certPath,
// a client certificate (sesame ca issue) and its private key at keyPath
// (certfile.LoadIdentity; docs/pki.md): the certificate travels sealed in
// every request, and any gateway trusting its CA accepts it.
func LoadIdentity(keyPath, certPath string) (spa.Identity, error) {
	if certPath != "" {
		return certfile.LoadIdentity(certPath, keyPath)
	}
	k, err := spakey.ReadFile(keyPath)
	if err != nil {
		return spa.Identity{}, err
	}
	if k.Kind() != spakey.Identity {
		return spa.Identity{}, fmt.Errorf("%s is a gateway key; the client signs with an identity key (sesame keygen -o FILE)", keyPath)
	}
	return spa.KeyIdentity(k.Identity()), nil
}

// CertKeyPath is the key file that goes with a certificate file when none
// is named: alice.crt's is alice.key (what sesame ca issue --out alice
// writes).
func CertKeyPath(certPath string) string {
	return strings.TrimSuffix(certPath, ".crt") + ".key"
}

package spa

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
)

// MaxChainCerts is the most certificates a CredX509 credential may carry
// (docs/protocol.md §9). Sesame's own CA issues leaves directly, so a
// chain is one certificate; the framing leaves room for intermediates.
const MaxChainCerts = 4

// MaxSignatureSize is the longest signature a supported key makes: an
// ASN.1 DER ECDSA P-256 signature (Ed25519's are 64 bytes).
const MaxSignatureSize = 72

// ErrChain is wrapped by every error of ParseChain and EncodeChain.
var ErrChain = errors.New("invalid certificate chain encoding")

// EncodeChain encodes DER certificates, leaf first, as the cred field of a
// CredX509 credential (docs/protocol.md §9): each certificate prefixed by
// its length as a 2-byte big-endian integer. It does not parse the
// certificates.
func EncodeChain(certs [][]byte) ([]byte, error) {
	if len(certs) == 0 || len(certs) > MaxChainCerts {
		return nil, fmt.Errorf("%w: %d certificates (want 1 to %d)", ErrChain, len(certs), MaxChainCerts)
	}
	n := 0
	for i, c := range certs {
		if len(c) == 0 || len(c) > MaxSize {
			return nil, fmt.Errorf("%w: certificate %d is %d bytes", ErrChain, i, len(c))
		}
		n += 2 + len(c)
	}
	out := make([]byte, 0, n)
	for _, c := range certs {
		out = binary.BigEndian.AppendUint16(out, uint16(len(c)))
		out = append(out, c...)
	}
	return out, nil
}

// ParseChain splits a CredX509 credential into its DER certificates, leaf
// first. It is strict: 1 to MaxChainCerts certificates, none empty,
// nothing left over, so EncodeChain of the result gives data back. The
// certificates alias data and are not parsed.
func ParseChain(data []byte) ([][]byte, error) {
	var certs [][]byte
	for rest := data; len(rest) > 0; {
		if len(certs) == MaxChainCerts {
			return nil, fmt.Errorf("%w: more than %d certificates", ErrChain, MaxChainCerts)
		}
		if len(rest) < 2 {
			return nil, fmt.Errorf("%w: truncated length", ErrChain)
		}
		n := int(binary.BigEndian.Uint16(rest))
		rest = rest[2:]
		if n == 0 || n > len(rest) {
			return nil, fmt.Errorf("%w: certificate %d of %d bytes, %d left", ErrChain, len(certs), n, len(rest))
		}
		certs = append(certs, rest[:n:n])
		rest = rest[n:]
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: no certificate", ErrChain)
	}
	return certs, nil
}

// CertIdentity is the identity of a client holding a certificate
// (CredX509, docs/protocol.md §9): chain is DER, leaf first, without the
// CA's own certificate; key is the leaf's private key, an
// ed25519.PrivateKey or an *ecdsa.PrivateKey on P-256. It checks that key
// matches the leaf's public key; it does not check the chain (the gateway
// does).
func CertIdentity(chain [][]byte, key crypto.Signer) (Identity, error) {
	if key == nil {
		return Identity{}, errors.New("spa: certificate identity without a key")
	}
	data, err := EncodeChain(chain)
	if err != nil {
		return Identity{}, fmt.Errorf("spa: %w", err)
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return Identity{}, fmt.Errorf("spa: leaf certificate: %w", err)
	}
	if _, err := signatureSize(key.Public()); err != nil {
		return Identity{}, err
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if pub, ok := key.Public().(equaler); !ok || !pub.Equal(leaf.PublicKey) {
		return Identity{}, errors.New("spa: the private key does not match the certificate")
	}
	return Identity{Credential: Credential{Kind: CredX509, Data: data}, Signer: key}, nil
}

// signatureSize is the longest signature pub's private key makes, or an
// error for keys the protocol does not support.
func signatureSize(pub crypto.PublicKey) (int, error) {
	switch pub := pub.(type) {
	case ed25519.PublicKey:
		return ed25519.SignatureSize, nil
	case *ecdsa.PublicKey:
		if pub.Curve == elliptic.P256() {
			return MaxSignatureSize, nil
		}
		return 0, fmt.Errorf("spa: unsupported ECDSA curve %s (want P-256)", pub.Curve.Params().Name)
	}
	return 0, fmt.Errorf("spa: unsupported signing key %T (want Ed25519 or ECDSA P-256)", pub)
}

// CredentialRoom is the largest CredX509 credential (the encoded chain,
// with its length prefixes) that still fits in MaxSize with a request of
// services services, an IPv6 address and the longest signature
// (docs/protocol.md §9: 1,055 bytes for one service). A CA uses it to
// refuse issuing certificates too large to be sent.
func CredentialRoom(services int) int {
	body := 1 + 2 + 8 + 4 + 1 + 16 + 1 + serviceSize*services // all but cred
	return MaxSize - overhead - body - 1 - MaxSignatureSize
}

package spa

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/sesame-gw/sesame/internal/policy"
)

// Identity is what a client seals with: the credential it presents and the
// private key that signs. For raw keys use KeyIdentity, for certificates
// CertIdentity.
type Identity struct {
	Credential Credential
	// Signer signs the transcript: an Ed25519 key (ed25519.PrivateKey
	// implements crypto.Signer), or for CredX509 also an ECDSA P-256 key
	// (*ecdsa.PrivateKey), which signs SHA-256(transcript) in ASN.1 DER.
	Signer crypto.Signer
}

// KeyIdentity is the identity of a client known to gateways by its raw
// Ed25519 public key (CredEd25519).
func KeyIdentity(priv ed25519.PrivateKey) Identity {
	return Identity{
		Credential: Credential{Kind: CredEd25519, Data: priv.Public().(ed25519.PublicKey)},
		Signer:     priv,
	}
}

// ErrTooLarge is returned by Seal when the datagram would exceed MaxSize.
var ErrTooLarge = errors.New("spa: packet exceeds 1232 bytes")

// Seal builds the datagram asking the gateway whose X25519 public key is gw
// to grant req, timestamped now (docs/protocol.md §4-5). req.Duration is
// rounded up to whole seconds; the zero req.Addr means "the packet's
// source". Every call draws a fresh HPKE ephemeral key from crypto/rand (in
// tests, testing/cryptotest.SetGlobalRandom makes it deterministic). Seal
// is safe for concurrent use.
func Seal(id Identity, gw *ecdh.PublicKey, req policy.Request, now time.Time) ([]byte, error) {
	if gw == nil || gw.Curve() != ecdh.X25519() {
		return nil, errors.New("spa: gateway key is not an X25519 public key")
	}
	if id.Signer == nil {
		return nil, errors.New("spa: identity without a signer")
	}
	if id.Credential.Kind == CredEd25519 {
		pub, ok := id.Signer.Public().(ed25519.PublicKey)
		if !ok || !bytes.Equal(pub, id.Credential.Data) {
			return nil, errors.New("spa: signer does not match the ed25519 credential")
		}
	}
	body, err := appendBody(nil, id.Credential, now.UnixMilli(), req)
	if err != nil {
		return nil, err
	}
	sigSize, err := signatureSize(id.Signer.Public())
	if err != nil {
		return nil, err
	}
	gwb := gw.Bytes()
	if n := overhead + len(body) + 1 + sigSize; n > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, n)
	}
	pk, err := hpke.NewDHKEMPublicKey(gw)
	if err != nil {
		return nil, fmt.Errorf("spa: seal: %w", err)
	}
	enc, sender, err := hpke.NewSender(pk, suiteKDF(), suiteAEAD(), hpkeInfo(gwb))
	if err != nil {
		return nil, fmt.Errorf("spa: seal: %w", err)
	}
	sig, err := sign(id.Signer, transcript(gwb, enc, body))
	if err != nil {
		return nil, err
	}
	pt := append(append(body, byte(len(sig))), sig...)
	return finish(gwb, enc, sender, pt)
}

// sign signs the transcript: PureEdDSA with an Ed25519 key, or
// ECDSA P-256 over SHA-256(msg) in ASN.1 DER (docs/protocol.md §9).
func sign(s crypto.Signer, msg []byte) ([]byte, error) {
	max, err := signatureSize(s.Public())
	if err != nil {
		return nil, err
	}
	var sig []byte
	if max == ed25519.SignatureSize {
		sig, err = s.Sign(nil, msg, crypto.Hash(0))
	} else {
		h := sha256.Sum256(msg)
		sig, err = s.Sign(rand.Reader, h[:], crypto.SHA256)
	}
	if err != nil {
		return nil, fmt.Errorf("spa: sign: %w", err)
	}
	if len(sig) == 0 || len(sig) > max {
		return nil, fmt.Errorf("spa: signature of %d bytes", len(sig))
	}
	return sig, nil
}

// finish seals pt and frames the datagram: header || enc || ct || mac1.
func finish(gw, enc []byte, sender *hpke.Sender, pt []byte) ([]byte, error) {
	if n := overhead + len(pt); n > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, n)
	}
	ct, err := sender.Seal(nil, pt)
	if err != nil {
		return nil, fmt.Errorf("spa: seal: %w", err)
	}
	pkt := make([]byte, 0, overhead+len(pt))
	pkt = append(pkt, header[:]...)
	pkt = append(pkt, enc...)
	pkt = append(pkt, ct...)
	return newPrefilter(gw).mac(pkt, pkt), nil
}

package spa

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/sesame-gw/sesame/internal/policy"
)

// Resolver maps the credential of a decrypted packet to the public key that
// must have signed it and to the client it names (docs/protocol.md §6 step
// 8). It does at most one lookup (or, for certificates, one chain
// verification): never a search over all clients. Its errors should wrap
// one Reason: ErrUnknownKey, ErrCredential, or a reason of its own (package
// pki defines the certificate reasons: expired, revoked, ...); errors
// without a Reason are reported as ErrCredential. The signer must be an
// ed25519.PublicKey or, for CredX509, an *ecdsa.PublicKey on P-256. It must
// be safe for concurrent use if the Opener is used concurrently.
type Resolver[C any] func(cred Credential, now time.Time) (signer crypto.PublicKey, client C, err error)

// KeyResolver resolves CredEd25519 credentials with lookup, typically
// (*policy.Set).ByKey. Other credential kinds are refused with
// ErrCredential.
func KeyResolver[C any](lookup func(ed25519.PublicKey) (C, bool)) Resolver[C] {
	return func(cred Credential, _ time.Time) (crypto.PublicKey, C, error) {
		var zero C
		if cred.Kind != CredEd25519 || len(cred.Data) != ed25519.PublicKeySize {
			return nil, zero, fmt.Errorf("%w: %v not accepted", ErrCredential, cred.Kind)
		}
		pub := ed25519.PublicKey(cred.Data)
		c, ok := lookup(pub)
		if !ok {
			// The same text as spakey.FormatIdentity, so the log line can
			// be searched for in configs.
			return nil, zero, fmt.Errorf("%w: sesame-id1:%s", ErrUnknownKey, base64.RawURLEncoding.EncodeToString(pub))
		}
		return pub, c, nil
	}
}

// ByKind dispatches each credential to the resolver of its kind, so one
// Opener serves raw-key and certificate clients alike:
//
//	spa.ByKind(map[spa.CredentialKind]spa.Resolver[*policy.Client]{
//		spa.CredEd25519: spa.KeyResolver(set.ByKey),
//		spa.CredX509:    verifier.Resolver(scope, local),
//	})
//
// A kind absent from m is refused with ErrCredential. m is copied.
func ByKind[C any](m map[CredentialKind]Resolver[C]) Resolver[C] {
	byKind := make(map[CredentialKind]Resolver[C], len(m))
	for k, r := range m {
		if r != nil {
			byKind[k] = r
		}
	}
	return func(cred Credential, now time.Time) (crypto.PublicKey, C, error) {
		r, ok := byKind[cred.Kind]
		if !ok {
			var zero C
			return nil, zero, fmt.Errorf("%w: %v not accepted", ErrCredential, cred.Kind)
		}
		return r(cred, now)
	}
}

// Opened is a packet that passed every check of Opener.Open: authentic,
// addressed to this gateway, fresh. It shares no memory with the datagram.
type Opened[C any] struct {
	// Client is what the Resolver returned.
	Client C
	// Credential is the credential the packet presented.
	Credential Credential
	// Request is what the client asks for; policy.Decide judges it.
	Request policy.Request
	// Timestamp is the client's clock when it sealed the packet.
	Timestamp time.Time
	// Skew is the gateway's clock minus Timestamp (positive: the packet is
	// from the past).
	Skew time.Duration
	// ReplayKey identifies the packet in the replay cache.
	ReplayKey ReplayKey
	// ReplayUntil is how long the replay cache must remember ReplayKey:
	// Timestamp + window. Afterwards the packet is stale anyway.
	ReplayUntil time.Time
}

// Opener checks and opens datagrams sent to one gateway. It is safe for
// concurrent use and holds no per-packet state (replay detection is the
// caller's, with Opened.ReplayKey).
type Opener[C any] struct {
	priv    hpke.PrivateKey
	gw      []byte // the gateway's X25519 public key
	info    []byte
	pre     *prefilter
	resolve Resolver[C]
	window  time.Duration
}

// NewOpener builds the Opener of the gateway whose X25519 private key is
// gw. Packets are authenticated through resolve; their timestamp must be
// within window of the gateway's clock (0 means DefaultWindow).
func NewOpener[C any](gw *ecdh.PrivateKey, resolve Resolver[C], window time.Duration) (*Opener[C], error) {
	if gw == nil || gw.Curve() != ecdh.X25519() {
		return nil, errors.New("spa: gateway key is not an X25519 private key")
	}
	if resolve == nil {
		return nil, errors.New("spa: nil resolver")
	}
	if window < 0 {
		return nil, fmt.Errorf("spa: negative window %v", window)
	}
	if window == 0 {
		window = DefaultWindow
	}
	priv, err := hpke.NewDHKEMPrivateKey(newX25519Key(gw))
	if err != nil {
		return nil, fmt.Errorf("spa: %w", err)
	}
	pub := gw.PublicKey().Bytes()
	return &Opener[C]{
		priv:    priv,
		gw:      pub,
		info:    hpkeInfo(pub),
		pre:     newPrefilter(pub),
		resolve: resolve,
		window:  window,
	}, nil
}

// Window is the timestamp window the Opener enforces.
func (o *Opener[C]) Window() time.Duration { return o.window }

// Prefilter runs the cheap checks of docs/protocol.md §6 steps 2-5: length,
// magic, version and mac1, costing at most one HMAC-SHA256 and no
// public-key work. It is a DoS filter, not authentication. Errors wrap
// ErrShort, ErrTooLong, ErrMagic, ErrVersion or ErrPrefilter.
func (o *Opener[C]) Prefilter(b []byte) error { return o.pre.check(b) }

// Open runs every check of docs/protocol.md §6 steps 2-10 on datagram b
// received at now, cheapest first, and returns the authenticated request.
// It does not consult or update any replay state: the caller checks
// Opened.ReplayKey next. Errors wrap exactly one Reason. Open does not
// retain b.
func (o *Opener[C]) Open(b []byte, now time.Time) (*Opened[C], error) {
	if err := o.pre.check(b); err != nil {
		return nil, err
	}
	enc := b[headerSize : headerSize+encSize]
	ct := b[headerSize+encSize : len(b)-macSize]
	r, err := hpke.NewRecipient(enc, o.priv, suiteKDF(), suiteAEAD(), o.info)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDecrypt, err)
	}
	pt, err := r.Open(nil, ct)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDecrypt, err)
	}
	p, err := parsePlaintext(pt) // pt is a fresh buffer; p aliases it, not b
	if err != nil {
		return nil, err
	}
	signer, client, err := o.resolve(p.cred, now)
	if err != nil {
		if ReasonOf(err) == "" {
			err = fmt.Errorf("%w: %w", ErrCredential, err)
		}
		return nil, err
	}
	var tb [maxTranscript]byte // no allocation: verify does not retain it
	if err := verify(signer, appendTranscript(tb[:0], o.gw, enc, p.body), p.sig); err != nil {
		return nil, err
	}
	ts := time.UnixMilli(p.ts)
	skew := now.Sub(ts)
	if skew > o.window || skew < -o.window {
		return nil, &StaleError[C]{Client: client, Skew: skew, Window: o.window}
	}
	return &Opened[C]{
		Client:      client,
		Credential:  p.cred,
		Request:     p.req,
		Timestamp:   ts,
		Skew:        skew,
		ReplayKey:   replayKey(enc),
		ReplayUntil: ts.Add(o.window),
	}, nil
}

// verify checks sig over msg with the signer's key: Ed25519 (PureEdDSA,
// canonical signatures only), or ECDSA P-256 over SHA-256(msg) with an
// ASN.1 DER signature (docs/protocol.md §9). ECDSA signatures are
// malleable ((r, s) and (r, n-s) both verify); that is harmless here, as
// the signature sits inside the AEAD and the replay key is enc.
func verify(signer crypto.PublicKey, msg, sig []byte) error {
	switch pub := signer.(type) {
	case ed25519.PublicKey:
		if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, msg, sig) {
			return ErrSignature
		}
		return nil
	case *ecdsa.PublicKey:
		if pub == nil || pub.Curve != elliptic.P256() {
			return fmt.Errorf("%w: unsupported signer key (want ECDSA on P-256)", ErrCredential)
		}
		h := sha256.Sum256(msg)
		if len(sig) > MaxSignatureSize || !ecdsa.VerifyASN1(pub, h[:], sig) {
			return ErrSignature
		}
		return nil
	default:
		return fmt.Errorf("%w: unsupported signer key %T", ErrCredential, signer)
	}
}

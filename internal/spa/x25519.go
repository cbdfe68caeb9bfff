package spa

import (
	"crypto/ecdh"
	"errors"

	"github.com/cloudflare/circl/dh/x25519"
)

// x25519Key is the gateway's X25519 private key as an ecdh.KeyExchanger
// whose ECDH is circl's X25519 (MULX/ADX assembly on amd64), which is
// measurably faster than crypto/ecdh's on the gateway's hot path
// (docs/benchmarks.md, Throughput). It is only the DH primitive: crypto/hpke
// composes DHKEM, the key schedule and the AEAD exactly as it does for an
// *ecdh.PrivateKey (hpke.NewDHKEMPrivateKey accepts any KeyExchanger), so
// the wire format and the known-answer vectors are unchanged.
type x25519Key struct {
	priv x25519.Key
	pub  *ecdh.PublicKey
}

var _ ecdh.KeyExchanger = (*x25519Key)(nil)

func newX25519Key(k *ecdh.PrivateKey) *x25519Key {
	x := &x25519Key{pub: k.PublicKey()}
	copy(x.priv[:], k.Bytes())
	return x
}

func (*x25519Key) Curve() ecdh.Curve { return ecdh.X25519() }

func (k *x25519Key) PublicKey() *ecdh.PublicKey { return k.pub }

// ECDH is X25519(priv, remote) with the same contract as
// (*ecdh.PrivateKey).ECDH: an error for a key of another curve and for an
// all-zero shared secret (a low-order point, RFC 7748 §6.1).
func (k *x25519Key) ECDH(remote *ecdh.PublicKey) ([]byte, error) {
	if remote == nil || remote.Curve() != ecdh.X25519() {
		return nil, errors.New("spa: x25519: public key is not on X25519")
	}
	var pub, shared x25519.Key
	b := remote.Bytes()
	if len(b) != x25519.Size {
		return nil, errors.New("spa: x25519: bad public key length")
	}
	copy(pub[:], b)
	if !x25519.Shared(&shared, &k.priv, &pub) {
		return nil, errors.New("spa: x25519: bad input point: low order point")
	}
	return shared[:], nil
}

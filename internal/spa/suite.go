package spa

import (
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/sha256"
	"time"
)

// Wire constants of version 1 (docs/protocol.md §4).
const (
	// Magic is the first byte of every Sesame SPA datagram. It lies outside
	// the base64 alphabet of fwknop packets, so one byte tells them apart.
	Magic byte = 0xD3
	// Version is the protocol version this package speaks.
	Version byte = 0x01

	// DefaultPort is the UDP port SPA datagrams are sent to (fwknop's).
	DefaultPort = 62201
	// DefaultWindow is how far a packet's timestamp may be from the
	// gateway's clock, in either direction.
	DefaultWindow = 60 * time.Second

	headerSize = 2
	encSize    = 32 // DHKEM(X25519) Nenc
	tagSize    = 16 // ChaCha20-Poly1305 Nt
	macSize    = 16 // truncated HMAC-SHA256
	overhead   = headerSize + encSize + tagSize + macSize

	// MinSize is the smallest datagram a gateway considers (the smallest
	// plaintext the decoder could accept is 23 bytes).
	MinSize = overhead + minPlaintext
	// MaxSize is the largest datagram: a 1280-byte IPv6 packet (the IPv6
	// minimum MTU) minus the IPv6 and UDP headers.
	MaxSize = 1232
	// MaxServices is the most services one request may name.
	MaxServices = 32
	// ReplayKeySize is the length of a ReplayKey.
	ReplayKeySize = 16
)

// Labels for domain separation (docs/protocol.md §5).
const (
	labelPrefilter = "sesame-spa/1 prefilter"
	labelInfo      = "sesame-spa/1 packet"
	labelSignature = "sesame-spa/1 signature"
	labelReplay    = "sesame-spa/1 replay"
)

var header = [headerSize]byte{Magic, Version}

func suiteKDF() hpke.KDF   { return hpke.HKDFSHA256() }
func suiteAEAD() hpke.AEAD { return hpke.ChaCha20Poly1305() }

// hpkeInfo is the HPKE info string: label || header || gateway public key.
// The AEAD's aad stays empty, so single-shot HPKE APIs interoperate.
func hpkeInfo(gw []byte) []byte {
	info := make([]byte, 0, len(labelInfo)+headerSize+len(gw))
	info = append(info, labelInfo...)
	info = append(info, header[:]...)
	return append(info, gw...)
}

// prefilterKey derives kpre = HKDF-SHA256(gw, "", labelPrefilter, 32).
func prefilterKey(gw []byte) []byte {
	k, err := hkdf.Key(sha256.New, gw, nil, labelPrefilter, sha256.Size)
	if err != nil {
		panic("spa: hkdf: " + err.Error()) // only for lengths we never ask for
	}
	return k
}

// transcript is what the client signs: label || header || gw || enc || body.
func transcript(gw, enc, body []byte) []byte {
	return appendTranscript(make([]byte, 0, len(labelSignature)+headerSize+len(gw)+len(enc)+len(body)), gw, enc, body)
}

// maxTranscript bounds the transcript of any datagram Open accepts (the
// body is part of the plaintext, shorter than MaxSize), so Open can build
// it in a stack buffer.
const maxTranscript = len(labelSignature) + headerSize + 32 + encSize + MaxSize

// appendTranscript appends the transcript to t.
func appendTranscript(t, gw, enc, body []byte) []byte {
	t = append(t, labelSignature...)
	t = append(t, header[:]...)
	t = append(t, gw...)
	t = append(t, enc...)
	return append(t, body...)
}

// ReplayKey identifies an accepted packet in the replay cache: the first 16
// bytes of SHA-256(labelReplay || enc) (docs/protocol.md §5.4).
type ReplayKey [ReplayKeySize]byte

func replayKey(enc []byte) ReplayKey {
	h := sha256.New()
	h.Write([]byte(labelReplay))
	h.Write(enc)
	var sum [sha256.Size]byte
	return ReplayKey(h.Sum(sum[:0])[:ReplayKeySize])
}

// IsNative reports whether b starts like a Sesame SPA datagram (its first
// byte is Magic), as opposed to an fwknop one. It is a routing hint, not a
// check.
func IsNative(b []byte) bool { return len(b) > 0 && b[0] == Magic }

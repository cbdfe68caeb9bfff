package fwknop

import (
	"errors"
	"math/rand/v2"
	"testing"
)

// fuzzKeys are the keys of the seed packets: the 2.6.10 known answer
// (HMAC-SHA256) and upstream's HMAC-less "fwknoptest" packets.
var fuzzKeys = []Keys{katKeys, {Key: []byte("fwknoptest")}}

// FuzzDecode: Decode never panics, agrees with CheckFormat and
// LooksLikeFwknop, and accepts nothing but the unmodified seed packets
// (forging one would need the keys).
func FuzzDecode(f *testing.F) {
	valid := map[string]bool{katWire: true}
	f.Add([]byte(katWire))
	for _, r := range loadUpstream(f, "positive.json") {
		if r.HMACKey == nil && r.HMACKeyBase64 == nil && r.Key != nil && *r.Key == "fwknoptest" {
			valid[r.Packet] = true
			f.Add([]byte(r.Packet))
		}
	}
	for _, l := range loadFuzzingPackets(f)[:50] {
		f.Add([]byte(l.packet))
	}
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, p []byte) {
		if len(p) > 2*MaxPacketLen {
			return
		}
		for _, k := range fuzzKeys {
			for _, mode := range []Mode{ModeCBC, ModeLegacy} {
				k.Mode = mode
				m, err := Decode(p, k, DecodeOptions{})
				if err == nil && (!valid[string(p)] || mode == ModeLegacy) {
					t.Fatalf("accepted a packet that is not a seed: %q → %+v", p, m)
				}
				if CheckFormat(p) != nil && !errors.Is(err, ErrFormat) {
					t.Fatalf("CheckFormat rejects %q but Decode says %v", p, err)
				}
				if CheckFormat(p) == nil && !LooksLikeFwknop(p) {
					t.Fatalf("CheckFormat accepts %q but LooksLikeFwknop does not", p)
				}
				if !LooksLikeFwknop(p) && !errors.Is(err, ErrFormat) {
					t.Fatalf("LooksLikeFwknop false but Decode error %v", err)
				}
			}
		}
	})
}

// FuzzDecodePlaintext reaches the field parser directly (behind the
// cipher a fuzzer cannot get there): it never panics, and whatever it
// accepts re-encodes to a plaintext that decodes to the same message.
func FuzzDecodePlaintext(f *testing.F) {
	for _, r := range append(loadUpstream(f, "positive.json"), loadUpstream(f, "negative.json")...) {
		f.Add([]byte(r.Decoded.Plaintext))
	}
	f.Add([]byte(katEncoded + ":" + katDigest))
	f.Fuzz(func(t *testing.T, pt []byte) {
		if len(pt) > 2*MaxPacketLen {
			return
		}
		m, err := decodePlaintext(pt)
		if err != nil {
			return
		}
		c := *m
		enc, h, err := encodeFields(&c, rand.NewChaCha8([32]byte{}))
		if err != nil {
			t.Fatalf("decoded message does not re-encode: %v\n%+v", err, m)
		}
		var sum [64]byte
		back, err := decodePlaintext([]byte(enc + ":" + b64.EncodeToString(h.sum(sum[:0], []byte(enc)))))
		if err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
		if back.Access != m.Access || back.User != m.User || back.Type != m.Type || back.NATAccess != m.NATAccess ||
			back.ServerAuth != m.ServerAuth || back.ClientTimeout != m.ClientTimeout || back.Timestamp != m.Timestamp ||
			back.Version != m.Version || back.Rand != m.Rand || back.Digest != m.Digest {
			t.Fatalf("round trip changed the message:\n%+v\n%+v", m, back)
		}
	})
}

// FuzzRoundTrip: whatever Encode accepts, Decode returns unchanged.
func FuzzRoundTrip(f *testing.F) {
	f.Add("root", int64(1795310843), uint8(1), "127.0.0.2,tcp/22", "", "", uint32(0), uint8(3), uint8(3), false)
	f.Add("bob", int64(1), uint8(5), "0.0.0.0,udp/53", "host,22", "auth", uint32(30), uint8(7), uint8(0), false)
	f.Add("u0_a54", int64(1<<31), uint8(2), "1.2.3.4,tcp/1", "10.0.0.1,2", "", uint32(65536), uint8(1), uint8(0), true)
	f.Fuzz(func(t *testing.T, user string, ts int64, typ uint8, access, nat, auth string, timeout uint32, digest, hmacType uint8, legacy bool) {
		m := Message{User: user, Timestamp: ts, Type: MsgType(typ), Access: access, NATAccess: nat, ServerAuth: auth, ClientTimeout: timeout, Digest: Hash(digest)}
		keys := Keys{Key: []byte("enc"), HMACKey: []byte("mac"), HMACHash: Hash(hmacType)}
		if legacy {
			keys.HMACKey, keys.Mode = nil, ModeLegacy
		}
		wire, err := Encode(m, keys, EncodeOptions{Rand: rand.NewChaCha8([32]byte{typ}), Command: true})
		if err != nil {
			return
		}
		got, err := DecodeString(wire, keys, DecodeOptions{})
		if err != nil {
			t.Fatalf("Encode produced %q, Decode: %v", wire, err)
		}
		if got.User != user || got.Timestamp != ts || got.Access != access || got.NATAccess != nat ||
			got.ServerAuth != auth || got.Type != MsgType(typ).withTimeout(timeout) {
			t.Fatalf("round trip: %+v", got)
		}
	})
}

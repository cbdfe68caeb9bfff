package fwknop

import "testing"

// BenchmarkDecode measures one full verification of a 204-character
// packet (HMAC-SHA256, AES-256-CBC, SHA-256 digest, field parsing), the
// work fwknopd does per packet and stanza.
func BenchmarkDecode(b *testing.B) {
	p := []byte(katWire)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(p, katKeys, DecodeOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "packets/s")
}

// BenchmarkDecodeWrongHMAC is the cost of a stanza whose HMAC key does
// not match: the HMAC check rejects before any decryption.
func BenchmarkDecodeWrongHMAC(b *testing.B) {
	p := []byte(katWire)
	k := Keys{Key: katKeys.Key, HMACKey: []byte("another key")}
	for b.Loop() {
		if _, err := Decode(p, k, DecodeOptions{}); err == nil {
			b.Fatal("accepted")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "packets/s")
}

func BenchmarkLooksLikeFwknop(b *testing.B) {
	p := []byte(katWire)
	for b.Loop() {
		if !LooksLikeFwknop(p) {
			b.Fatal("false")
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	m := Message{User: "root", Timestamp: 1795310843, Type: AccessMsg, Access: "127.0.0.2,tcp/22"}
	for b.Loop() {
		if _, err := Encode(m, katKeys, EncodeOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

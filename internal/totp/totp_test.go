package totp

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"hash"
	"testing"
	"time"
)

// RFC 6238 Appendix B: T0 = 0, X = 30, 8 digits; the seeds are the ASCII
// strings below (20, 32 and 64 bytes).
func TestRFC6238Vectors(t *testing.T) {
	seeds := map[string]struct {
		h   func() hash.Hash
		key string
	}{
		"SHA1":   {sha1.New, "12345678901234567890"},
		"SHA256": {sha256.New, "12345678901234567890123456789012"},
		"SHA512": {sha512.New, "1234567890123456789012345678901234567890123456789012345678901234"},
	}
	vectors := []struct {
		unix int64
		t    uint64 // T in hex in the RFC
		mode string
		want uint32
	}{
		{59, 0x1, "SHA1", 94287082}, {59, 0x1, "SHA256", 46119246}, {59, 0x1, "SHA512", 90693936},
		{1111111109, 0x23523EC, "SHA1", 7081804}, {1111111109, 0x23523EC, "SHA256", 68084774}, {1111111109, 0x23523EC, "SHA512", 25091201},
		{1111111111, 0x23523ED, "SHA1", 14050471}, {1111111111, 0x23523ED, "SHA256", 67062674}, {1111111111, 0x23523ED, "SHA512", 99943326},
		{1234567890, 0x273EF07, "SHA1", 89005924}, {1234567890, 0x273EF07, "SHA256", 91819424}, {1234567890, 0x273EF07, "SHA512", 93441116},
		{2000000000, 0x3F940AA, "SHA1", 69279037}, {2000000000, 0x3F940AA, "SHA256", 90698825}, {2000000000, 0x3F940AA, "SHA512", 38618901},
		{20000000000, 0x27BC86AA, "SHA1", 65353130}, {20000000000, 0x27BC86AA, "SHA256", 77737706}, {20000000000, 0x27BC86AA, "SHA512", 47863826},
	}
	for _, v := range vectors {
		tm := time.Unix(v.unix, 0).UTC()
		if got := Counter(tm, 30*time.Second); got != v.t {
			t.Errorf("Counter(%d) = %#x, want %#x", v.unix, got, v.t)
		}
		s := seeds[v.mode]
		if got := TOTP(s.h, []byte(s.key), tm, 30*time.Second, 8); got != v.want {
			t.Errorf("TOTP %s at %d = %08d, want %08d", v.mode, v.unix, got, v.want)
		}
	}
}

// RFC 4226 Appendix D: HOTP values and the truncated decimals for the
// secret "12345678901234567890".
func TestRFC4226Vectors(t *testing.T) {
	key := []byte("12345678901234567890")
	hotp := []uint32{755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489}
	for c, want := range hotp {
		if got := HOTP(sha1.New, key, uint64(c), 6); got != want {
			t.Errorf("HOTP(%d) = %06d, want %06d", c, got, want)
		}
	}
	// Truncated values of counts 0 and 9 (Appendix D, "Decimal").
	if got := HOTP(sha1.New, key, 0, 9); got != 1284755224%1000000000 {
		t.Errorf("truncation of count 0: %d", got)
	}
	if got := HOTP(sha1.New, key, 9, 9); got != 645520489 {
		t.Errorf("truncation of count 9: %d", got)
	}
}

func TestCounterEdges(t *testing.T) {
	if Counter(time.Unix(-5, 0), 30*time.Second) != 0 {
		t.Fatal("time before the epoch")
	}
	if Counter(time.Unix(29, 999e6), 30*time.Second) != 0 || Counter(time.Unix(30, 0), 30*time.Second) != 1 {
		t.Fatal("period boundary")
	}
	if Counter(time.Unix(100, 0), 0) != 100 {
		t.Fatal("period below 1 s counts as 1 s")
	}
}

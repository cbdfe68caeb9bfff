package totp

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseSecret(t *testing.T) {
	want := []byte("12345678901234567890")
	for _, in := range []string{
		"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n",
		"# ssh door\n\n  gezd gnbv gy3t qojq gezd gnbv gy3t qojq  \n",
		"GEZDG-NBVGY-3TQOJ-QGEZD-GNBVG-Y3TQO-JQ",
		"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ====\r\n",
	} {
		got, err := ParseSecret([]byte(in))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("ParseSecret(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{
		"",
		"# only a comment\n",
		"GEZDGNBVGY3TQOJQ\n", // 10 bytes: too short
		"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\nGEZDGNBVGY3TQOJQGEZDGNBV\n", // two keys
		"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ1\n",                           // 1 is not base32
		strings.Repeat("A", MaxSecretFile+1),
	} {
		if _, err := ParseSecret([]byte(in)); err == nil {
			t.Errorf("ParseSecret(%q) accepted", in)
		}
	}
}

func FuzzParseSecret(f *testing.F) {
	f.Add([]byte("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n"))
	f.Add([]byte("# c\n gezd-gnbv gy3t qojq gezd gnbv gy3t qojq==\n"))
	f.Add([]byte("\xff\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		key, err := ParseSecret(b)
		if err != nil {
			return
		}
		if len(key) < MinKeyLen || len(key) > MaxSecretFile {
			t.Fatalf("key of %d bytes", len(key))
		}
	})
}

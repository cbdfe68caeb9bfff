package fwknop

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/sesame-gw/sesame/internal/service"
)

func TestLooksLikeFwknop(t *testing.T) {
	var all []string
	for _, r := range loadUpstream(t, "positive.json") {
		all = append(all, r.Packet)
	}
	for _, r := range loadCaptured(t) {
		all = append(all, r.Wire.Packet)
	}
	for _, p := range all {
		if !LooksLikeFwknop([]byte(p)) {
			t.Errorf("LooksLikeFwknop(%.20s...) = false", p)
		}
	}
	rng := rand.NewChaCha8([32]byte{3})
	bin := make([]byte, 200)
	rng.Read(bin)
	bin[0] = '+'
	for name, p := range map[string][]byte{
		"binary":      bin,
		"short":       []byte(all[0][:139]),
		"too long":    bytes.Repeat([]byte("+"), 1501),
		"prefix":      []byte(saltedPrefix + all[0]),
		"first char":  []byte("A" + all[0][1:]),
		"equals sign": []byte(all[0] + "="),
		"newline":     []byte(all[0] + "\n"),
		"empty":       nil,
	} {
		if LooksLikeFwknop(p) {
			t.Errorf("%s: LooksLikeFwknop = true", name)
		}
	}
	// GPG-sized packets still look like fwknop (so they get an fwknop
	// log line), Decode rejects them.
	if g := []byte("+" + strings.Repeat("A", 999)); !LooksLikeFwknop(g) {
		t.Error("1000-char base64 packet not classified as fwknop")
	} else if _, err := Decode(g, katKeys, DecodeOptions{}); !errors.Is(err, ErrFormat) {
		t.Errorf("GPG-sized packet: %v, want ErrFormat", err)
	}
}

func TestHashNames(t *testing.T) {
	for h := MD5; h <= SHA3_512; h++ {
		got, err := ParseHash(strings.ToUpper(h.String()))
		if err != nil || got != h {
			t.Errorf("ParseHash(%q) = %v, %v", strings.ToUpper(h.String()), got, err)
		}
		if l := h.B64Len(); l != []int{0, 22, 27, 43, 64, 86, 43, 86}[h] {
			t.Errorf("%v: B64Len %d", h, l)
		}
		if h.New().Size() != h.Size() {
			t.Errorf("%v: New().Size() %d != %d", h, h.New().Size(), h.Size())
		}
		b, _ := json.Marshal(h)
		var back Hash
		if err := json.Unmarshal(b, &back); err != nil || back != h {
			t.Errorf("JSON round trip of %v: %s, %v", h, b, err)
		}
	}
	for _, bad := range []string{"", "sha3", "sha-256", "blake2"} {
		if _, err := ParseHash(bad); err == nil {
			t.Errorf("ParseHash(%q) succeeded", bad)
		}
	}
	if _, err := ParseMode("ctr"); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("ParseMode(ctr) = %v", err)
	}
	if m, err := ParseMode("LEGACY"); err != nil || m != ModeLegacy {
		t.Errorf("ParseMode(LEGACY) = %v, %v", m, err)
	}
}

func TestDecodeKeyBase64(t *testing.T) {
	for in, want := range map[string]string{
		"Zm9vYmFy":     "foobar",
		"Zm9vYg==":     "foob",
		"Zm9vYg":       "foob",
		"Zm9vY":        "foo", // libfko drops a lone trailing character
		"Zm9v=ignored": "foo", // and stops at the first '='
	} {
		got, err := DecodeKeyBase64(in)
		if err != nil || string(got) != want {
			t.Errorf("DecodeKeyBase64(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "=", "Zm9v!", "Zm 9v", "Z"} {
		if _, err := DecodeKeyBase64(bad); !errors.Is(err, ErrKeys) {
			t.Errorf("DecodeKeyBase64(%q) err = %v, want ErrKeys", bad, err)
		}
	}
}

func TestGenerateKeys(t *testing.T) {
	for h, hl := range map[Hash]int{0: 64, MD5: 16, SHA1: 20, SHA256: 64, SHA384: 128, SHA512: 128, SHA3_256: 64, SHA3_512: 64} {
		k, err := GenerateKeys(rand.NewChaCha8([32]byte{byte(h)}), h)
		if err != nil || len(k.Key) != 32 || len(k.HMACKey) != hl || k.Validate() != nil {
			t.Errorf("%v: %d/%d bytes, %v", h, len(k.Key), len(k.HMACKey), err)
		}
		back, err := DecodeKeyBase64(EncodeKeyBase64(k.HMACKey))
		if err != nil || !bytes.Equal(back, k.HMACKey) {
			t.Errorf("%v: base64 round trip failed", h)
		}
	}
	if s := EncodeKeyBase64(make([]byte, 32)); len(s) != 44 || !strings.HasSuffix(s, "=") {
		t.Errorf("KEY_BASE64 of 32 bytes = %q, want 44 chars with '='", s)
	}
}

func TestRandomValue(t *testing.T) {
	seen := map[string]bool{}
	r := rand.NewChaCha8([32]byte{7})
	for range 1000 {
		v, err := RandomValue(r)
		if err != nil || len(v) != 16 || !isDigits(v) {
			t.Fatalf("RandomValue = %q, %v", v, err)
		}
		seen[v] = true
	}
	if len(seen) != 1000 {
		t.Errorf("%d distinct values of 1000", len(seen))
	}
	if _, err := RandomValue(&fixedReader{}); err == nil {
		t.Error("RandomValue on an empty reader succeeded")
	}
}

func TestParseAccess(t *testing.T) {
	ip, svcs, err := ParseAccess("0.0.0.0,tcp/22,udp/53,tcp/00080")
	want := []service.Service{{Proto: service.TCP, Port: 22}, {Proto: service.UDP, Port: 53}, {Proto: service.TCP, Port: 80}}
	if err != nil || ip.String() != "0.0.0.0" || !slices.Equal(svcs, want) {
		t.Errorf("ParseAccess = %v %v %v", ip, svcs, err)
	}
	for _, bad := range []string{
		"", "1.2.3.4", "1.2.3.4,", "1.2.3.4,tcp/22,", "1.2.3.4,,tcp/22", "1.2.3.4,TCP/22",
		"1.2.3.4,tcp/", "1.2.3.4,tcp/-1", "1.2.3.4,tcp/123456", "1.2.3.4,tcp/2a2", "1.2.3.4,tcp//22",
		"1.2.3.4,tcp/22/", "1.2.3.4,icmp/1", "1.2.3.4,none/0", "1.2.3.4,sctp/1",
		"1.2.3.4.,tcp/22", "999.1.1.1,tcp/22", "1.2.3,tcp/22", "a.b.c.d,tcp/22", "01.2.3.4,tcp/22",
		" 1.2.3.4,tcp/22", "1.2.3.4 ,tcp/22", "1.2.3.4,tcp/ 22", "::1,tcp/22",
		"1.2.3.4,tcp/" + strings.Repeat("1", 250),
	} {
		if _, _, err := ParseAccess(bad); err == nil {
			t.Errorf("ParseAccess(%q) accepted", bad)
		}
	}
}

func TestParseNATAccess(t *testing.T) {
	for in, want := range map[string]string{
		"192.168.1.2,22":     "192.168.1.2",
		"host.example,65535": "host.example",
		"bad%host,22":        "bad%host", // libfko accepts; ValidNATHost does not
	} {
		h, _, err := ParseNATAccess(in)
		if err != nil || h != want {
			t.Errorf("ParseNATAccess(%q) = %q, %v", in, h, err)
		}
	}
	for _, bad := range []string{"", ",22", "h", "h,", "h,0", "h,65536", "h,2,3", "a b,22", "a/b,22", "a?b,22", `a"b,22`, "a'b,22", `a\b,22`, strings.Repeat("h", 71) + ",22"} {
		if _, _, err := ParseNATAccess(bad); err == nil {
			t.Errorf("ParseNATAccess(%q) accepted", bad)
		}
	}
	for h, want := range map[string]bool{
		"10.0.0.1": true, "example.org": true, "a-b.example.": true, "x": true,
		"bad%host": false, "-a.org": false, "a-.org": false, "a..b": false, "": false,
		strings.Repeat("a", 64) + ".org": false,
	} {
		if ValidNATHost(h) != want {
			t.Errorf("ValidNATHost(%q) = %v", h, !want)
		}
	}
}

func TestValidateUser(t *testing.T) {
	for _, ok := range []string{"root", "bob smith", "-1", "u0_a54", "Administrator", "a.b@c$d%e"} {
		if err := ValidateUser(ok); err != nil {
			t.Errorf("ValidateUser(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a:b", "a,b", "a/b", "a\\b", "a\"b", "a[b", "a]b", "a;b", "a|b", "a=b", "a+b", "a*b", "a?b", "a<b", "a>b", "a\x00b", "a\tb", "é"} {
		if err := ValidateUser(bad); err == nil {
			t.Errorf("ValidateUser(%q) accepted", bad)
		}
	}
}

// TestMutationsRejected changes every character of valid packets (with
// and without an HMAC) to five other base64 characters, among them the
// ones differing in the lowest bits: no variant may decode. FuzzDecode
// explores further.
func TestMutationsRejected(t *testing.T) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	cases := []struct {
		wire string
		keys Keys
	}{{katWire, katKeys}}
	for _, r := range loadUpstream(t, "positive.json") {
		if r.HMACKey == nil && r.HMACKeyBase64 == nil {
			cases = append(cases, struct {
				wire string
				keys Keys
			}{r.Packet, r.keys(t)})
			break
		}
	}
	if len(cases) != 2 {
		t.Fatal("no HMAC-less positive")
	}
	n := 0
	for _, c := range cases {
		b := []byte(c.wire)
		for i := range b {
			orig := b[i]
			// Neighbours in the alphabet (low-bit flips, which base64
			// decoding may drop) and far ones.
			for _, d := range []int{1, 2, 17, 32, 63} {
				b[i] = alphabet[(int(b64Map[orig])^d)%64]
				if m, err := Decode(b, c.keys, DecodeOptions{}); err == nil {
					t.Fatalf("mutation at %d (%c→%c) accepted: %+v", i, orig, b[i], m)
				}
				n++
			}
			b[i] = orig
		}
		if _, err := Decode(b, c.keys, DecodeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d mutated packets rejected", n)
}

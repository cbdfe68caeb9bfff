package pki

import (
	"bytes"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/service"
)

func fullAuthz() Authorization {
	return Authorization{
		Services: []service.Range{
			{Proto: service.TCP, First: 22, Last: 22},
			{Proto: service.UDP, First: 60000, Last: 61000},
		},
		MaxDuration:  5 * time.Minute,
		GatewayKeys:  [][]byte{fill(7, 32)},
		GatewayNames: []string{"gw1.example.org", "gw-2"},
	}
}

// The DER of the extension is pinned: it is a wire format (docs/pki.md §3).
func TestAuthorizationKnownAnswer(t *testing.T) {
	for _, tc := range []struct {
		a    Authorization
		want string
	}{
		{ssh10m(), "3011300b300902010602011602011602020258"},
		{fullAuthz(), "305d" + // SEQUENCE, 93 bytes
			"301a" + "3009020106020116020116" + "300d020111020300ea60020300ee48" + // services: 22/tcp, 60000-61000/udp
			"020201" + "2c" + // maxDuration 300
			"a022" + "0420" + "0708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223242526" + // [0] gatewayKeys
			"a117" + "130f" + hex.EncodeToString([]byte("gw1.example.org")) + "1304" + hex.EncodeToString([]byte("gw-2"))}, // [1] gatewayNames
	} {
		der, err := tc.a.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(der) != tc.want {
			t.Errorf("Marshal(%+v)\n got %x\nwant %s", tc.a, der, tc.want)
		}
		back, err := ParseAuthorization(der)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(back.Services, tc.a.Services) || back.MaxDuration != tc.a.MaxDuration ||
			!slices.EqualFunc(back.GatewayKeys, tc.a.GatewayKeys, bytes.Equal) || !slices.Equal(back.GatewayNames, tc.a.GatewayNames) {
			t.Errorf("round trip: %+v, want %+v", back, tc.a)
		}
	}
}

func TestAuthorizationMarshalRejects(t *testing.T) {
	mod := func(f func(*Authorization)) Authorization { a := fullAuthz(); f(&a); return a }
	for name, a := range map[string]Authorization{
		"no services":       mod(func(a *Authorization) { a.Services = nil }),
		"too many services": mod(func(a *Authorization) { a.Services = slices.Repeat(a.Services[:1], MaxAuthServices+1) }),
		"bad proto":         mod(func(a *Authorization) { a.Services[0].Proto = 1 }),
		"port 0":            mod(func(a *Authorization) { a.Services[0].First = 0 }),
		"reversed":          mod(func(a *Authorization) { a.Services[0].First = 23 }),
		"zero duration":     mod(func(a *Authorization) { a.MaxDuration = 0 }),
		"sub-second":        mod(func(a *Authorization) { a.MaxDuration = 1500 * time.Millisecond }),
		"huge duration":     mod(func(a *Authorization) { a.MaxDuration = 1 << 33 * time.Second }),
		"short key":         mod(func(a *Authorization) { a.GatewayKeys[0] = a.GatewayKeys[0][:31] }),
		"bad name":          mod(func(a *Authorization) { a.GatewayNames[0] = "gw_1" }),
		"empty name":        mod(func(a *Authorization) { a.GatewayNames[0] = "" }),
		"too many names":    mod(func(a *Authorization) { a.GatewayNames = slices.Repeat([]string{"a"}, MaxScope+1) }),
	} {
		if _, err := a.Marshal(); !errors.Is(err, ErrAuthorization) {
			t.Errorf("%s: Marshal = %v, want ErrAuthorization", name, err)
		}
	}
}

// Strict decoding: every alternative encoding of a valid value, and every
// value outside the module's constraints, is refused.
func TestParseAuthorizationRejects(t *testing.T) {
	good, _ := ssh10m().Marshal()
	type svc struct{ P, F, L int }
	enc := func(v any) []byte {
		b, err := asn1.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	type plain struct {
		S []svc
		D int64
	}
	type utf8Names struct {
		S []svc
		D int64
		N []asn1.RawValue `asn1:"tag:1"`
	}
	utf8 := asn1.RawValue{Tag: asn1.TagUTF8String, Bytes: []byte("gw1")}
	cases := map[string][]byte{
		"empty":             nil,
		"trailing byte":     append(bytes.Clone(good), 0),
		"not a sequence":    {0x04, 0x00},
		"no services":       enc(plain{S: []svc{}, D: 600}),
		"udp port 0":        enc(plain{S: []svc{{17, 0, 1}}, D: 600}),
		"proto 1":           enc(plain{S: []svc{{1, 22, 22}}, D: 600}),
		"reversed":          enc(plain{S: []svc{{6, 23, 22}}, D: 600}),
		"port 65536":        enc(plain{S: []svc{{6, 22, 65536}}, D: 600}),
		"negative port":     enc(plain{S: []svc{{6, -1, 22}}, D: 600}),
		"zero duration":     enc(plain{S: []svc{{6, 22, 22}}, D: 0}),
		"negative duration": enc(plain{S: []svc{{6, 22, 22}}, D: -5}),
		"duration > 2^32":   enc(plain{S: []svc{{6, 22, 22}}, D: 1 << 32}),
		"utf8 name":         enc(utf8Names{S: []svc{{6, 22, 22}}, D: 600, N: []asn1.RawValue{utf8}}),
		"empty key list":    append(append([]byte{0x30, byte(len(good))}, good[2:]...), 0xa0, 0x00),
		"non-minimal int":   bytes.Replace(good, []byte{0x02, 0x01, 0x16}, []byte{0x02, 0x02, 0x00, 0x16}, 1),
		"long-form length":  append([]byte{0x30, 0x81, byte(len(good) - 2)}, good[2:]...),
	}
	// The "empty key list" case above needs its outer length fixed.
	ek := append(bytes.Clone(good[2:]), 0xa0, 0x00)
	cases["empty key list"] = append([]byte{0x30, byte(len(ek))}, ek...)
	for name, der := range cases {
		if _, err := ParseAuthorization(der); !errors.Is(err, ErrAuthorization) {
			t.Errorf("%s (%x): ParseAuthorization = %v, want ErrAuthorization", name, der, err)
		}
	}
}

func TestValidAt(t *testing.T) {
	gw1 := fill(7, 32)
	any := ssh10m()
	if !any.ValidAt(Scope{}) || !any.ValidAt(Scope{Key: gw1}) {
		t.Error("a certificate without scope must be valid everywhere")
	}
	scoped := fullAuthz()
	for name, tc := range map[string]struct {
		s    Scope
		want bool
	}{
		"listed key":        {Scope{Key: gw1}, true},
		"listed name":       {Scope{Key: fill(9, 32), Names: []string{"x", "gw-2"}}, true},
		"name in any case":  {Scope{Names: []string{"GW1.Example.ORG"}}, true},
		"other gateway":     {Scope{Key: fill(9, 32), Names: []string{"gw3"}}, false},
		"no identity":       {Scope{}, false},
		"key prefix only":   {Scope{Key: gw1[:16]}, false},
		"name prefix only":  {Scope{Names: []string{"gw1"}}, false},
		"name is a key too": {Scope{Names: []string{string(gw1)}}, false},
	} {
		if got := scoped.ValidAt(tc.s); got != tc.want {
			t.Errorf("%s: ValidAt = %v, want %v", name, got, tc.want)
		}
	}
}

// FuzzAuthorization: the extension decoder never panics, and whatever it
// accepts is the canonical encoding of a valid value.
func FuzzAuthorization(f *testing.F) {
	for _, a := range []Authorization{ssh10m(), fullAuthz()} {
		der, err := a.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(der)
	}
	f.Add([]byte{0x30, 0x00})
	f.Add([]byte{0x30, 0x80, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		a, err := ParseAuthorization(der)
		if err != nil {
			if !errors.Is(err, ErrAuthorization) {
				t.Fatalf("error %v is not ErrAuthorization", err)
			}
			return
		}
		again, err := a.Marshal()
		if err != nil {
			t.Fatalf("accepted %x does not re-encode: %v", der, err)
		}
		if !bytes.Equal(again, der) {
			t.Fatalf("accepted a non-canonical encoding:\n in %x\nout %x", der, again)
		}
	})
}

package spagw

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/replay"
)

var update = flag.Bool("update", false, "rewrite testdata/sealed.hex")

// sealedSeeds are packets sealed by the fixture's clients at t0, stored in
// testdata so that every fuzz worker process knows the same ones (Seal
// draws a fresh ephemeral key each time).
func sealedSeeds(tb testing.TB, fx *fixture) [][]byte {
	path := filepath.Join("testdata", "sealed.hex")
	if *update {
		gw := fx.gw.PublicKey()
		var b strings.Builder
		for _, p := range [][]byte{
			seal(tb, fx.alice, gw, req(tb, 30*time.Second, "22/tcp"), t0),
			seal(tb, fx.carol, gw, req(tb, 30*time.Second, "22/tcp", "22/tcp"), t0),
			seal(tb, fx.alice, gw, req(tb, 5*time.Minute, "60000-60010/udp", "22/tcp"), t0),
		} {
			fmt.Fprintf(&b, "%x\n", p)
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%v (run go test -run TestSealedSeeds -update)", err)
	}
	var out [][]byte
	for _, l := range strings.Fields(string(data)) {
		p, err := hex.DecodeString(l)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// The stored seeds are still granted (the fixture and the wire format have
// not changed under them).
func TestSealedSeeds(t *testing.T) {
	fx := newFixture(t)
	seeds := sealedSeeds(t, fx)
	if len(seeds) != 3 {
		t.Fatalf("%d seeds", len(seeds))
	}
	for i, p := range seeds {
		h := fx.handler(t, replay.New(0))
		if v := h.Handle(t0, src4, gwIP, p); v.Reason != "" {
			t.Errorf("seed %d: %+v", i, v)
		}
	}
}

// Attacker bytes never panic the handler, never grant anything but an
// untouched packet sealed by a client, and garbage is always quiet.
func FuzzHandle(f *testing.F) {
	fx := newFixture(f)
	gw := fx.gw.PublicKey()
	sealed := sealedSeeds(f, fx)
	for _, p := range sealed {
		f.Add(p)
	}
	f.Add(handBuild(f, gw, plaintext(fx.alice.Public().(ed25519.PublicKey), t0, make([]byte, 64))))
	f.Add(sealed[0][:89])
	f.Add([]byte{0xD3, 0x01})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		h, err := New(fx.settings(), replay.New(0), nil)
		if err != nil {
			t.Fatal(err)
		}
		in := bytes.Clone(pkt)
		v := h.Handle(t0, src4, gwIP, pkt)
		if !bytes.Equal(in, pkt) {
			t.Fatal("Handle modified the payload")
		}
		if v.Reason == "" {
			if !slices.ContainsFunc(sealed, func(p []byte) bool { return bytes.Equal(p, pkt) }) || len(v.Grants) == 0 {
				t.Fatalf("granted a packet no client sealed: %+v", v)
			}
			for _, g := range v.Grants {
				if g.Addr != src4 || g.TTL <= 0 || g.TTL > 5*time.Minute {
					t.Fatalf("grant %+v", g)
				}
			}
			return
		}
		switch v.Reason {
		case "short", "too-long", "magic", "version", "prefilter", "decrypt", "malformed":
			if !v.Quiet || v.Client != "" || v.Detail != "" {
				t.Fatalf("garbage verdict %+v", v)
			}
		}
		if v.Grants != nil {
			t.Fatalf("refusal with grants: %+v", v)
		}
	})
}

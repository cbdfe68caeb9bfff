package fwknopgw

import (
	"bytes"
	"slices"
	"testing"
	"time"
)

// fuzzSeeds are valid packets for baseConf's stanzas, built once per
// process from the deterministic counter reader, so every fuzz worker
// knows the same ones.
func fuzzSeeds(tb testing.TB) [][]byte {
	seqMu.Lock()
	saved := *seq
	*seq = counter{n: 1 << 40}
	seqMu.Unlock()
	defer func() { seqMu.Lock(); *seq = saved; seqMu.Unlock() }()
	return [][]byte{
		packet(tb, keyA, "10.99.0.2,tcp/2222", t0),
		packet(tb, keyA, "0.0.0.0,tcp/2222,udp/5353", t0),
		packet(tb, keyB, "0.0.0.0,tcp/2222", t0),
		packet(tb, plain, "10.99.0.2,tcp/2222", t0),
	}
}

// Attacker bytes never panic the handler, never change the payload, and
// never grant anything but an unmodified packet built with a stanza's
// keys; unauthenticated garbage is always quiet.
func FuzzHandle(f *testing.F) {
	seeds := fuzzSeeds(f)
	for _, p := range seeds {
		f.Add(p)
		f.Add(p[:len(p)-1])
	}
	f.Add([]byte("+"))
	f.Add(bytes.Repeat([]byte("/"), 420))
	s := settings(f, baseConf)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		h, err := New(s, NewDigests(time.Minute, 16), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !h.Match(pkt) {
			return
		}
		in := bytes.Clone(pkt)
		v := h.Handle(t0, cli, gwIP, pkt)
		if !bytes.Equal(in, pkt) {
			t.Fatal("Handle modified the payload")
		}
		if v.Reason == "" {
			if !slices.ContainsFunc(seeds, func(p []byte) bool { return bytes.Equal(p, pkt) }) || len(v.Grants) == 0 {
				t.Fatalf("granted a packet nobody built: %+v", v)
			}
			for _, g := range v.Grants {
				if g.TTL <= 0 || g.TTL > time.Minute || !g.Addr.Is4() {
					t.Fatalf("grant %+v", g)
				}
			}
			return
		}
		if v.Grants != nil || v.After != nil {
			t.Fatalf("refusal with grants: %+v", v)
		}
		switch v.Reason {
		case ReasonFormat, ReasonSource, ReasonHMAC, ReasonDecrypt, ReasonDigest, ReasonMessage:
			if !v.Quiet {
				t.Fatalf("garbage verdict not quiet: %+v", v)
			}
		}
	})
}

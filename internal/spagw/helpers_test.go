package spagw

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/policy"
	"github.com/sesame-gw/sesame/internal/replay"
	"github.com/sesame-gw/sesame/internal/service"
	"github.com/sesame-gw/sesame/internal/spa"
)

var (
	t0    = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	src4  = netip.MustParseAddr("198.51.100.7")
	src6  = netip.MustParseAddr("2001:db8::7")
	other = netip.MustParseAddr("203.0.113.9")
	gwIP  = netip.MustParseAddr("192.0.2.1")
)

func seeded(b byte) []byte {
	s := make([]byte, 32)
	for i := range s {
		s[i] = b + byte(i)
	}
	return s
}

func gwKey(t testing.TB, b byte) *ecdh.PrivateKey {
	t.Helper()
	k, err := ecdh.X25519().NewPrivateKey(seeded(b))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func idKey(b byte) ed25519.PrivateKey { return ed25519.NewKeyFromSeed(seeded(b)) }

func rng(t testing.TB, s string) service.Range {
	t.Helper()
	r, err := service.ParseRange(s, 0)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func ranges(t testing.TB, ss ...string) []service.Range {
	var out []service.Range
	for _, s := range ss {
		out = append(out, rng(t, s))
	}
	return out
}

// fixture is a gateway with three clients: alice (22/tcp and a UDP range,
// 5 minutes), bob (expired), carol (sources 198.51.100.0/24, may ask for
// another address).
type fixture struct {
	gw                *ecdh.PrivateKey
	alice, bob, carol ed25519.PrivateKey
	set               *policy.Set
	dir               string
}

func newFixture(t testing.TB) *fixture {
	f := &fixture{gw: gwKey(t, 1), alice: idKey(10), bob: idKey(20), carol: idKey(30), dir: t.TempDir()}
	pub := func(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }
	set, err := policy.NewSet([]policy.Client{
		{Name: "alice", Key: pub(f.alice), Allow: ranges(t, "22/tcp", "60000-60010/udp"), MaxDuration: 5 * time.Minute},
		{Name: "bob", Key: pub(f.bob), Allow: ranges(t, "22/tcp"), Expires: t0},
		{Name: "carol", Key: pub(f.carol), Allow: ranges(t, "22/tcp"), Sources: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8::/32")}, OtherAddress: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.set = set
	return f
}

func (f *fixture) settings() Settings { return Settings{Key: f.gw, Clients: f.set} }

// store opens the replay store in the fixture's state directory.
func (f *fixture) store(t testing.TB, opt replay.Options, now time.Time) *replay.Store {
	t.Helper()
	s, err := replay.OpenStore(filepath.Join(f.dir, ReplayFile), opt, now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func (f *fixture) handler(t testing.TB, r Replay) *Handler {
	t.Helper()
	h, err := New(f.settings(), r, nil)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func req(t testing.TB, d time.Duration, svcs ...string) policy.Request {
	return policy.Request{Services: ranges(t, svcs...), Duration: d}
}

func seal(t testing.TB, id ed25519.PrivateKey, gw *ecdh.PublicKey, r policy.Request, at time.Time) []byte {
	t.Helper()
	p, err := spa.Seal(spa.KeyIdentity(id), gw, r, at)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// handBuild frames and seals plaintext pt to gw exactly as docs/protocol.md
// §4-5 say, without any check on pt: for packets spa.Seal refuses to make
// (a bad signature, a malformed plaintext).
func handBuild(t testing.TB, gw *ecdh.PublicKey, pt []byte) []byte {
	t.Helper()
	header := []byte{spa.Magic, spa.Version}
	info := append(append([]byte("sesame-spa/1 packet"), header...), gw.Bytes()...)
	pk, err := hpke.NewDHKEMPublicKey(gw)
	if err != nil {
		t.Fatal(err)
	}
	enc, sender, err := hpke.NewSender(pk, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), info)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := sender.Seal(nil, pt)
	if err != nil {
		t.Fatal(err)
	}
	pkt := append(append(header, enc...), ct...)
	return remac(t, gw, pkt)
}

// remac appends mac1 (§5.1) to pkt.
func remac(t testing.TB, gw *ecdh.PublicKey, pkt []byte) []byte {
	t.Helper()
	k, err := hkdf.Key(sha256.New, gw.Bytes(), nil, "sesame-spa/1 prefilter", 32)
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, k)
	m.Write(pkt)
	return append(pkt, m.Sum(nil)[:16]...)
}

// plaintext encodes §4.1 for an Ed25519 credential, one service, with the
// given signature bytes (not a valid signature).
func plaintext(pub ed25519.PublicKey, at time.Time, sig []byte) []byte {
	pt := []byte{1, 0, 32}
	pt = append(pt, pub...)
	pt = binary.BigEndian.AppendUint64(pt, uint64(at.UnixMilli()))
	pt = binary.BigEndian.AppendUint32(pt, 30)
	pt = append(pt, 0, 1, 6, 0, 22, 0, 22)
	pt = append(pt, byte(len(sig)))
	return append(pt, sig...)
}

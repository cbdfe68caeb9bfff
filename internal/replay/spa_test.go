package replay_test

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/policy"
	"github.com/sesame-gw/sesame/internal/replay"
	"github.com/sesame-gw/sesame/internal/service"
	"github.com/sesame-gw/sesame/internal/spa"
)

// gateway runs the native SPA steps of docs/protocol.md §6 that involve
// replay: Open, then Store.Add after full authentication.
type gateway struct {
	o *spa.Opener[*policy.Client]
	s *replay.Store
}

func (g *gateway) accept(pkt []byte, now time.Time) error {
	op, err := g.o.Open(pkt, now)
	if err != nil {
		return err
	}
	if op.Client.Name != "alice" {
		return errors.New("wrong client " + op.Client.Name)
	}
	return g.s.Add(replay.Key(op.ReplayKey), op.ReplayUntil, now)
}

func TestSPAReplay(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	gwKey, err := ecdh.X25519().NewPrivateKey(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	alice := ed25519.NewKeyFromSeed(make([]byte, 32))
	set, err := policy.NewSet([]policy.Client{{Name: "alice", Key: alice.Public().(ed25519.PublicKey), Allow: []service.Range{{Proto: service.TCP, First: 22, Last: 22}}}})
	if err != nil {
		t.Fatal(err)
	}
	o, err := spa.NewOpener(gwKey, spa.KeyResolver(set.ByKey), 0)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "spa-replay")
	start := func(now time.Time) *gateway {
		s, err := replay.OpenStore(path, replay.Options{}, now)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return &gateway{o: o, s: s}
	}
	req := policy.Request{Services: []service.Range{{Proto: service.TCP, First: 22, Last: 22}}, Duration: 30 * time.Second}
	pkt, err := spa.Seal(spa.KeyIdentity(alice), gwKey.PublicKey(), req, t0)
	if err != nil {
		t.Fatal(err)
	}

	g := start(t0)
	if err := g.accept(pkt, t0.Add(time.Second)); err != nil {
		t.Fatalf("first packet: %v", err)
	}
	// The same bytes again; the source address plays no part in the key, so
	// this is also the replay from another host.
	if err := g.accept(pkt, t0.Add(2*time.Second)); !errors.Is(err, replay.ErrReplay) {
		t.Fatalf("replay: %v", err)
	}
	// Daemon restart (the old Store is not even closed: SIGKILL).
	g = start(t0.Add(3 * time.Second))
	if err := g.accept(pkt, t0.Add(4*time.Second)); !errors.Is(err, replay.ErrReplay) {
		t.Fatalf("replay after restart: %v", err)
	}
	// Once the window has passed, the packet is stale, not a replay.
	if err := g.accept(pkt, t0.Add(61*time.Second)); spa.ReasonOf(err) != spa.ErrStale {
		t.Fatalf("after the window: %v, want stale", err)
	}

	// A future-dated packet stays in the cache until its own window closes.
	future, err := spa.Seal(spa.KeyIdentity(alice), gwKey.PublicKey(), req, t0.Add(10*time.Minute+50*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	at := t0.Add(10 * time.Minute) // the packet is 50s in the future
	if err := g.accept(future, at); err != nil {
		t.Fatalf("future-dated packet inside the window: %v", err)
	}
	g = start(at.Add(100 * time.Second))
	if err := g.accept(future, at.Add(100*time.Second)); !errors.Is(err, replay.ErrReplay) {
		t.Fatalf("future-dated packet replayed 100s later, after a restart: %v, want replay", err)
	}
}

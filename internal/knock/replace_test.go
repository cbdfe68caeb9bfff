package knock

import (
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/packet"
	"github.com/sesame-gw/sesame/internal/service"
)

func TestReplaceKeepsUnchangedDoors(t *testing.T) {
	other := Door{Name: "web", Sequence: []service.Service{tcp(1000), tcp(2000)}, Timeout: time.Minute}
	m := New([]Door{other, sshDoor()}, 0)
	m.Observe(nil, t0, alice, tcp(7000), packet.SYN)
	m.Observe(nil, t0, alice, udp(8000), 0)
	m.Observe(nil, t0, bob, tcp(1000), packet.SYN)

	// Reload: "web" changes, "ssh" moves to index 0 unchanged.
	changed := other
	changed.Sequence = []service.Service{tcp(1000), tcp(3000)}
	n := m.Replace([]Door{sshDoor(), changed}, 0)
	if got := n.Progress(alice); got[0] != 2 {
		t.Fatalf("alice's progress on ssh lost: %v", got)
	}
	if n.Progress(bob) != nil || n.Len() != 1 {
		t.Fatalf("bob's attempt on a changed door survived: %v", n.Progress(bob))
	}
	if ev := n.Observe(nil, t0.Add(time.Second), alice, tcp(9000), packet.SYN); completed(ev) != 1 || ev[0].Door != 0 {
		t.Fatalf("alice cannot finish after the reload: %+v", ev)
	}
	// The old machine is untouched.
	if m.Progress(alice)[1] != 2 {
		t.Fatal("Replace modified the old machine")
	}
}

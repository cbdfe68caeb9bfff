package knock

import (
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/packet"
	"github.com/sesame-gw/sesame/internal/service"
)

// fakeRotator has 30 s periods and the sequence 40000+c%100, 41000+c%100.
type fakeRotator struct{ calls *int }

func (fakeRotator) Counter(t time.Time) uint64 { return uint64(t.Unix() / 30) }
func (f fakeRotator) Sequence(c uint64) []service.Service {
	if f.calls != nil {
		*f.calls++
	}
	return []service.Service{tcp(40000 + uint16(c%100)), tcp(41000 + uint16(c%100))}
}

func rotDoor() Door {
	return Door{Name: "rot", Rotator: fakeRotator{}, Timeout: 10 * time.Second}
}

func seqAt(t time.Time) []service.Service { return fakeRotator{}.Sequence(fakeRotator{}.Counter(t)) }

func TestRotatingDoor(t *testing.T) {
	base := time.Unix(30*1000, 0) // start of period 1000
	if err := rotDoor().Validate(); err != nil {
		t.Fatal(err)
	}
	m := New([]Door{rotDoor(), sshDoor()}, 0)
	cur := seqAt(base)
	if ev := run(m, alice, base.Add(time.Second), cur...); completed(ev) != 1 || ev[1].Door != 0 {
		t.Fatalf("current period: %+v", ev)
	}
	// Used once: the same sequence no longer even starts an attempt.
	if ev := run(m, bob, base.Add(2*time.Second), cur...); len(ev) != 0 {
		t.Fatalf("replay: %+v", ev)
	}
	// The previous period's sequence is accepted, once.
	prev := seqAt(base.Add(-time.Second))
	if ev := run(m, alice, base.Add(3*time.Second), prev...); completed(ev) != 1 {
		t.Fatalf("previous period: %+v", ev)
	}
	if ev := run(m, alice, base.Add(4*time.Second), prev...); completed(ev) != 0 {
		t.Fatal("previous period opened twice")
	}
	// Two periods later, both are gone; the new current one works.
	later := base.Add(61 * time.Second)
	if ev := run(m, alice, later, cur...); completed(ev) != 0 {
		t.Fatal("old period opened")
	}
	if ev := run(m, alice, later.Add(time.Second), seqAt(later)...); completed(ev) != 1 {
		t.Fatal("new period did not open")
	}
	// The fixed door is untouched by all this.
	if ev := run(m, alice, later.Add(2*time.Second), tcp(7000), udp(8000), tcp(9000)); completed(ev) != 1 {
		t.Fatal("fixed door broken")
	}
}

func TestRotatingDoorAttemptRotatedOut(t *testing.T) {
	base := time.Unix(30*2000, 0)
	d := rotDoor()
	d.Timeout = time.Hour
	m := New([]Door{d}, 0)
	seq := seqAt(base)
	ev := m.Observe(nil, base, alice, seq[0], packet.SYN)
	// 61 s later the period is two behind: the attempt is reset.
	ev = m.Observe(ev, base.Add(61*time.Second), alice, seq[1], packet.SYN)
	if completed(ev) != 0 || ev[len(ev)-1].Reason != ReasonRotated {
		t.Fatalf("events %+v", ev)
	}
}

func TestRotatingDoorUsedResetsOthers(t *testing.T) {
	base := time.Unix(30*3000, 0)
	m := New([]Door{rotDoor()}, 0)
	seq := seqAt(base)
	ev := m.Observe(nil, base, bob, seq[0], packet.SYN) // an eavesdropper races alice
	ev = run(m, alice, base, seq...)
	if completed(ev) != 1 {
		t.Fatal("alice did not open")
	}
	ev = m.Observe(ev[:0], base, bob, seq[1], packet.SYN)
	if completed(ev) != 0 || ev[0].Reason != ReasonUsed {
		t.Fatalf("bob: %+v", ev)
	}
}

func TestRotatingDoorSequenceOncePerPeriod(t *testing.T) {
	calls := 0
	d := rotDoor()
	d.Rotator = fakeRotator{calls: &calls}
	m := New([]Door{d}, 0)
	base := time.Unix(30*4000, 0)
	for i := 0; i < 1000; i++ {
		m.Observe(nil, base.Add(time.Duration(i)*time.Millisecond), alice, tcp(80), packet.SYN)
	}
	if calls != 2 { // current and previous period
		t.Fatalf("Sequence called %d times", calls)
	}
	if !m.IsStep(seqAt(base)[1]) {
		t.Fatal("current step not known")
	}
}

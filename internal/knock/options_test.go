package knock

import (
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/packet"
	"github.com/sesame-gw/sesame/internal/service"
)

// The knockd-parity cases mirror what knockd 0.8 did on the namespace bench
// (../shared/research/peers-handson.md §3) and what knockd.c's sniff() does.

func tcpDoor(name string, ports ...uint16) Door {
	d := Door{Name: name, Timeout: 5 * time.Second}
	for _, p := range ports {
		d.Sequence = append(d.Sequence, tcp(p))
	}
	return d
}

func knockdMachine(doors ...Door) *Machine {
	return NewWithOptions(doors, Options{Knockd: true})
}

func TestKnockdParityCases(t *testing.T) {
	ssh := tcpDoor("ssh", 7000, 8000, 9000)
	cases := []struct {
		name          string
		seq           []service.Service
		knockd, sesam int // completions
	}{
		{"correct", []service.Service{tcp(7000), tcp(8000), tcp(9000)}, 1, 1},
		{"wrong order", []service.Service{tcp(9000), tcp(8000), tcp(7000)}, 0, 0},
		{"noise on other ports", []service.Service{tcp(7000), tcp(1111), tcp(8000), tcp(3333), tcp(9000)}, 1, 0},
		{"door port out of place", []service.Service{tcp(7000), tcp(8000), tcp(7000), tcp(9000)}, 0, 0},
		{"repeated first knock", []service.Service{tcp(7000), tcp(7000), tcp(8000), tcp(9000)}, 0, 1},
		{"stale attempt swallows the next try", []service.Service{tcp(9000), tcp(8000), tcp(7000), tcp(7000), tcp(8000), tcp(9000)}, 0, 1},
		{"wrong protocol", []service.Service{tcp(7000), udp(8000), tcp(9000)}, 0, 0}, // knockd never sees udp/8000; 9000 then fails
		{"restart after a wrong door port", []service.Service{tcp(7000), tcp(9000), tcp(7000), tcp(8000), tcp(9000)}, 1, 1},
	}
	for _, c := range cases {
		if got := completed(run(knockdMachine(ssh), alice, t0, c.seq...)); got != c.knockd {
			t.Errorf("%s: knockd mode opened %d times, want %d", c.name, got, c.knockd)
		}
		if got := completed(run(New([]Door{ssh}, 0), alice, t0, c.seq...)); got != c.sesam {
			t.Errorf("%s: default mode opened %d times, want %d", c.name, got, c.sesam)
		}
	}
}

func TestKnockdAscendingScanOpens(t *testing.T) {
	m := knockdMachine(tcpDoor("ssh", 7000, 8000, 9000))
	n := 0
	for p := 1; p <= 65535; p++ {
		n += completed(m.Observe(nil, t0, alice, tcp(uint16(p)), packet.SYN))
	}
	if n != 1 {
		t.Fatalf("knockd mode: an ascending scan opened %d times, knockd opens once", n)
	}
}

func TestKnockdBreakingPacketConsumed(t *testing.T) {
	a, b := tcpDoor("a", 7000, 8000, 9000), tcpDoor("b", 7500, 8500)
	m := knockdMachine(a, b)
	// 7500 fails a's attempt and, being consumed, does not start b.
	ev := run(m, alice, t0, tcp(7000), tcp(7500), tcp(8500))
	if completed(ev) != 0 {
		t.Fatalf("b opened: %v", kinds(ev))
	}
	if ev[1].Kind != Reset || ev[1].Reason != ReasonWrongPort || ev[1].Reached != 1 {
		t.Fatalf("second event %+v", ev[1])
	}
	// The default mode starts b at once.
	if ev := run(New([]Door{a, b}, 0), alice, t0, tcp(7000), tcp(7500), tcp(8500)); completed(ev) != 1 {
		t.Fatalf("default mode: %v", kinds(ev))
	}
	// Doors sharing a prefix progress in parallel in both modes.
	c := tcpDoor("c", 7000, 8000, 9100)
	if ev := run(knockdMachine(a, c), alice, t0, tcp(7000), tcp(8000), tcp(9100)); completed(ev) != 1 || ev[len(ev)-1].Door != 1 {
		t.Fatalf("shared prefix: %+v", ev)
	}
}

func TestKnockdFlagsIgnoredPerDoor(t *testing.T) {
	a := tcpDoor("a", 7000, 8000, 9000)
	a.Flags = Flags{Set: packet.SYN, Clear: packet.ACK}
	b := tcpDoor("b", 6000, 6100)
	b.Flags = Flags{Set: packet.ACK}
	m := knockdMachine(a, b)
	var ev []Event
	ev = m.Observe(ev, t0, alice, tcp(7000), packet.SYN)
	// An ACK to b's port passes the capture filter (b's flags) but does not
	// match a's flags: ignored by a's attempt.
	ev = m.Observe(ev, t0, alice, tcp(6000), packet.ACK)
	ev = m.Observe(ev, t0, alice, tcp(8000), packet.SYN)
	ev = m.Observe(ev, t0, alice, tcp(9000), packet.SYN)
	if completed(ev) != 1 {
		t.Fatalf("events %v", kinds(ev))
	}
}

func TestKnockdTimeoutWholeSeconds(t *testing.T) {
	d := tcpDoor("ssh", 7000, 8000)
	base := time.Unix(1_800_000_000, 0)
	for _, c := range []struct {
		first, last time.Duration
		opens       bool
	}{
		{0, 4999 * time.Millisecond, true},
		{900 * time.Millisecond, 5100 * time.Millisecond, false}, // 4.2 s, but seconds 0 → 5
		{0, 5 * time.Second, false},
	} {
		m := knockdMachine(d)
		ev := m.Observe(nil, base.Add(c.first), alice, tcp(7000), packet.SYN)
		ev = m.Observe(ev, base.Add(c.last), alice, tcp(8000), packet.SYN)
		if (completed(ev) == 1) != c.opens {
			t.Errorf("knocks at %v and %v: events %v, want open=%v", c.first, c.last, kinds(ev), c.opens)
		}
	}
}

func TestKnockdTimeoutThenRestartSamePacket(t *testing.T) {
	// knockd drops expired attempts before looking at the packet, so a first
	// knock after a timeout starts over at once.
	m := knockdMachine(tcpDoor("ssh", 7000, 8000))
	ev := m.Observe(nil, t0, alice, tcp(7000), packet.SYN)
	ev = m.Observe(ev, t0.Add(6*time.Second), alice, tcp(7000), packet.SYN)
	ev = m.Observe(ev, t0.Add(6*time.Second), alice, tcp(8000), packet.SYN)
	if completed(ev) != 1 || ev[1].Reason != ReasonTimeout || ev[1].Reached != 1 {
		t.Fatalf("events %+v", ev)
	}
}

func TestSetSequence(t *testing.T) {
	m := New([]Door{tcpDoor("otp", 5000, 5500, 5900), sshDoor()}, 0)
	var ev []Event
	ev = m.Observe(ev, t0, bob, tcp(5000), packet.SYN) // bob is part-way on the old sequence
	m.SetSequence(0, []service.Service{tcp(7100), tcp(8100)})
	if m.IsStep(tcp(5900)) || !m.IsStep(tcp(8100)) || !m.IsStep(udp(8000)) {
		t.Fatal("steps not rebuilt")
	}
	ev = m.Observe(ev[:0], t0, bob, tcp(5500), packet.SYN)
	if len(ev) != 1 || ev[0].Reason != ReasonReplaced {
		t.Fatalf("old attempt: %+v", ev)
	}
	if ev := run(m, alice, t0, tcp(5000), tcp(5500), tcp(5900)); completed(ev) != 0 {
		t.Fatal("old sequence still opens")
	}
	if ev := run(m, alice, t0.Add(time.Second), tcp(7100), tcp(8100)); completed(ev) != 1 || ev[1].Door != 0 {
		t.Fatalf("new sequence: %+v", ev)
	}
	m.SetSequence(0, nil)
	if ev := run(m, alice, t0.Add(2*time.Second), tcp(7100), tcp(8100)); len(ev) != 0 {
		t.Fatalf("disabled door: %+v", ev)
	}
	if ev := run(m, alice, t0.Add(3*time.Second), tcp(7000), udp(8000), tcp(9000)); completed(ev) != 1 {
		t.Fatal("the other door stopped working")
	}
	m.SetSequence(5, nil) // out of range: ignored
}

func TestKnockdModeDefaultsUnchanged(t *testing.T) {
	// New is NewWithOptions with MaxSources only.
	m := New([]Door{sshDoor()}, 3)
	if m.opts.Knockd || m.max != 3 {
		t.Fatalf("opts %+v max %d", m.opts, m.max)
	}
	if n := NewWithOptions([]Door{sshDoor()}, Options{}); n.max != DefaultMaxSources {
		t.Fatalf("max %d", n.max)
	}
}

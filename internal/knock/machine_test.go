package knock

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/packet"
	"github.com/sesame-gw/sesame/internal/service"
)

var (
	t0    = time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	alice = netip.MustParseAddr("10.0.0.2")
	bob   = netip.MustParseAddr("2001:db8::2")
)

func tcp(p uint16) service.Service { return service.Service{Proto: service.TCP, Port: p} }
func udp(p uint16) service.Service { return service.Service{Proto: service.UDP, Port: p} }

func sshDoor() Door {
	return Door{Name: "ssh", Sequence: []service.Service{tcp(7000), udp(8000), tcp(9000)}, Timeout: 10 * time.Second}
}

// run feeds packets one millisecond apart and returns all events.
func run(m *Machine, src netip.Addr, start time.Time, svcs ...service.Service) []Event {
	var ev []Event
	for i, s := range svcs {
		ev = m.Observe(ev, start.Add(time.Duration(i)*time.Millisecond), src, s, packet.SYN)
	}
	return ev
}

func completed(ev []Event) int {
	n := 0
	for _, e := range ev {
		if e.Kind == Completed {
			n++
		}
	}
	return n
}

func kinds(ev []Event) []Kind {
	var k []Kind
	for _, e := range ev {
		k = append(k, e.Kind)
	}
	return k
}

func TestCorrectSequenceOpens(t *testing.T) {
	for _, src := range []netip.Addr{alice, bob, netip.MustParseAddr("::ffff:10.0.0.9")} {
		m := New([]Door{sshDoor()}, 0)
		ev := run(m, src, t0, tcp(7000), udp(8000), tcp(9000))
		want := []Kind{Started, Advanced, Completed}
		if got := kinds(ev); len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
			t.Fatalf("%v: events %v, want %v", src, got, want)
		}
		if ev[2].Src != src.Unmap() || ev[2].Door != 0 || ev[2].Stage != 3 {
			t.Fatalf("completion event %+v", ev[2])
		}
		if m.Len() != 0 {
			t.Fatalf("source still tracked after completion")
		}
	}
}

func TestWrongOrderAndStrayResets(t *testing.T) {
	cases := map[string][]service.Service{
		"wrong order":          {tcp(7000), tcp(9000), udp(8000)},
		"wrong protocol":       {tcp(7000), tcp(8000), tcp(9000)},
		"stray port between":   {tcp(7000), udp(8000), tcp(22), tcp(9000)},
		"stray udp between":    {tcp(7000), udp(53), udp(8000), tcp(9000)},
		"reverse":              {tcp(9000), udp(8000), tcp(7000)},
		"missing first":        {udp(8000), tcp(9000)},
		"later step repeated ": {tcp(7000), udp(8000), tcp(7000), tcp(9000)},
	}
	for name, seq := range cases {
		m := New([]Door{sshDoor()}, 0)
		if ev := run(m, alice, t0, seq...); completed(ev) != 0 {
			t.Errorf("%s: opened (%v)", name, kinds(ev))
		}
	}
}

func TestRepeatedKnockTolerated(t *testing.T) {
	m := New([]Door{sshDoor()}, 0)
	ev := run(m, alice, t0, tcp(7000), tcp(7000), udp(8000), udp(8000), udp(8000), tcp(9000))
	if completed(ev) != 1 {
		t.Fatalf("retransmitted knocks broke the attempt: %v", kinds(ev))
	}
	if ev[1].Kind != Repeated {
		t.Fatalf("second 7000 gave %v, want repeat", ev[1].Kind)
	}
}

func TestRestartAfterReset(t *testing.T) {
	m := New([]Door{sshDoor()}, 0)
	// A wrong port resets; starting over from the first step works at once.
	ev := run(m, alice, t0, tcp(7000), tcp(1234), tcp(7000), udp(8000), tcp(9000))
	if completed(ev) != 1 {
		t.Fatalf("could not start over: %v", kinds(ev))
	}
}

func TestTimeoutFromFirstKnock(t *testing.T) {
	m := New([]Door{sshDoor()}, 0)
	var ev []Event
	ev = m.Observe(ev, t0, alice, tcp(7000), packet.SYN)
	ev = m.Observe(ev, t0.Add(6*time.Second), alice, udp(8000), 0)
	ev = m.Observe(ev, t0.Add(10*time.Second+time.Millisecond), alice, tcp(9000), packet.SYN)
	if completed(ev) != 0 {
		t.Fatalf("opened after the sequence timeout: %v", kinds(ev))
	}
	last := ev[len(ev)-1]
	if last.Kind != Reset || last.Reason != ReasonTimeout {
		t.Fatalf("last event %+v, want timeout reset", last)
	}
	// Exactly at the timeout it still counts.
	m = New([]Door{sshDoor()}, 0)
	ev = ev[:0]
	ev = m.Observe(ev, t0, alice, tcp(7000), packet.SYN)
	ev = m.Observe(ev, t0.Add(5*time.Second), alice, udp(8000), 0)
	ev = m.Observe(ev, t0.Add(10*time.Second), alice, tcp(9000), packet.SYN)
	if completed(ev) != 1 {
		t.Fatalf("did not open at exactly the timeout: %v", kinds(ev))
	}
}

func TestExpireSweep(t *testing.T) {
	m := New([]Door{sshDoor()}, 0)
	m.Observe(nil, t0, alice, tcp(7000), packet.SYN)
	m.Observe(nil, t0.Add(time.Second), bob, tcp(7000), packet.SYN)
	if got := m.NextExpiry(); !got.After(t0.Add(10 * time.Second)) {
		t.Fatalf("NextExpiry %v too early", got)
	}
	if ev := m.Expire(nil, t0.Add(10*time.Second)); len(ev) != 0 || m.Len() != 2 {
		t.Fatalf("expired too early: %v", ev)
	}
	ev := m.Expire(nil, t0.Add(10*time.Second+500*time.Millisecond))
	if len(ev) != 1 || ev[0].Src != alice || ev[0].Reason != ReasonTimeout || m.Len() != 1 {
		t.Fatalf("Expire = %+v, len %d", ev, m.Len())
	}
	m.Expire(nil, t0.Add(time.Hour))
	if m.Len() != 0 || !m.NextExpiry().IsZero() {
		t.Fatalf("not empty after expiry")
	}
}

func TestTCPFlags(t *testing.T) {
	d := sshDoor()
	var err error
	if d.Flags, err = ParseFlags([]string{"syn", "!ack"}); err != nil {
		t.Fatal(err)
	}
	m := New([]Door{d}, 0)
	var ev []Event
	ev = m.Observe(ev, t0, alice, tcp(7000), packet.SYN)
	// An ACK to a knock port matches no door's flags: ignored, not a reset.
	ev = m.Observe(ev, t0, alice, tcp(9000), packet.ACK)
	ev = m.Observe(ev, t0, alice, udp(8000), 0)
	ev = m.Observe(ev, t0, alice, tcp(9000), packet.SYN|packet.ACK) // ignored too
	if completed(ev) != 0 {
		t.Fatal("SYN+ACK matched syn,!ack")
	}
	ev = m.Observe(ev, t0, alice, tcp(9000), packet.SYN)
	if completed(ev) != 1 {
		t.Fatalf("events %v", kinds(ev))
	}
	// A packet with any flags to a port that is no knock port resets.
	ev = ev[:0]
	ev = m.Observe(ev, t0, bob, tcp(7000), packet.SYN)
	ev = m.Observe(ev, t0, bob, tcp(80), packet.ACK)
	if len(ev) != 2 || ev[1].Kind != Reset {
		t.Fatalf("stray ACK: %v", kinds(ev))
	}
}

func TestParseFlags(t *testing.T) {
	f, err := ParseFlags([]string{"SYN", " !ack", "fin"})
	if err != nil || f.String() != "fin,syn,!ack" {
		t.Fatalf("ParseFlags = %v %v", f, err)
	}
	for _, bad := range [][]string{{"sin"}, {"syn", "!syn"}, {"!"}} {
		if _, err := ParseFlags(bad); err == nil {
			t.Errorf("ParseFlags(%q) accepted", bad)
		}
	}
	if !(Flags{}).Match(0xff) {
		t.Fatal("zero Flags must match everything")
	}
}

func TestSharedPrefixDoorsInParallel(t *testing.T) {
	a := Door{Name: "a", Sequence: []service.Service{tcp(1000), tcp(2000), tcp(3000)}, Timeout: time.Minute}
	b := Door{Name: "b", Sequence: []service.Service{tcp(1000), tcp(2000), tcp(4000)}, Timeout: time.Minute}
	m := New([]Door{a, b}, 0)
	opened := func(ev []Event) int {
		for _, e := range ev {
			if e.Kind == Completed {
				return e.Door
			}
		}
		return -1
	}
	if ev := run(m, alice, t0, tcp(1000), tcp(2000), tcp(4000)); completed(ev) != 1 || opened(ev) != 1 {
		t.Fatalf("door b should open: %+v", ev)
	}
	if ev := run(m, alice, t0.Add(time.Minute), tcp(1000), tcp(2000), tcp(3000)); completed(ev) != 1 || opened(ev) != 0 {
		t.Fatalf("door a should open: %+v", ev)
	}
}

func TestOneStepDoorAndSources(t *testing.T) {
	d := Door{Name: "one", Sequence: []service.Service{udp(5000)}, Timeout: time.Second,
		Sources: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	m := New([]Door{d}, 0)
	if ev := run(m, alice, t0, udp(5000)); completed(ev) != 1 || m.Len() != 0 {
		t.Fatalf("one-step door: %v", kinds(ev))
	}
	if ev := run(m, bob, t0, udp(5000)); len(ev) != 0 {
		t.Fatalf("source outside the door's prefixes knocked: %v", kinds(ev))
	}
}

func TestTwoSourcesIndependent(t *testing.T) {
	m := New([]Door{sshDoor()}, 0)
	var ev []Event
	ev = m.Observe(ev, t0, alice, tcp(7000), packet.SYN)
	ev = m.Observe(ev, t0, bob, tcp(7000), packet.SYN)
	ev = m.Observe(ev, t0, bob, tcp(22), packet.SYN) // bob's stray must not hurt alice
	ev = m.Observe(ev, t0, alice, udp(8000), 0)
	ev = m.Observe(ev, t0, alice, tcp(9000), packet.SYN)
	if completed(ev) != 1 || ev[len(ev)-1].Src != alice {
		t.Fatalf("events %+v", ev)
	}
}

func TestEvictionPrefersFirstStage(t *testing.T) {
	m := New([]Door{sshDoor()}, 4)
	// alice gets to stage 2, then a flood of first knocks from spoofed sources.
	m.Observe(nil, t0, alice, tcp(7000), packet.SYN)
	m.Observe(nil, t0, alice, udp(8000), 0)
	var evicted int
	for i := 0; i < 1000; i++ {
		src := netip.AddrFrom4([4]byte{192, 0, byte(i >> 8), byte(i)})
		for _, e := range m.Observe(nil, t0.Add(time.Millisecond), src, tcp(7000), packet.SYN) {
			if e.Reason == ReasonEvicted {
				evicted++
				if e.Src == alice {
					t.Fatal("flood of first knocks evicted a source at stage 2")
				}
			}
		}
		if m.Len() > 4 {
			t.Fatalf("tracking %d sources, cap 4", m.Len())
		}
	}
	if evicted != 1000-3 {
		t.Fatalf("evicted %d", evicted)
	}
	if ev := m.Observe(nil, t0.Add(2*time.Millisecond), alice, tcp(9000), packet.SYN); completed(ev) != 1 {
		t.Fatalf("alice lost her progress: %v", kinds(ev))
	}
	// When every tracked source is advanced, the least recent one goes.
	m = New([]Door{sshDoor()}, 2)
	for i, src := range []netip.Addr{alice, bob} {
		at := t0.Add(time.Duration(i) * time.Second)
		m.Observe(nil, at, src, tcp(7000), packet.SYN)
		m.Observe(nil, at, src, udp(8000), 0)
	}
	ev := m.Observe(nil, t0.Add(3*time.Second), netip.MustParseAddr("10.9.9.9"), tcp(7000), packet.SYN)
	if len(ev) != 2 || ev[0].Src != alice || ev[0].Reason != ReasonEvicted {
		t.Fatalf("events %+v", ev)
	}
}

// scanDoors is a deliberately awkward configuration: ascending and
// descending doors and one sharing a prefix, TCP and UDP.
func scanDoors() []Door {
	return []Door{
		sshDoor(),
		{Name: "asc-tcp", Sequence: []service.Service{tcp(1000), tcp(2000), tcp(3000)}, Timeout: time.Hour},
		{Name: "desc-tcp", Sequence: []service.Service{tcp(9300), tcp(9200), tcp(9100)}, Timeout: time.Hour},
		{Name: "asc-udp", Sequence: []service.Service{udp(1000), udp(2000), udp(3000)}, Timeout: time.Hour},
		{Name: "two", Sequence: []service.Service{tcp(40000), tcp(40002)}, Timeout: time.Hour},
	}
}

// TestNoScanCompletesASequence runs full port scans the way nmap does
// (ascending with -r, descending, and random order, TCP and UDP, mixed)
// and checks that no door opens: every port a scan hits between two knock
// ports resets the attempt. knockd opens on the ascending scan.
func TestNoScanCompletesASequence(t *testing.T) {
	all := func(proto service.Proto) []service.Service {
		s := make([]service.Service, 0, 65535)
		for p := 1; p <= 65535; p++ {
			s = append(s, service.Service{Proto: proto, Port: uint16(p)})
		}
		return s
	}
	reverse := func(s []service.Service) []service.Service {
		r := make([]service.Service, len(s))
		for i := range s {
			r[len(s)-1-i] = s[i]
		}
		return r
	}
	scans := map[string][]service.Service{
		"tcp ascending":  all(service.TCP),
		"tcp descending": reverse(all(service.TCP)),
		"udp ascending":  all(service.UDP),
		"udp descending": reverse(all(service.UDP)),
		"tcp+udp interleaved ascending": func() []service.Service {
			var s []service.Service
			for p := 1; p <= 65535; p++ {
				s = append(s, tcp(uint16(p)), udp(uint16(p)))
			}
			return s
		}(),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 40; i++ {
		s := append(all(service.TCP), all(service.UDP)...)
		rng.Shuffle(len(s), func(a, b int) { s[a], s[b] = s[b], s[a] })
		scans["random "+string(rune('a'+i%26))+string(rune('0'+i/26))] = s
	}
	for name, scan := range scans {
		m := New(scanDoors(), 0)
		var ev []Event
		for i, svc := range scan {
			ev = m.Observe(ev[:0], t0.Add(time.Duration(i)*time.Microsecond), alice, svc, packet.SYN)
			if c := completed(ev); c != 0 {
				t.Fatalf("%s: door %q opened at packet %d (%v)", name, m.Doors()[ev[len(ev)-1].Door].Name, i, svc)
			}
		}
	}
}

// TestScanWithRetransmissions: nmap retransmits probes; a repeat of the
// port just probed must not let a scan through either.
func TestScanWithRetransmissions(t *testing.T) {
	m := New(scanDoors(), 0)
	for p := 1; p <= 65535; p++ {
		for r := 0; r < 2; r++ {
			if ev := m.Observe(nil, t0, alice, tcp(uint16(p)), packet.SYN); completed(ev) != 0 {
				t.Fatalf("opened at %d", p)
			}
		}
	}
}

func BenchmarkObserveKnockPort(b *testing.B) {
	m := New(scanDoors(), 0)
	var ev []Event
	seq := []service.Service{tcp(7000), udp(8000), tcp(9000)}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		src := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		for _, s := range seq {
			ev = m.Observe(ev[:0], t0, src, s, packet.SYN)
		}
	}
}

func BenchmarkObserveStray(b *testing.B) {
	m := New(scanDoors(), 0)
	var ev []Event
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ev = m.Observe(ev[:0], t0, alice, tcp(uint16(i%60000+1)), packet.SYN)
	}
}

func BenchmarkObserveFloodFirstKnock(b *testing.B) {
	m := New(scanDoors(), 4096)
	var ev []Event
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		src := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		ev = m.Observe(ev[:0], t0, src, tcp(7000), packet.SYN)
	}
}

func TestScanSafe(t *testing.T) {
	if err := sshDoor().ScanSafe(); err != nil {
		t.Fatal(err)
	}
	for _, seq := range [][]service.Service{
		{tcp(40000), tcp(40001)},
		{tcp(40001), tcp(40000)},
		{tcp(7000), udp(7000)},
		{tcp(7000), udp(7001)},
		{tcp(7000), tcp(7000)},
	} {
		d := Door{Name: "x", Sequence: seq, Timeout: time.Second}
		if err := d.ScanSafe(); err == nil {
			t.Errorf("%v accepted as scan-safe", seq)
		}
		// And some ordered scan really opens it: the check is needed.
		var ev []Event
		scan := func(order []int, probes func(p uint16) []service.Service) {
			m := New([]Door{d}, 0)
			for _, p := range order {
				for _, s := range probes(uint16(p)) {
					ev = m.Observe(ev, t0, alice, s, packet.SYN)
				}
			}
		}
		var asc, desc []int
		for p := 1; p <= 65535; p++ {
			asc, desc = append(asc, p), append(desc, 65536-p)
		}
		for _, order := range [][]int{asc, desc} {
			scan(order, func(p uint16) []service.Service { return []service.Service{tcp(p)} })
			scan(order, func(p uint16) []service.Service { return []service.Service{tcp(p), tcp(p)} })
			scan(order, func(p uint16) []service.Service { return []service.Service{tcp(p), udp(p)} })
			scan(order, func(p uint16) []service.Service { return []service.Service{udp(p), tcp(p)} })
		}
		if completed(ev) == 0 {
			t.Errorf("%v: expected an ordered scan to open it", seq)
		}
	}
}

func TestValidate(t *testing.T) {
	bad := []Door{
		{Sequence: []service.Service{tcp(1)}, Timeout: time.Second},
		{Name: "x", Timeout: time.Second},
		{Name: "x", Sequence: []service.Service{{}}, Timeout: time.Second},
		{Name: "x", Sequence: []service.Service{tcp(1)}},
		{Name: "x", Sequence: make([]service.Service, 33), Timeout: time.Second},
	}
	for _, d := range bad {
		if d.Validate() == nil {
			t.Errorf("Validate accepted %+v", d)
		}
	}
}

package totp

import (
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/service"
)

// Known-answer sequences, computed independently with Python's hmac and
// hashlib from the derivation in Door.Sequence's doc comment.
func TestSequenceVectors(t *testing.T) {
	key := []byte("12345678901234567890")
	seq := func(_, _ uint16, ports ...uint16) []service.Service {
		var s []service.Service
		for _, p := range ports {
			s = append(s, service.Service{Proto: service.TCP, Port: p})
		}
		return s
	}
	var k32, k16, k20 []byte
	for i := range 32 {
		k32 = append(k32, byte(i))
	}
	k16, k20 = k32[:16], k32[:20]
	cases := []struct {
		d    Door
		c    uint64
		want []service.Service
	}{
		{Door{"ssh", key, 30 * time.Second, DefaultPorts, 3}, 0, seq(0, 0, 43922, 45999, 42829)},
		{Door{"ssh", key, 30 * time.Second, DefaultPorts, 3}, 1, seq(0, 0, 40573, 49243, 43610)},
		{Door{"ssh", key, 30 * time.Second, DefaultPorts, 3}, 59686733, seq(0, 0, 41852, 42305, 45170)},
		{Door{"web", key, 30 * time.Second, DefaultPorts, 3}, 59686733, seq(0, 0, 41618, 41435, 42134)},
		{Door{"ssh", k32, 30 * time.Second, service.Range{Proto: service.TCP, First: 1000, Last: 1023}, 3}, 123456, seq(0, 0, 1016, 1012, 1023)},
		{Door{"tiny", k16, 30 * time.Second, service.Range{Proto: service.TCP, First: 2000, Last: 2015}, 2}, 7, seq(0, 0, 2001, 2011)},
		{Door{"long", k20, 30 * time.Second, service.Range{Proto: service.TCP, First: 20000, Last: 20255}, 32}, 42, seq(0, 0,
			20024, 20143, 20201, 20058, 20020, 20042, 20070, 20245, 20069, 20001, 20181, 20109, 20111, 20030, 20132, 20162,
			20049, 20129, 20092, 20041, 20075, 20136, 20083, 20152, 20023, 20066, 20047, 20126, 20207, 20191, 20199, 20145)},
	}
	for _, c := range cases {
		got := c.d.Sequence(c.c)
		if len(got) != len(c.want) {
			t.Fatalf("%s/%d: %v, want %v", c.d.Name, c.c, got, c.want)
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Fatalf("%s/%d: %v, want %v", c.d.Name, c.c, got, c.want)
			}
		}
	}
	// At agrees with Sequence for a time inside period 59686733.
	d := cases[2].d
	at := time.Unix(59686733*30+17, 0)
	if got := d.At(at); got[0].Port != 41852 {
		t.Fatalf("At = %v", got)
	}
}

// Every derived sequence is in range, has distinct ports, and no two
// consecutive steps are neighbours (knock.Door.ScanSafe's rule).
func TestSequenceProperties(t *testing.T) {
	d := Door{"p", []byte("0123456789abcdef"), 30 * time.Second, service.Range{Proto: service.UDP, First: 5000, Last: 5047}, 6}
	for c := uint64(0); c < 5000; c++ {
		s := d.Sequence(c)
		if len(s) != 6 {
			t.Fatalf("period %d: %v", c, s)
		}
		seen := map[uint16]bool{}
		for i, x := range s {
			if !d.Ports.Contains(x) || seen[x.Port] {
				t.Fatalf("period %d: %v", c, s)
			}
			seen[x.Port] = true
			if i > 0 {
				if diff := int(x.Port) - int(s[i-1].Port); diff >= -1 && diff <= 1 {
					t.Fatalf("period %d: neighbours in %v", c, s)
				}
			}
		}
	}
}

func TestDoorValidate(t *testing.T) {
	good := Door{"ssh", make([]byte, 16), 30 * time.Second, DefaultPorts, 3}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []func(*Door){
		func(d *Door) { d.Name = "" },
		func(d *Door) { d.Key = d.Key[:15] },
		func(d *Door) { d.Period = 1500 * time.Millisecond },
		func(d *Door) { d.Period = 2 * time.Hour },
		func(d *Door) { d.Steps = 0 },
		func(d *Door) { d.Steps = 33 },
		func(d *Door) { d.Ports = service.Range{Proto: service.TCP, First: 100, Last: 110} },
		func(d *Door) { d.Ports.Proto = 1 },
	}
	for i, f := range bad {
		d := good
		f(&d)
		if d.Validate() == nil {
			t.Errorf("case %d accepted: %+v", i, d)
		}
		if d.Sequence(1) != nil {
			t.Errorf("case %d: invalid door derived a sequence", i)
		}
	}
}

func BenchmarkSequence(b *testing.B) {
	d := Door{"ssh", []byte("12345678901234567890"), 30 * time.Second, DefaultPorts, 3}
	for i := 0; b.Loop(); i++ {
		d.Sequence(uint64(i))
	}
}

package knockdconf

import (
	"errors"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/knock"
	"github.com/sesame-gw/sesame/internal/packet"
	"github.com/sesame-gw/sesame/internal/service"
)

func tcp(p uint16) service.Service { return service.Service{Proto: service.TCP, Port: p} }
func udp(p uint16) service.Service { return service.Service{Proto: service.UDP, Port: p} }

func load(t *testing.T, name string) *Config {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(name, b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDebianDefaultFile(t *testing.T) {
	c := load(t, "debian-knockd.conf")
	if !c.Options.UseSyslog || len(c.Doors) != 3 {
		t.Fatalf("%+v", c)
	}
	d := c.Doors[0]
	if d.Name != "openSSH" || !reflect.DeepEqual(d.Sequence, []service.Service{tcp(7000), tcp(8000), tcp(9000)}) ||
		d.SeqTimeout != 5*time.Second || d.Flags != (knock.Flags{Set: packet.SYN}) || d.CmdTimeout != DefaultCmdTimeout {
		t.Fatalf("door %+v", d)
	}
	if got := d.StartCommand(true); got != "/sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT" {
		t.Fatalf("IPv6 falls back to Command: %q", got)
	}
	if _, ok := d.StopCommand(false); ok {
		t.Fatal("no stop command set")
	}
	if len(c.Doors[2].Sequence) != 4 {
		t.Fatalf("%+v", c.Doors[2])
	}
}

func TestEveryDirective(t *testing.T) {
	c := load(t, "full.conf")
	want := Options{UseSyslog: true, LogFile: "/var/log/knockd.log", PidFile: "/run/knockd.pid", Interface: "ens3"}
	if c.Options != want {
		t.Fatalf("options %+v", c.Options)
	}
	d := c.Doors[0]
	if d.Name != "SSH door" || !reflect.DeepEqual(d.Sequence, []service.Service{tcp(7000), udp(8000), tcp(9000)}) {
		t.Fatalf("door %+v", d)
	}
	if d.SeqTimeout != 5*time.Second || d.CmdTimeout != 0 || d.Target != netip.MustParseAddr("2001:db8::1") {
		t.Fatalf("door %+v", d)
	}
	if d.Flags != (knock.Flags{Set: packet.SYN | packet.URG, Clear: packet.ACK}) {
		t.Fatalf("flags %v", d.Flags)
	}
	// Command_6 present but empty: IPv6 knockers run nothing.
	if d.StartCommand(true) != "" || d.StartCommand(false) == "" {
		t.Fatalf("start commands %q %q", d.StartCommand(false), d.StartCommand(true))
	}
	if s, ok := d.StopCommand(true); !ok || s != "echo stop6 %IP% >> /tmp/log" {
		t.Fatalf("stop6 %q", s)
	}
	o := c.Doors[1]
	if o.OneTimeFile != "/etc/knockd/otp" || o.Sequence != nil || o.SeqTimeout != DefaultSeqTimeout {
		t.Fatalf("otp door %+v", o)
	}
	if s, ok := o.StopCommand(true); ok || s != "" {
		t.Fatal("otp door has no stop command")
	}
}

func TestParseErrors(t *testing.T) {
	cases := map[string]string{
		"before any section":     "sequence = 1,2\n",
		"bad section":            "[]\n",
		"unknown option":         "[options]\n\tfoo = bar\n",
		"door key in options":    "[options]\n\tsequence = 1,2,3\n",
		"bare word":              "[a]\n\tsequence = 1,2,3\n\tverbose\n",
		"unknown door key":       "[a]\n\tsequence = 1,2,3\n\tseq_cooldown = 5\n",
		"empty sequence":         "[a]\n\tseq_timeout = 5\n",
		"port too big":           "[a]\n\tsequence = 7000,70000\n",
		"port zero":              "[a]\n\tsequence = 7000,,8000\n",
		"port garbage":           "[a]\n\tsequence = 70OO,8000\n",
		"bad protocol":           "[a]\n\tsequence = 7000:icmp\n",
		"too long":               "[a]\n\tsequence = " + strings.Repeat("1000,", 32) + "1000\n",
		"bad timeout":            "[a]\n\tsequence = 1,2\n\tseq_timeout = 5s\n",
		"zero seq timeout":       "[a]\n\tsequence = 1,2\n\tseq_timeout = 0\n",
		"negative cmd timeout":   "[a]\n\tsequence = 1,2\n\tcmd_timeout = -1\n",
		"bad flag":               "[a]\n\tsequence = 1,2\n\ttcpflags = syn,sin\n",
		"bad target":             "[a]\n\tsequence = 1,2\n\ttarget = host.example\n",
		"both sequence kinds":    "[a]\n\tsequence = 1,2\n\tone_time_sequences = /x\n",
		"duplicate door":         "[a]\n\tsequence = 1,2\n[a]\n\tsequence = 3,4\n",
		"Options is a door name": "[Options]\n\tLogFile = /x\n",
		"bad interface":          "[options]\n\tinterface = a b\n",
	}
	for name, src := range cases {
		_, err := Parse("k.conf", []byte(src))
		var e *Error
		if err == nil || !errors.As(err, &e) || !errors.Is(err, ErrSyntax) || e.Line == 0 || !strings.HasPrefix(err.Error(), "k.conf:") {
			t.Errorf("%s: error %v", name, err)
		}
	}
	if _, err := Parse("big", make([]byte, MaxFile+1)); err == nil {
		t.Error("oversized file accepted")
	}
}

func TestLeniencyLikeKnockd(t *testing.T) {
	src := "# comment\n  \r\n[options]\r\n  usesyslog  \r\n[door]\r\nSEQUENCE=1:Tcp,2:udp\r\n\tUseSyslog\n" +
		"start_command = a # not a comment = still the value\n"
	c, err := Parse("x", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Options.UseSyslog || c.Doors[0].Start.Text != "a # not a comment = still the value" {
		t.Fatalf("%+v", c)
	}
	if !reflect.DeepEqual(c.Doors[0].Sequence, []service.Service{tcp(1), udp(2)}) {
		t.Fatalf("%v", c.Doors[0].Sequence)
	}
	long := strings.Repeat("x", 200)
	c, err = Parse("x", []byte("["+long+"]\nsequence=1\n"))
	if err != nil || len(c.Doors[0].Name) != maxNameLen {
		t.Fatalf("long name: %v %d", err, len(c.Doors[0].Name))
	}
	// Later TCPFlags mentions override earlier ones, as in knockd.
	c, err = Parse("x", []byte("[d]\nsequence=1\ntcpflags=syn,!syn,ack\n"))
	if err != nil || c.Doors[0].Flags != (knock.Flags{Set: packet.ACK, Clear: packet.SYN}) {
		t.Fatalf("flags %v %v", c.Doors[0].Flags, err)
	}
}

func TestFormatRoundTrip(t *testing.T) {
	for _, f := range []string{"debian-knockd.conf", "full.conf"} {
		c := load(t, f)
		again, err := Parse("formatted", []byte(c.Format()))
		if err != nil {
			t.Fatalf("%s: %v\n%s", f, err, c.Format())
		}
		if !sameConfig(c, again) {
			t.Fatalf("%s: round trip changed the config:\n%s", f, c.Format())
		}
	}
}

// sameConfig compares configs ignoring line numbers.
func sameConfig(a, b *Config) bool {
	if a.Options != b.Options || len(a.Doors) != len(b.Doors) {
		return false
	}
	for i := range a.Doors {
		x, y := a.Doors[i], b.Doors[i]
		x.Line, y.Line, x.seqLine, y.seqLine, x.otsLine, y.otsLine = 0, 0, 0, 0, 0, 0
		if len(x.Sequence) == 0 && len(y.Sequence) == 0 {
			x.Sequence, y.Sequence = nil, nil
		}
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}

func TestParseOneTime(t *testing.T) {
	src := "# used ones start with #\n#7000,8000,9000\n 7100,8100:udp,9100\n\n bad,line\n  7200 , 8200\r\n 99999\n"
	got := ParseOneTime([]byte(src))
	if len(got) != 2 {
		t.Fatalf("%+v", got)
	}
	if got[0].Line != 3 || got[0].Offset != int64(strings.Index(src, " 7100")) ||
		!reflect.DeepEqual(got[0].Sequence, []service.Service{tcp(7100), udp(8100), tcp(9100)}) {
		t.Fatalf("first %+v", got[0])
	}
	if got[1].Line != 6 || src[got[1].Offset:got[1].Offset+6] != "  7200" {
		t.Fatalf("second %+v", got[1])
	}
	if len(ParseOneTime(nil)) != 0 {
		t.Fatal("empty file")
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"debian-knockd.conf", "full.conf"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("[a]\nsequence=1:udp\ntcpflags=!fin\ntarget=::ffff:1.2.3.4\n"))
	f.Add([]byte("[options]\nUseSyslog\n[]\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		c, err := Parse("fuzz", src)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		for _, d := range c.Doors {
			if len(d.Sequence) > MaxSequence || d.Name == "" || d.Name == "options" || len(d.Name) > maxNameLen {
				t.Fatalf("door %+v", d)
			}
			for _, s := range d.Sequence {
				if !s.Valid() {
					t.Fatalf("invalid step %v", s)
				}
			}
			if d.OneTimeFile == "" && len(d.Sequence) == 0 {
				t.Fatal("door without sequence")
			}
		}
		again, err := Parse("formatted", []byte(c.Format()))
		if err != nil {
			t.Fatalf("formatted config does not parse: %v\n%s", err, c.Format())
		}
		if !sameConfig(c, again) {
			t.Fatalf("round trip changed the config:\n%q\n%s", src, c.Format())
		}
	})
}

func FuzzParseOneTime(f *testing.F) {
	f.Add([]byte(" 7000,8000,9000\n#1,2\n 3:udp\n"))
	f.Add([]byte("\r\n\t1\v\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		prev := int64(-1)
		for _, e := range ParseOneTime(src) {
			if e.Offset <= prev || e.Offset >= int64(len(src)) || len(e.Sequence) == 0 || len(e.Sequence) > MaxSequence {
				t.Fatalf("entry %+v", e)
			}
			prev = e.Offset
			// Marking the entry used removes it, and only it.
			used := append([]byte(nil), src...)
			used[e.Offset] = '#'
			for _, x := range ParseOneTime(used) {
				if x.Offset == e.Offset {
					t.Fatalf("entry at %d still usable after marking", e.Offset)
				}
			}
		}
	})
}

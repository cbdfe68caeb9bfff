package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/service"
)

// The config from issue 2 must work as written.
func TestIssueExampleAsWritten(t *testing.T) {
	c, err := Load("testdata/issue2.toml")
	if err != nil {
		t.Fatal(err)
	}
	d := c.KnockDoor(0)
	if d.Name != "ssh" || len(d.Sequence) != 3 || d.Sequence[1] != (service.Service{Proto: service.UDP, Port: 8000}) || d.Timeout != 10*time.Second {
		t.Fatalf("door %+v", d)
	}
	if got := c.Protected(); len(got) != 1 || got[0].String() != "22/tcp" {
		t.Fatalf("protected %v", got)
	}
	if time.Duration(c.Doors[0].Duration) != 30*time.Second {
		t.Fatalf("duration %v", c.Doors[0].Duration)
	}
	if c.Gateway.StateDir != DefaultStateDir || c.Gateway.NFLogGroup != DefaultLogGroup || c.Gateway.LogFormat != "text" {
		t.Fatalf("defaults %+v", c.Gateway)
	}
	if c.Gateway.NFLogBulkGroup != 8 || c.Gateway.NFLogRate != DefaultLogRate {
		t.Fatalf("bulk group defaults %+v", c.Gateway)
	}
	if w := c.Watched(); len(w) != 3 {
		t.Fatalf("watched %v", w)
	}
}

func TestFullConfig(t *testing.T) {
	src := `
[gateway]
interfaces = ["eth0", "eth1"]
state_dir = "/tmp/x"
log_format = "json"
log_level = "debug"
nflog_group = 9
max_sources = 1000
always_allow = ["192.0.2.0/24", "2001:db8::1"]

[[door]]
name = "ssh"
sequence = ["7000", "8000/udp", "tcp/9000"]
open = ["22/tcp", "60000-60002/udp"]
tcp_flags = ["syn", "!ack"]
sources = ["10.0.0.0/8", "fd00::/8"]

[[door]]
name = "web"
sequence = ["1111/udp", "3333/udp"]
seq_timeout = "1m"
open = ["443/tcp"]
duration = "2h"
`
	c, err := Parse("full.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Protected()) != 5 || len(c.OpenServices(0)) != 4 {
		t.Fatalf("protected %v", c.Protected())
	}
	d := c.KnockDoor(0)
	if d.Timeout != DefaultSeqTimeout || d.Flags.String() != "syn,!ack" || len(d.Sources) != 2 {
		t.Fatalf("door 0 %+v", d)
	}
	if a := c.AlwaysAllow(); len(a) != 2 || a[1].Bits() != 128 {
		t.Fatalf("always_allow %v", a)
	}
	if time.Duration(c.Doors[1].Duration) != 2*time.Hour || time.Duration(c.Doors[0].Duration) != DefaultDuration {
		t.Fatal("durations")
	}
}

// Every bad config names the file, the line and the key.
func TestErrorsNameFileLineKey(t *testing.T) {
	cases := []struct {
		name, src string
		line      int
		key       string
		msg       string
	}{
		{"unknown key", "[[door]]\nname = \"a\"\nsequence = [\"1000\", \"2000\"]\nopen = [\"22\"]\nnmae = \"x\"\n", 5, "door.nmae", "unknown key"},
		{"unknown key second door", "[[door]]\nname = \"a\"\nsequence = [\"1000\", \"2000\"]\nopen = [\"22\"]\n[[door]]\nname = \"b\"\nsequence = [\"3000\", \"4000\"]\nopen = [\"23\"]\nfoo = 1\n", 9, "door.foo", "unknown key"},
		{"unknown table", "[gatway]\nstate_dir = \"/x\"\n[[door]]\nname = \"a\"\nsequence = [\"1000\", \"2000\"]\nopen = [\"22\"]\n", 1, "gatway", "unknown table"},
		{"bad port", "[[door]]\nname = \"a\"\nsequence = [\"1000\", \"70000/tcp\"]\nopen = [\"22\"]\n", 3, "sequence", "70000"},
		{"bad proto", "[[door]]\nname = \"a\"\nsequence = [\"1000/icmp\"]\nopen = [\"22\"]\n", 3, "sequence", "icmp"},
		{"bad duration", "[[door]]\nname = \"a\"\nsequence = [\"1000\", \"2000\"]\nopen = [\"22\"]\nduration = \"30 seconds\"\n", 5, "duration", "invalid duration"},
		{"bad type", "[[door]]\nname = 5\n", 2, "name", "incompatible"},
		{"zero timeout", "[[door]]\nname = \"a\"\nsequence = [\"1000\", \"2000\"]\nseq_timeout = \"0s\"\nopen = [\"22\"]\n", 4, "seq_timeout", "not positive"},
		{"missing open", "[[door]]\nname = \"a\"\nsequence = [\"1000\", \"2000\"]\n", 1, "door[0].open", "missing"},
		{"neighbours", "[[door]]\nname = \"a\"\nsequence = [\"1000\", \"1001\"]\nopen = [\"22\"]\n", 3, "door[0].sequence", "neighbours"},
		{"knock on protected", "[[door]]\nname = \"a\"\nsequence = [\"22\", \"2000\"]\nopen = [\"22\"]\n", 3, "door[0].sequence", "must stay closed"},
		{"dup name", "[[door]]\nname = \"a\"\nsequence = [\"1000\", \"2000\"]\nopen = [\"22\"]\n[[door]]\nname = \"a\"\nsequence = [\"3000\", \"4000\"]\nopen = [\"23\"]\n", 6, "door[1].name", "also the name"},
		{"bad flag", "[[door]]\nname = \"a\"\nsequence = [\"1000\", \"2000\"]\nopen = [\"22\"]\ntcp_flags = [\"sin\"]\n", 5, "door[0].tcp_flags", "sin"},
		{"bad prefix", "[gateway]\nalways_allow = [\"10.0.0.1/8\"]\n[[door]]\nname = \"a\"\nsequence = [\"1000\", \"2000\"]\nopen = [\"22\"]\n", 2, "always_allow", "host bits"},
		{"bulk group clash", "[gateway]\nnflog_group = 9\nnflog_bulk_group = 9\n[[door]]\nname = \"a\"\nsequence = [\"1000\", \"2000\"]\nopen = [\"22\"]\n", 3, "nflog_bulk_group", "other than"},
		{"bad log format", "[gateway]\nlog_format = \"xml\"\n[[door]]\nname = \"a\"\nsequence = [\"1000\", \"2000\"]\nopen = [\"22\"]\n", 2, "log_format", "xml"},
		{"toml syntax", "[[door]\nname = \"a\"\n", 2, "", "expected"},
	}
	for _, c := range cases {
		_, err := Parse("/etc/sesame/sesame.toml", []byte(c.src))
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		var ce *Error
		if !errors.As(err, &ce) {
			t.Errorf("%s: error %v is not a *config.Error", c.name, err)
			continue
		}
		if ce.File != "/etc/sesame/sesame.toml" || ce.Line != c.line || !strings.Contains(ce.Key, c.key) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: got %q (line %d key %q); want line %d key %q msg %q", c.name, err, ce.Line, ce.Key, c.line, c.key, c.msg)
		}
		if !strings.HasPrefix(err.Error(), "/etc/sesame/sesame.toml:") {
			t.Errorf("%s: message %q does not start with the file", c.name, err)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"30s": 30 * time.Second, "90d": 90 * 24 * time.Hour, "1h30m": 90 * time.Minute} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "x", "-1s", "1.5d", "0s", "0d"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) accepted", in)
		}
	}
}

func FuzzParse(f *testing.F) {
	b, _ := os.ReadFile("testdata/issue2.toml")
	f.Add(b)
	f.Add([]byte("[gateway]\nalways_allow = [\"::1\"]\n[[door]]\nname = \"x\"\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		c, err := Parse("f.toml", src)
		if err == nil {
			for i := range c.Doors {
				if err := c.KnockDoor(i).Validate(); err != nil {
					t.Fatalf("accepted a config with an invalid door: %v", err)
				}
			}
		}
	})
}

func TestDefaults(t *testing.T) {
	c := Defaults()
	if len(c.Doors) != 0 || c.Gateway.StateDir != DefaultStateDir || c.Gateway.NFLogGroup != DefaultLogGroup || c.Gateway.NFLogBulkGroup != DefaultLogGroup+1 || c.Gateway.LogLevel != "info" {
		t.Fatalf("Defaults() = %+v", c.Gateway)
	}
}

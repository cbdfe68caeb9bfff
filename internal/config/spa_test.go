package config

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/policy"
	"github.com/sesame-gw/sesame/internal/service"
	"github.com/sesame-gw/sesame/internal/spa"
)

const (
	keyA = "sesame-id1:A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg"
	keyB = "sesame-id1:Nf3N_dHgD3Q1sA2e8ot2uPbFq3PpBfpLIgs2Wf_gQH0"
	gwK  = "sesame-gw1:A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg"
)

// The config from issue 3 works as written, with no [[door]].
func TestIssue3ExampleAsWritten(t *testing.T) {
	c, err := Load("testdata/issue3.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.SPA == nil || c.SPA.Port != 62201 || c.SPAKeyPath() != "/etc/sesame/gateway.key" || c.SPA.Window.D() != spa.DefaultWindow {
		t.Fatalf("spa %+v", c.SPA)
	}
	if p, ok := c.SPAPort(); !ok || p != (service.Service{Proto: service.UDP, Port: 62201}) {
		t.Fatalf("SPAPort = %v, %v", p, ok)
	}
	if w := c.Watched(); len(w) != 1 || w[0].String() != "62201/udp" {
		t.Fatalf("watched %v", w)
	}
	if p := c.Protected(); len(p) != 1+1001 || p[0].String() != "22/tcp" || p[len(p)-1].String() != "61000/udp" {
		t.Fatalf("protected: %d services", len(p))
	}
	ps, err := c.Policies()
	if err != nil {
		t.Fatal(err)
	}
	set, err := policy.NewSet(ps)
	if err != nil {
		t.Fatal(err)
	}
	cl, ok := set.ByName("laptop")
	if !ok || cl.MaxDuration != 5*time.Minute || len(cl.Allow) != 2 || cl.Allow[1] != (service.Range{Proto: service.UDP, First: 60000, Last: 61000}) || cl.OtherAddress || !cl.Expires.IsZero() {
		t.Fatalf("client %+v", cl)
	}
}

func TestSPAFullConfig(t *testing.T) {
	src := `
[spa]
port = 40000
key = "keys/gw.key"
window = "30s"
replay_capacity = 1000
replay_sync = true

[[door]]
name = "ssh"
sequence = ["7000", "8000/udp", "9000"]
open = ["22/tcp"]

[[client]]
name = "laptop"
public_key = "` + keyA + `"
allow = ["tcp/22", "443"]
sources = ["192.0.2.0/24", "2001:db8::/32"]
expires = 2027-01-31
other_address = true

[[client]]
name = "phone"
public_key = "` + keyB + `"
allow = ["22/tcp"]
expires = "2027-02-01T18:00:00+01:00"
`
	c, err := Parse("/etc/sesame/sesame.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if c.SPAKeyPath() != "/etc/sesame/keys/gw.key" || c.SPA.Window.D() != 30*time.Second || c.SPA.ReplayCapacity != 1000 || !c.SPA.ReplaySync {
		t.Fatalf("spa %+v key %s", c.SPA, c.SPAKeyPath())
	}
	if got := c.Protected(); len(got) != 2 || got[1].Port != 443 {
		t.Fatalf("protected %v (door and clients both open 22/tcp)", got)
	}
	if got := c.Watched(); len(got) != 4 || got[3].String() != "40000/udp" {
		t.Fatalf("watched %v", got)
	}
	ps, err := c.Policies()
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC); !ps[0].Expires.Equal(want) || !ps[0].OtherAddress || len(ps[0].Sources) != 2 || ps[0].MaxDuration != 0 {
		t.Fatalf("laptop %+v", ps[0])
	}
	if want := time.Date(2027, 2, 1, 17, 0, 0, 0, time.UTC); !ps[1].Expires.Equal(want) {
		t.Fatalf("phone expires %v", ps[1].Expires)
	}
}

func TestExpiryForms(t *testing.T) {
	for src, want := range map[string]time.Time{
		`2027-01-31`:             time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC),
		`2027-01-31T12:30:00`:    time.Date(2027, 1, 31, 12, 30, 0, 0, time.UTC),
		`2027-01-31T12:30:00Z`:   time.Date(2027, 1, 31, 12, 30, 0, 0, time.UTC),
		`"2027-01-31"`:           time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC),
		`"2027-01-31T12:30:00Z"`: time.Date(2027, 1, 31, 12, 30, 0, 0, time.UTC),
	} {
		cfg := "[spa]\nkey = \"k\"\n[[client]]\nname = \"a\"\npublic_key = \"" + keyA + "\"\nallow = [\"22\"]\nexpires = " + src + "\n"
		c, err := Parse("x.toml", []byte(cfg))
		if err != nil {
			t.Errorf("%s: %v", src, err)
			continue
		}
		if !c.Clients[0].Expires.T.Equal(want) {
			t.Errorf("%s: %v, want %v", src, c.Clients[0].Expires.T, want)
		}
	}
}

// Every bad [spa] or [[client]] names the file, the line and the key.
func TestSPAErrorsNameFileLineKey(t *testing.T) {
	spa := "[spa]\nkey = \"/k\"\n"            // lines 1-2
	client := func(name, key string) string { // 4 lines
		return "[[client]]\nname = \"" + name + "\"\npublic_key = \"" + key + "\"\nallow = [\"22/tcp\"]\n"
	}
	cases := []struct {
		name, src string
		line      int
		key       string
		msg       string
	}{
		{"client without spa", client("a", keyA), 1, "client[0]", "needs an [spa] table"},
		{"spa without key", "[spa]\nport = 1000\n[[client]]\nname = \"a\"\npublic_key = \"" + keyA + "\"\nallow = [\"22\"]\n", 1, "spa[0].key", "missing"},
		{"bad port", "[spa]\nkey = \"/k\"\nport = 70000\n" + client("a", keyA), 3, "spa[0].port", "70000"},
		{"bad window", "[spa]\nkey = \"/k\"\nwindow = \"2h\"\n" + client("a", keyA), 3, "spa[0].window", "2h0m0s"},
		{"bad window syntax", "[spa]\nkey = \"/k\"\nwindow = \"soon\"\n" + client("a", keyA), 3, "window", "invalid duration"},
		{"unknown spa key", "[spa]\nkey = \"/k\"\nprot = 1\n" + client("a", keyA), 3, "spa.prot", "unknown key"},
		{"unknown client key", spa + client("a", keyA) + client("b", keyB) + "alow = [\"1/tcp\"]\n", 11, "client.alow", "unknown key"},
		{"missing name", spa + "[[client]]\npublic_key = \"" + keyA + "\"\nallow = [\"22\"]\n", 3, "client[0].name", "missing"},
		{"dup name", spa + client("a", keyA) + client("a", keyB), 8, "client[1].name", "also the name of client 0"},
		{"missing key", spa + "[[client]]\nname = \"a\"\nallow = [\"22\"]\n", 3, "client[0].public_key", "missing"},
		{"bad key", spa + client("a", "sesame-id1:xyz"), 5, "client[0].public_key", "invalid public key"},
		{"gateway key as client", spa + client("a", gwK), 5, "client[0].public_key", "gateway key"},
		{"dup key", spa + client("a", keyA) + client("b", keyA), 9, "client[1].public_key", "same key as client 0"},
		{"missing allow", spa + "[[client]]\nname = \"a\"\npublic_key = \"" + keyA + "\"\n", 3, "client[0].allow", "missing"},
		{"bad allow", spa + "[[client]]\nname = \"a\"\npublic_key = \"" + keyA + "\"\nallow = [\"22/icmp\"]\n", 6, "allow", "icmp"},
		{"wide allow", spa + "[[client]]\nname = \"a\"\npublic_key = \"" + keyA + "\"\nallow = [\"1000-9000/tcp\"]\n", 6, "client[0].allow", "too wide"},
		{"long max_duration", spa + client("a", keyA) + "max_duration = \"2d\"\n", 7, "client[0].max_duration", "48h0m0s"},
		{"bad expires", spa + client("a", keyA) + "expires = \"next year\"\n", 7, "client[0].expires", "not a date"},
		{"time as expires", spa + client("a", keyA) + "expires = 12:00:00\n", 7, "client[0].expires", "time of day"},
		{"bad source", spa + client("a", keyA) + "sources = [\"10.0.0.1/8\"]\n", 7, "sources", "host bits"},
		{"spa port is a knock port", "[spa]\nkey = \"/k\"\nport = 8000\n[[door]]\nname = \"d\"\nsequence = [\"7000/tcp\", \"8000/udp\"]\nopen = [\"22\"]\n", 3, "spa[0].port", "knock port of door \"d\""},
		{"spa port opened", "[spa]\nkey = \"/k\"\nport = 9000\n[[client]]\nname = \"a\"\npublic_key = \"" + keyA + "\"\nallow = [\"9000/udp\"]\n", 3, "spa[0].port", "allowed to client"},
		{"client opens knock port", spa + "[[door]]\nname = \"d\"\nsequence = [\"7000/tcp\", \"8000/udp\"]\nopen = [\"22\"]\n" + "[[client]]\nname = \"a\"\npublic_key = \"" + keyA + "\"\nallow = [\"7000/tcp\"]\n", 10, "client[0].allow", "knock port of door"},
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
		if ce.Line != c.line || !strings.Contains(ce.Key, c.key) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: got %q (line %d key %q); want line %d key %q msg %q", c.name, err, ce.Line, ce.Key, c.line, c.key, c.msg)
		}
	}
}

// Doors or clients: a config with neither protects nothing.
func TestNothingToProtect(t *testing.T) {
	for _, src := range []string{"", "[gateway]\nlog_level = \"debug\"\n", "[spa]\nkey = \"/k\"\n"} {
		_, err := Parse("x.toml", []byte(src))
		if !errors.Is(err, errNothing) {
			t.Errorf("%q: err = %v, want %v", src, err, errNothing)
		}
	}
}

// Whatever Parse accepts converts to a valid policy set.
func FuzzParseSPA(f *testing.F) {
	b, _ := os.ReadFile("testdata/issue3.toml")
	f.Add(b)
	f.Add([]byte("[spa]\nkey = \"k\"\n[[client]]\nname = \"a\"\npublic_key = \"" + keyA + "\"\nallow = [\"1-4096/udp\"]\nexpires = 2027-01-01\n"))
	f.Add([]byte("[spa]\nkey = \"k\"\n[[client]]\nname = \"a\"\npublic_key = \"" + keyA + "\"\nallow = [\"22\"]\n[[client]]\nname = \"b\"\npublic_key = \"" + keyB + "\"\nallow = [\"22\"]\nsources = [\"::ffff:10.0.0.0/104\"]\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		c, err := Parse("f.toml", src)
		if err != nil {
			return
		}
		ps, err := c.Policies()
		if err != nil {
			t.Fatalf("accepted config without valid policies: %v", err)
		}
		if _, err := policy.NewSet(ps); err != nil {
			t.Fatalf("accepted config with an invalid client: %v", err)
		}
		if len(c.Clients) > 0 {
			if _, ok := c.SPAPort(); !ok || c.SPAKeyPath() == "" {
				t.Fatal("clients without an SPA port or key")
			}
		}
	})
}

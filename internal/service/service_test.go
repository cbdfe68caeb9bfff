package service

import (
	"errors"
	"testing"
)

func TestParseRange(t *testing.T) {
	good := []struct {
		in   string
		def  Proto
		want Range
	}{
		{"22/tcp", 0, Range{TCP, 22, 22}},
		{"tcp/22", 0, Range{TCP, 22, 22}},
		{"8000:udp", TCP, Range{UDP, 8000, 8000}},
		{"7000", TCP, Range{TCP, 7000, 7000}},
		{"60000-61000/udp", 0, Range{UDP, 60000, 61000}},
		{"UDP/1-65535", 0, Range{UDP, 1, 65535}},
	}
	for _, c := range good {
		got, err := ParseRange(c.in, c.def)
		if err != nil || got != c.want {
			t.Errorf("ParseRange(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	bad := []string{"", "22", "0/tcp", "65536/tcp", "22/icmp", "x/tcp", "10-5/tcp", "-/tcp", "22/"}
	for _, in := range bad {
		if _, err := ParseRange(in, 0); !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseRange(%q) error = %v; want ErrSyntax", in, err)
		}
	}
}

func TestParseServiceRejectsRange(t *testing.T) {
	if _, err := Parse("1-2/tcp", 0); err == nil {
		t.Fatal("Parse accepted a range")
	}
	s, err := Parse("22/tcp", 0)
	if err != nil || s.String() != "22/tcp" || !s.Valid() {
		t.Fatalf("Parse = %v, %v", s, err)
	}
}

func TestRange(t *testing.T) {
	r := Range{UDP, 10, 12}
	if r.Len() != 3 || len(r.Services()) != 3 || !r.Contains(Service{UDP, 11}) || r.Contains(Service{TCP, 11}) {
		t.Fatalf("range helpers wrong for %v", r)
	}
	if r.String() != "10-12/udp" {
		t.Fatal(r.String())
	}
}

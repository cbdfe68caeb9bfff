package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/service"
	"github.com/sesame-gw/sesame/internal/totp"
)

const rotatingTOML = `[[door]]
name = "ssh"
secret_file = "ssh.secret"
period = "10s"
port_range = "20000-20999/udp"
steps = 4
open = ["22/tcp"]
seq_timeout = "5s"

[[door]]
name = "defaults"
secret_file = "ssh.secret"
open = ["23/tcp"]
`

func writeRotating(t *testing.T, toml string, mode os.FileMode) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ssh.secret"), []byte("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n"), mode); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "sesame.toml")
	if err := os.WriteFile(path, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRotatingDoor(t *testing.T) {
	c, err := Load(writeRotating(t, rotatingTOML, 0o600))
	if err != nil {
		t.Fatal(err)
	}
	kd := c.KnockDoor(0)
	if kd.Rotator == nil || len(kd.Sequence) != 0 || kd.Timeout != 5*time.Second {
		t.Fatalf("knock door %+v", kd)
	}
	if err := kd.Validate(); err != nil {
		t.Fatal(err)
	}
	want := totp.Door{Name: "ssh", Key: []byte("12345678901234567890"), Period: 10 * time.Second,
		Ports: service.Range{Proto: service.UDP, First: 20000, Last: 20999}, Steps: 4}
	now := time.Unix(1_900_000_000, 0)
	got, exp := kd.Rotator.Sequence(kd.Rotator.Counter(now)), want.At(now)
	if len(got) != 4 || got[0] != exp[0] || got[3] != exp[3] {
		t.Fatalf("sequence %v, want %v", got, exp)
	}
	d := c.Doors[1].TOTPDoor()
	if d.Period != totp.DefaultPeriod || d.Ports != totp.DefaultPorts || d.Steps != totp.DefaultSteps {
		t.Fatalf("defaults %+v", d)
	}
	w := c.Watched()
	if len(w) != 1000+10000 {
		t.Fatalf("watched %d services", len(w))
	}
	// Parse alone reads no secret: the door exists but derives nothing.
	src, _ := os.ReadFile(writeRotating(t, rotatingTOML, 0o600))
	p, err := Parse("x.toml", src)
	if err != nil {
		t.Fatal(err)
	}
	if r := p.KnockDoor(0).Rotator; r.Sequence(1) != nil {
		t.Fatal("sequence without a secret")
	}
}

func TestRotatingDoorErrors(t *testing.T) {
	base := "[[door]]\nname = \"r\"\nsecret_file = \"ssh.secret\"\nopen = [\"22\"]\n"
	cases := []struct{ name, extra, key, msg string }{
		{"with a sequence", "sequence = [\"1000\", \"2000\"]\n", "door[0].sequence", "derives its sequence"},
		{"too many steps", "steps = 33\n", "door[0].steps", "steps"},
		{"small range", "port_range = \"1000-1010/tcp\"\n", "door[0].port_range", "need at least"},
		{"wide range", "port_range = \"1000-30000/tcp\"\n", "door[0].port_range", "too wide"},
		{"protected in range", "port_range = \"1-1000/tcp\"\n", "door[0].port_range", "must stay closed"},
		{"fractional period", "period = \"1500ms\"\n", "door[0].period", "whole number"},
	}
	for _, c := range cases {
		_, err := Parse("/s.toml", []byte(base+c.extra))
		var ce *Error
		if err == nil || !errors.As(err, &ce) || !strings.Contains(err.Error(), c.key) || !strings.Contains(err.Error(), c.msg) || ce.Line == 0 {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	_, err := Parse("/s.toml", []byte("[[door]]\nname = \"r\"\nsequence = [\"1000\", \"2000\"]\nsteps = 3\nopen = [\"22\"]\n"))
	if err == nil || !strings.Contains(err.Error(), "need secret_file") {
		t.Errorf("steps without secret_file: %v", err)
	}
	// The secret file: readable by others, missing, not base32.
	if _, err := Load(writeRotating(t, rotatingTOML, 0o644)); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable secret: %v", err)
	}
	path := writeRotating(t, rotatingTOML, 0o600)
	os.Remove(filepath.Join(filepath.Dir(path), "ssh.secret"))
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "door[0].secret_file") {
		t.Errorf("missing secret: %v", err)
	}
	os.WriteFile(filepath.Join(filepath.Dir(path), "ssh.secret"), []byte("not base32!\n"), 0o600)
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "base32") {
		t.Errorf("bad secret: %v", err)
	}
}

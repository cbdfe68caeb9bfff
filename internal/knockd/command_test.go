package knockd

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/knockdconf"
)

func TestExpand(t *testing.T) {
	for _, c := range []struct {
		cmd  string
		src  netip.Addr
		want string
	}{
		{"iptables -A INPUT -s %IP% -j ACCEPT", alice, "iptables -A INPUT -s 198.51.100.7 -j ACCEPT"},
		{"%IP%%IP% %ip%", alice, "198.51.100.7198.51.100.7 %ip%"},
		{"nft add element inet f a { %IP% }", netip.MustParseAddr("::ffff:10.0.0.1"), "nft add element inet f a { 10.0.0.1 }"},
		{"echo %IP%", netip.MustParseAddr("2001:db8:0:0:1:0:0:1"), "echo 2001:db8::1:0:0:1"},
	} {
		got, ok := Expand(c.cmd, c.src)
		if !ok || got != c.want {
			t.Errorf("Expand(%q) = %q %v", c.cmd, got, ok)
		}
	}
	if _, ok := Expand(strings.Repeat("%IP%", 400), alice); ok {
		t.Error("overlong expansion accepted")
	}
	if got, ok := Expand(strings.Repeat("a", knockdconf.MaxCommand), alice); !ok || len(got) != knockdconf.MaxCommand {
		t.Error("longest command refused")
	}
}

func TestShellRunner(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	r := ShellRunner{}
	ctx := context.Background()
	// A shell pipeline, as knockd.conf files carry them, in a new session.
	status, err := r.Run(ctx, "echo a | tr a b > "+out+"; ps -o sid= -p $$ > "+out+".sid; exit 3")
	if err != nil || status != 3 {
		t.Fatalf("status %d err %v", status, err)
	}
	if b, _ := os.ReadFile(out); string(b) != "b\n" {
		t.Fatalf("pipeline wrote %q", b)
	}
	if b, err := os.ReadFile(out + ".sid"); err == nil && strings.TrimSpace(string(b)) == "" {
		t.Fatal("no session id")
	}
	// Cancelling kills the whole group.
	ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	status, err = r.Run(ctx, "sleep 30 & sleep 30")
	if err != nil || status == 0 || time.Since(start) > 10*time.Second {
		t.Fatalf("cancel: status %d err %v after %v", status, err, time.Since(start))
	}
	if _, err := (ShellRunner{Shell: filepath.Join(dir, "nosh")}).Run(context.Background(), "true"); err == nil {
		t.Fatal("missing shell")
	}
}

func TestEventLogFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "knockd.log")
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.Local)
	l, err := OpenEventLog(knockdconf.Options{LogFile: path}, func() time.Time { return at }, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.Printf("%s: %s: Stage %d", "10.0.0.1", "ssh", 1)
	l.Printf("%s: running command: %s\n", "ssh", "true")
	l.Printf("%s", strings.Repeat("y", 2000))
	l.Close()
	b, _ := os.ReadFile(path)
	lines := strings.Split(string(b), "\n")
	if lines[0] != "[2026-03-04 05:06] 10.0.0.1: ssh: Stage 1" || lines[1] != "[2026-03-04 05:06] ssh: running command: true" || lines[2] != "" {
		t.Fatalf("log %q", b)
	}
	if len(lines[3]) != len("[2026-03-04 05:06] ")+1023 {
		t.Fatalf("long message not cut at 1023 bytes: %d", len(lines[3]))
	}
	var nilLog *EventLog
	nilLog.Printf("nothing")
	if _, err := OpenEventLog(knockdconf.Options{LogFile: filepath.Join(t.TempDir(), "no", "dir", "x")}, nil, nil); err == nil {
		t.Fatal("unopenable log file")
	}
	// Syslog unreachable or not: the log opens either way.
	var warned error
	sl, err := OpenEventLog(knockdconf.Options{UseSyslog: true}, nil, func(err error) { warned = err })
	if err != nil {
		t.Fatal(err)
	}
	sl.Printf("knockd test line")
	sl.Close()
	t.Logf("syslog: %v", warned)
}

func TestLocalAddrs(t *testing.T) {
	now := time.Unix(1000, 0)
	calls := 0
	addrs := []netip.Addr{gw4}
	l := &localAddrs{now: func() time.Time { return now }, list: func() ([]netip.Addr, error) { calls++; return addrs, nil }}
	if !l.has(gw4) || l.has(gw6) || calls != 1 {
		t.Fatalf("calls %d", calls)
	}
	addrs = []netip.Addr{gw4, gw6}
	if l.has(gw6) || calls != 1 { // a miss refreshes at most once a second
		t.Fatalf("refreshed too often: %d", calls)
	}
	now = now.Add(2 * time.Second)
	if !l.has(netip.MustParseAddr("::ffff:192.0.2.1")) || !l.has(gw6) || calls != 2 {
		t.Fatalf("new address not found: calls %d", calls)
	}
	addrs = nil
	now = now.Add(time.Minute)
	if l.has(gw4) {
		t.Fatal("a removed address stayed local past 30 s")
	}
}

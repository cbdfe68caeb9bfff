package knockd

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sesame-gw/sesame/internal/gateway"
	"github.com/sesame-gw/sesame/internal/knockdconf"
)

var carol = netip.MustParseAddr("198.51.100.9")

// decisions collects what OnDecision is told.
type decisions struct {
	mu   sync.Mutex
	list []gateway.Decision
}

func (d *decisions) add(x gateway.Decision) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.list = append(d.list, x)
}

func (d *decisions) kinds() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, x := range d.list {
		out = append(out, x.Kind+" "+x.Door+" "+x.Src.String())
	}
	return out
}

func (d *decisions) last() gateway.Decision {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.list[len(d.list)-1]
}

func startRecorded(t *testing.T, conf string, mod func(*Config)) (*rig, *decisions) {
	got := &decisions{}
	r := start(t, conf, func(c *Config) {
		c.OnDecision = got.add
		if mod != nil {
			mod(c)
		}
	})
	return r, got
}

func status(t *testing.T, r *rig) gateway.Status {
	t.Helper()
	st, err := r.srv.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestStatusDecisionsAndCounters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, got := startRecorded(t, testConf, nil)
		began := time.Now()
		st := status(t, r)
		if !st.Started.Equal(began) || len(st.Doors) != 3 || len(st.Grants) != 0 {
			t.Fatalf("status at start: %+v", st)
		}
		if d := st.Doors[0]; d.Name != "ssh" || !slices.Equal(d.Sequence, []string{"7000/tcp", "8000/udp", "9000/tcp"}) ||
			!slices.Equal(d.Open, []string{"Start_Command"}) || d.Duration != "10s" {
			t.Fatalf("ssh door %+v", d)
		}
		if d := st.Doors[1]; !slices.Equal(d.Open, []string{"Start_Command_6"}) || d.Duration != "" {
			t.Fatalf("v6only door %+v", d)
		}

		r.runner.delay = 2 * time.Second        // the start command takes 2 s
		r.knock(bob, gw4, tcp(7000), tcp(9000)) // wrong order: a reset
		r.knock(alice, gw4, tcp(7000), udp(8000), tcp(9000))
		r.knock(bob, gw4, tcp(7000)) // part-way
		if k := got.kinds(); !slices.Equal(k, []string{"reset ssh 198.51.100.8"}) {
			t.Fatalf("decisions before the start command is done: %q", k)
		}
		st = status(t, r)
		if len(st.Grants) != 1 || st.Grants[0].Src != alice || st.Grants[0].Service != "[ssh] Stop_Command" || st.Grants[0].Remaining != "10s" {
			t.Fatalf("pending stop while the start runs: %+v", st.Grants)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		g := got.last()
		if g.Kind != "grant" || g.Src != alice || g.Door != "ssh" || g.Latency != 2*time.Second || g.Reason != "" {
			t.Fatalf("grant %+v", g)
		}
		time.Sleep(3 * time.Second)
		st = status(t, r)
		if len(st.Grants) != 1 || st.Grants[0].Remaining != "7s" || st.Tracking != 1 {
			t.Fatalf("after 3 s: grants %+v tracking %d", st.Grants, st.Tracking)
		}
		if len(st.Recent) != 2 || st.Recent[0].Kind != "reset" || st.Recent[0].Reason != "wrong port" || st.Recent[1].Kind != "grant" {
			t.Fatalf("recent %+v", st.Recent)
		}
		c := st.Counters
		if c["packets"] != 6 || c["knocks"] != 4 || c["resets"] != 1 || c["grants"] != 1 || c["pending_stops"] != 1 || c["capture_received"] != 6 {
			t.Fatalf("counters %v", c)
		}
		if r.srv.Stats().Grants.Load() != 1 {
			t.Fatal("Stats disagrees with Status")
		}
		r.stop()
		if _, err := r.srv.Status(context.Background()); !errors.Is(err, ErrNotRunning) {
			t.Fatalf("Status after Run: %v", err)
		}
	})
}

func TestCommandFailuresAreDecisions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		long := strings.Repeat("x", knockdconf.MaxCommand-6) + " %IP%"
		conf := testConf + "[long]\nsequence = 3000\nstart_command = " + long + "\n"
		r, got := startRecorded(t, conf, nil)
		r.runner.status["open 198.51.100.7"] = 3
		r.runner.status["close 198.51.100.7"] = 1
		r.knock(alice, gw4, tcp(7000), udp(8000), tcp(9000))
		r.knock(bob, gw4, tcp(3000))
		r.knock(bob, vip, udp(5000)) // succeeds
		time.Sleep(11 * time.Second)
		synctest.Wait()
		want := []string{"grant-failed ssh 198.51.100.7", "grant-failed long 198.51.100.8", "grant vip 198.51.100.8", "stop-failed ssh 198.51.100.7"}
		if k := got.kinds(); !slices.Equal(k, want) {
			t.Fatalf("decisions %q, want %q", k, want)
		}
		st := status(t, r)
		if st.Recent[0].Reason != "start command exited with status 3" || st.Recent[1].Reason != "start command too long after %IP% expansion" ||
			st.Recent[3].Reason != "stop command exited with status 1" {
			t.Fatalf("reasons %+v", st.Recent)
		}
		if st.Counters["grant_errors"] != 2 || st.Counters["stop_errors"] != 1 || st.Counters["grants"] != 3 {
			t.Fatalf("counters %v", st.Counters)
		}
		r.stop()
	})
}

func TestRevokeRunsPendingStopsNow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, got := startRecorded(t, testConf, nil)
		r.knock(alice, gw4, tcp(7000), udp(8000), tcp(9000))
		r.knock(alice6, gw6, tcp(7000), udp(8000), tcp(9000))
		gone, err := r.srv.Revoke(context.Background(), alice)
		if err != nil || len(gone) != 1 || gone[0].Door != "ssh" || gone[0].Src != alice || gone[0].Command != "close 198.51.100.7" {
			t.Fatalf("revoke: %+v %v", gone, err)
		}
		synctest.Wait()
		if c := r.runner.commands(); !slices.Equal(c, []string{"open 198.51.100.7", "open 2001:db8:1::7", "close 198.51.100.7"}) {
			t.Fatalf("commands %q", c)
		}
		if d := got.last(); d.Kind != "revoke" || d.Src != alice || d.Door != "ssh" || d.Reason != "revoked by admin" {
			t.Fatalf("decision %+v", d)
		}
		if st := status(t, r); len(st.Grants) != 1 || st.Grants[0].Src != alice6 {
			t.Fatalf("grants after revoke %+v", st.Grants)
		}
		if gone, err := r.srv.Revoke(context.Background(), bob); err != nil || len(gone) != 0 {
			t.Fatalf("revoke of nothing: %+v %v", gone, err)
		}

		// While the start command runs: the stop follows it at once.
		r.runner.delay = time.Second
		r.knock(bob, gw4, tcp(7000), udp(8000), tcp(9000))
		if gone, _ := r.srv.Revoke(context.Background(), bob); len(gone) != 1 {
			t.Fatalf("revoke during the start: %+v", gone)
		}
		time.Sleep(2100 * time.Millisecond)
		synctest.Wait()
		if c := r.runner.commands(); !slices.Equal(c[3:], []string{"open 198.51.100.8", "close 198.51.100.8"}) {
			t.Fatalf("commands %q", c)
		}
		r.cfgKeep()
		r.stop()
		if len(r.srv.pending.stops) != 1 {
			t.Fatalf("pending after the revokes: %d, want alice6's", len(r.srv.pending.stops))
		}
	})
}

func TestReloadRefusedOrApplied(t *testing.T) {
	dir := t.TempDir()
	used := filepath.Join(dir, "used")
	os.WriteFile(used, []byte("#7100,8100\n"), 0o600)
	synctest.Test(t, func(t *testing.T) {
		r, _ := startRecorded(t, testConf, func(c *Config) { c.ConfFile = "/etc/knockd.conf" })
		r.knock(alice, gw4, tcp(7000), udp(8000), tcp(9000)) // a pending stop
		r.knock(bob, gw4, tcp(7000), udp(8000))              // part-way through ssh
		r.knock(carol, gw4, tcp(6000))                       // part-way through v6only
		nFilters := len(r.filter)

		bad := testConf + "[otp]\none_time_sequences = " + used + "\nstart_command = x\n"
		err := r.srv.Reload(context.Background(), parse(t, bad))
		var ke *knockdconf.Error
		line := strings.Count(testConf, "\n") + 1
		if !errors.As(err, &ke) || ke.Line != line || !strings.HasPrefix(err.Error(), fmt.Sprintf("/etc/knockd.conf:%d: door [otp]: no more sequences left", line)) {
			t.Fatalf("bad reload: %v", err)
		}
		if st := status(t, r); len(st.Doors) != 3 || len(st.Grants) != 1 || st.Tracking != 2 || len(r.filter) != nFilters {
			t.Fatalf("a refused reload changed the server: %+v", st)
		}

		// Valid: ssh unchanged (bob's progress survives), v6only changed.
		good := strings.Replace(testConf, "Sequence = 6000,6500", "Sequence = 6000,6600", 1)
		if err := r.srv.Reload(context.Background(), parse(t, good)); err != nil {
			t.Fatal(err)
		}
		if len(r.filter) != nFilters+1 {
			t.Fatal("capture filter not updated")
		}
		r.knock(bob, gw4, tcp(9000))
		r.knock(carol, gw4, tcp(6500)) // the old sequence: carol's attempt was dropped
		if c := r.runner.commands(); !slices.Equal(c, []string{"open 198.51.100.7", "open 198.51.100.8"}) {
			t.Fatalf("commands %q", c)
		}
		if st := status(t, r); len(st.Grants) != 2 {
			t.Fatalf("pending stops after reload: %+v", st.Grants)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if c := r.runner.commands(); !slices.Contains(c, "close 198.51.100.7") {
			t.Fatalf("the stop pending across the reload did not run: %q", c)
		}
		r.stop()
	})
}

func TestReloadWithoutDoorsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := start(t, testConf, nil)
		if err := r.srv.Reload(context.Background(), &knockdconf.Config{}); err == nil || !strings.Contains(err.Error(), "no door") {
			t.Fatalf("reload without doors: %v", err)
		}
		r.stop()
		if err := r.srv.Reload(context.Background(), parse(t, testConf)); !errors.Is(err, ErrNotRunning) {
			t.Fatalf("reload after Run: %v", err)
		}
	})
}

func TestRecentRing(t *testing.T) {
	var r recentRing
	if len(r.list()) != 0 {
		t.Fatal("zero ring not empty")
	}
	for i := range keptDecisions + 5 {
		r.add(gateway.Decision{Reason: string(rune('a' + i%26)), Latency: time.Duration(i)})
	}
	l := r.list()
	if len(l) != keptDecisions || l[0].Latency != 5 || l[len(l)-1].Latency != keptDecisions+4 {
		t.Fatalf("ring: %d, first %v, last %v", len(l), l[0].Latency, l[len(l)-1].Latency)
	}
}

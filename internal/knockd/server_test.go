package knockd

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sesame-gw/sesame/internal/capture/afpacket"
	"github.com/sesame-gw/sesame/internal/capture/capturetest"
	"github.com/sesame-gw/sesame/internal/knockdconf"
	"github.com/sesame-gw/sesame/internal/packet"
	"github.com/sesame-gw/sesame/internal/service"
)

var (
	gw4    = netip.MustParseAddr("192.0.2.1")
	gw6    = netip.MustParseAddr("2001:db8::1")
	alice  = netip.MustParseAddr("198.51.100.7")
	alice6 = netip.MustParseAddr("2001:db8:1::7")
	bob    = netip.MustParseAddr("198.51.100.8")
	vip    = netip.MustParseAddr("192.0.2.99")
)

// fakeRunner records the commands and returns the status set for them.
type fakeRunner struct {
	mu     sync.Mutex
	ran    []string
	status map[string]int
	delay  time.Duration // each command takes this long (bubble time)
}

func (f *fakeRunner) Run(ctx context.Context, cmd string) (int, error) {
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
			return 137, nil
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ran = append(f.ran, cmd)
	return f.status[cmd], nil
}

func (f *fakeRunner) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ran)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}
func (b *syncBuffer) Close() error   { return nil }
func (b *syncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

const testConf = `[options]
	LogFile = /dev/null
[ssh]
	Sequence = 7000,8000:udp,9000
	Seq_Timeout = 5
	TCPFlags = syn
	Start_Command = open %IP%
	Stop_Command = close %IP%
	Cmd_Timeout = 10
[v6only]
	Sequence = 6000,6500
	Start_Command =
	Start_Command_6 = open6 %IP%
[vip]
	Sequence = 5000:udp
	Target = 192.0.2.99
	Command = vip %IP% %IP%
`

type rig struct {
	t      *testing.T
	src    *capturetest.Source
	srv    *Server
	runner *fakeRunner
	events *syncBuffer
	cancel context.CancelFunc
	done   chan error
	filter []afpacket.Filter
}

func parse(t *testing.T, conf string) *knockdconf.Config {
	t.Helper()
	c, err := knockdconf.Parse("knockd.conf", []byte(conf))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// start runs a server over a fake capture inside the synctest bubble.
func start(t *testing.T, conf string, mod func(*Config)) *rig {
	t.Helper()
	r := &rig{t: t, src: capturetest.New(0), runner: &fakeRunner{status: map[string]int{}}, events: &syncBuffer{}}
	cfg := Config{
		Conf:    parse(t, conf),
		Runner:  r.runner,
		Events:  NewEventLog(r.events, nil),
		IsLocal: func(a netip.Addr) bool { return a == gw4 || a == gw6 },
		SetFilter: func(f afpacket.Filter) error {
			r.filter = append(r.filter, f)
			return nil
		},
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan error, 1)
	go func() { r.done <- srv.Run(ctx, r.src) }()
	synctest.Wait()
	return r
}

func (r *rig) stop() {
	r.t.Helper()
	r.cancel()
	if err := <-r.done; err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) knock(src, dst netip.Addr, steps ...service.Service) {
	for _, s := range steps {
		r.src.Inject(capturePacket(src, dst, s, packet.SYN))
		synctest.Wait()
	}
}

func tcp(p uint16) service.Service { return service.Service{Proto: service.TCP, Port: p} }
func udp(p uint16) service.Service { return service.Service{Proto: service.UDP, Port: p} }

func TestOpenRunsStartThenStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := start(t, testConf, nil)
		r.knock(alice, gw4, tcp(7000), udp(8000), tcp(9000))
		if got := r.runner.commands(); !slices.Equal(got, []string{"open 198.51.100.7"}) {
			t.Fatalf("commands %q", got)
		}
		time.Sleep(9 * time.Second)
		synctest.Wait()
		if len(r.runner.commands()) != 1 {
			t.Fatal("stop command ran early")
		}
		time.Sleep(1100 * time.Millisecond)
		synctest.Wait()
		if got := r.runner.commands(); !slices.Equal(got, []string{"open 198.51.100.7", "close 198.51.100.7"}) {
			t.Fatalf("commands %q", got)
		}
		r.stop()
		log := r.events.String()
		for _, want := range []string{
			"] starting up, listening on all interfaces\n",
			"] 198.51.100.7: ssh: Stage 1\n", "] 198.51.100.7: ssh: Stage 3\n", "] 198.51.100.7: ssh: OPEN SESAME\n",
			"] ssh: running command: open 198.51.100.7\n\n",
			"] 198.51.100.7: ssh: command timeout\n",
			"] ssh: running command: close 198.51.100.7\n\n",
			"] shutting down\n",
		} {
			if !strings.Contains(log, want) {
				t.Errorf("log lacks %q:\n%s", want, log)
			}
		}
		if !strings.HasPrefix(log, "[2000-01-01 ") {
			t.Errorf("line format: %q", log[:20])
		}
	})
}

func TestStopTimedFromStartCompletion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := start(t, testConf, nil)
		r.runner.delay = 3 * time.Second // a slow start command
		begin := time.Now()
		r.knock(alice, gw4, tcp(7000), udp(8000), tcp(9000))
		for len(r.runner.commands()) < 2 {
			time.Sleep(100 * time.Millisecond)
		}
		// start 3 s, Cmd_Timeout 10 s, stop 3 s.
		if took := time.Since(begin); took < 16*time.Second || took > 16200*time.Millisecond {
			t.Fatalf("stop finished after %v, want 16 s", took)
		}
		r.stop()
	})
}

func TestIPv6Commands(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := start(t, testConf, nil)
		r.knock(alice6, gw6, tcp(7000), udp(8000), tcp(9000)) // no _6 command: falls back
		r.knock(alice6, gw6, tcp(6000), tcp(6500))            // Start_Command_6 set
		r.knock(alice, gw4, tcp(6000), tcp(6500))             // empty Start_Command: nothing
		want := []string{"open 2001:db8:1::7", "open6 2001:db8:1::7"}
		if got := r.runner.commands(); !slices.Equal(got, want) {
			t.Fatalf("commands %q, want %q", got, want)
		}
		r.stop()
		if got := r.runner.commands(); !slices.Equal(got, append(want, "close 2001:db8:1::7")) {
			t.Fatalf("after shutdown %q", got)
		}
	})
}

func TestTargetAndLocalAddresses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := start(t, testConf, nil)
		r.knock(alice, gw4, udp(5000))                                                      // the vip door watches only its Target
		r.knock(alice, netip.MustParseAddr("203.0.113.5"), tcp(7000), udp(8000), tcp(9000)) // not this host
		r.knock(bob, vip, udp(5000))
		if got := r.runner.commands(); !slices.Equal(got, []string{"vip 198.51.100.8 198.51.100.8"}) {
			t.Fatalf("commands %q", got)
		}
		r.stop()
	})
}

func TestNonZeroStatusAndTruncation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		long := strings.Repeat("x", knockdconf.MaxCommand-6) + " %IP%" // fits unexpanded, not expanded
		conf := "[a]\nsequence = 1000\nstart_command = false\n[b]\nsequence = 2000\nstart_command = " + long + "\n"
		r := start(t, conf, nil)
		r.runner.status["false"] = 1
		r.knock(alice, gw4, tcp(1000), tcp(2000))
		r.stop()
		if got := r.runner.commands(); !slices.Equal(got, []string{"false"}) {
			t.Fatalf("commands %q", got)
		}
		log := r.events.String()
		if !strings.Contains(log, "] a: command returned non-zero status code (1)\n") || !strings.Contains(log, "] error: parsed start command has been truncated! --> won't execute it\n") {
			t.Fatalf("log:\n%s", log)
		}
	})
}

func TestParityVersusScanProof(t *testing.T) {
	for _, parity := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			r := start(t, testConf, func(c *Config) { c.Parity = parity })
			r.knock(alice, gw4, tcp(7000), tcp(1234), udp(8000), tcp(9000)) // noise
			r.knock(bob, gw4, tcp(7000), tcp(7000), udp(8000), tcp(9000))   // repeat
			got := r.runner.commands()
			want := []string{"open 198.51.100.8"}
			if parity {
				want = []string{"open 198.51.100.7"}
			}
			if !slices.Equal(got, want) {
				t.Errorf("parity=%v: commands %q, want %q", parity, got, want)
			}
			r.cfgKeep()
			r.stop()
		})
	}
}

// cfgKeep makes the rig's shutdown leave pending stops alone.
func (r *rig) cfgKeep() { r.srv.cfg.KeepPending = true }

func TestPendingStopSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "pending.json")
	synctest.Test(t, func(t *testing.T) {
		r := start(t, testConf, func(c *Config) { c.StateFile, c.KeepPending = state, true })
		r.knock(alice, gw4, tcp(7000), udp(8000), tcp(9000))
		r.stop() // a restart 0 s after the start command
		b, err := os.ReadFile(state)
		if err != nil {
			t.Fatal(err)
		}
		var f pendingFile
		if err := json.Unmarshal(b, &f); err != nil || len(f.Stops) != 1 || f.Stops[0].Command != "close 198.51.100.7" || !f.Stops[0].Ready {
			t.Fatalf("state %s (%v)", b, err)
		}
		time.Sleep(4 * time.Second)
		r2 := start(t, testConf, func(c *Config) { c.StateFile = state })
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if len(r2.runner.commands()) != 0 {
			t.Fatal("stop ran early after restart")
		}
		time.Sleep(1100 * time.Millisecond)
		synctest.Wait()
		if got := r2.runner.commands(); !slices.Equal(got, []string{"close 198.51.100.7"}) {
			t.Fatalf("after restart: %q", got)
		}
		r2.stop()
		b, _ = os.ReadFile(state)
		if json.Unmarshal(b, &f); len(f.Stops) != 0 {
			t.Fatalf("stop still pending: %s", b)
		}
	})
}

func TestShutdownRunsPendingStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := start(t, testConf, nil)
		r.runner.delay = time.Second
		r.knock(alice, gw4, tcp(7000), udp(8000), tcp(9000))
		r.knock(bob, gw4, tcp(7000), udp(8000), tcp(9000))
		time.Sleep(500 * time.Millisecond) // the start commands are still running
		r.stop()
		got := r.runner.commands()
		slices.Sort(got)
		if !slices.Equal(got, []string{"close 198.51.100.7", "close 198.51.100.8", "open 198.51.100.7", "open 198.51.100.8"}) {
			t.Fatalf("commands %q", got)
		}
	})
}

func TestCorruptStateFile(t *testing.T) {
	state := filepath.Join(t.TempDir(), "p.json")
	os.WriteFile(state, []byte("{not json"), 0o600)
	if _, err := New(Config{Conf: parse(t, testConf), StateFile: state}); err == nil {
		t.Fatal("corrupt state accepted")
	}
}

func TestOneTimeSequences(t *testing.T) {
	dir := t.TempDir()
	ots := filepath.Join(dir, "otp")
	os.WriteFile(ots, []byte("# sequences\n 7100,8100,9100\n 7200:udp,8200\n 7300,8300\n"), 0o600)
	conf := "[otp]\none_time_sequences = " + ots + "\nstart_command = otp %IP%\n"
	synctest.Test(t, func(t *testing.T) {
		r := start(t, conf, func(c *Config) { c.Parity = true })
		r.knock(alice, gw4, tcp(7100), tcp(8100), tcp(9100))
		r.knock(alice, gw4, tcp(7100), tcp(8100), tcp(9100)) // used
		r.knock(alice6, gw6, udp(7200), tcp(8200))           // the next one, over IPv6 (knockd 0.8 misses it)
		r.knock(bob, gw4, tcp(7300), tcp(8300))
		r.knock(bob, gw4, tcp(7300), tcp(8300)) // none left
		want := []string{"otp 198.51.100.7", "otp 2001:db8:1::7", "otp 198.51.100.8"}
		if got := r.runner.commands(); !slices.Equal(got, want) {
			t.Fatalf("commands %q, want %q", got, want)
		}
		b, _ := os.ReadFile(ots)
		if string(b) != "# sequences\n#7100,8100,9100\n#7200:udp,8200\n#7300,8300\n" {
			t.Fatalf("file now %q", b)
		}
		if !strings.Contains(r.events.String(), "no more sequences left in the one time sequences file for door otp --> disabling the door\n") {
			t.Fatalf("log:\n%s", r.events.String())
		}
		// The capture filter followed the sequences (parity: door ports only).
		if len(r.filter) != 3 || len(r.filter[0].Rules) != 2 || len(r.filter[2].Rules) != 0 {
			t.Fatalf("filters %+v", r.filter)
		}
		r.stop()
	})
	// A file with no sequence left refuses to start, as knockd does.
	if _, err := New(Config{Conf: parse(t, conf)}); err == nil || !strings.Contains(err.Error(), "no more sequences") {
		t.Fatalf("used-up file: %v", err)
	}
}

func TestReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := start(t, testConf, nil)
		r.knock(alice, gw4, tcp(7000))
		if err := r.srv.Reload(context.Background(), parse(t, "[new]\nsequence = 4000\nstart_command = new %IP%\n")); err != nil {
			t.Fatal(err)
		}
		r.knock(alice, gw4, udp(8000), tcp(9000), tcp(4000))
		if got := r.runner.commands(); !slices.Equal(got, []string{"new 198.51.100.7"}) {
			t.Fatalf("commands %q", got)
		}
		r.stop()
		if !strings.Contains(r.events.String(), "re-reading config file") {
			t.Fatal("reload not logged")
		}
	})
}

func TestFilterFor(t *testing.T) {
	c := parse(t, testConf)
	_, doors, err := buildGroups("knockd.conf", c, optionsFor(false), nil)
	if err != nil {
		t.Fatal(err)
	}
	parity := filterFor(doors, true)
	if len(parity.Rules) != 4 { // ssh tcp, ssh udp, v6only tcp, vip udp
		t.Fatalf("parity %+v", parity.Rules)
	}
	def := filterFor(doors, false)
	// Plus every TCP packet (v6only has no flags) and every UDP packet.
	last := def.Rules[len(def.Rules)-2:]
	if len(def.Rules) != 6 || len(last[0].Ports) != 0 || len(last[0].Flags) != 0 || last[1].Proto != service.UDP || len(last[1].Ports) != 0 {
		t.Fatalf("default %+v", def.Rules)
	}
	// With every door asking for SYN, established traffic is filtered out.
	c = parse(t, "[a]\nsequence=1000,2000\ntcpflags=syn,!ack\n")
	_, doors, _ = buildGroups("knockd.conf", c, optionsFor(false), nil)
	def = filterFor(doors, false)
	if r := def.Rules[len(def.Rules)-1]; len(r.Flags) != 1 || r.Flags[0] != (afpacket.FlagCond{Set: packet.SYN, Clear: packet.ACK}) {
		t.Fatalf("default %+v", def.Rules)
	}
	if _, err := def.Program(); err != nil {
		t.Fatal(err)
	}
}

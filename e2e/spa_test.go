package e2e

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/netns"
)

const (
	spaPort     = 62201
	unaskedPort = 2223 // allowed to the client, never asked for: stays hidden
	outsidePort = 2224 // not in the client's policy
)

// keygen runs `sesame keygen` and returns the key file and the public key
// it printed.
func keygen(t testing.TB, dir, name string, gateway bool) (path, pub string) {
	t.Helper()
	path = filepath.Join(dir, name)
	args := []string{"keygen", "-o", path}
	if gateway {
		args = append(args, "--gateway")
	}
	out, err := exec.Command(sesameBin, args...).Output()
	if err != nil {
		t.Fatalf("keygen: %v", err)
	}
	pub = strings.TrimSpace(string(out))
	if strings.Count(string(out), "\n") != 1 || !strings.HasPrefix(pub, "sesame-") {
		t.Fatalf("keygen printed %q", out)
	}
	return path, pub
}

// spaBench holds the keys of a native SPA test: the gateway's, a client
// in the config (laptop), one never in it (mallory), one that is removed
// from it (old), and the config's client tables.
type spaBench struct {
	dir                               string
	gwKey, gwPub                      string
	laptop, laptopPub                 string
	mallory, old, oldPub              string
	clientsWithOld, clientsWithoutOld string
}

func newSPABench(t testing.TB) *spaBench {
	t.Helper()
	s := &spaBench{dir: t.TempDir()}
	s.gwKey, s.gwPub = keygen(t, s.dir, "gateway.key", true)
	s.laptop, s.laptopPub = keygen(t, s.dir, "laptop.key", false)
	s.mallory, _ = keygen(t, s.dir, "mallory.key", false)
	s.old, s.oldPub = keygen(t, s.dir, "old.key", false)
	_, phonePub := keygen(t, s.dir, "phone.key", false)
	// phone makes outsidePort a protected service the laptop may not open.
	laptop := fmt.Sprintf(`
[[client]]
name = "laptop"
public_key = %q
allow = ["%d/tcp", "%d/tcp"]
max_duration = "1m"

[[client]]
name = "phone"
public_key = %q
allow = ["%d/tcp"]
`, s.laptopPub, svcPort, unaskedPort, phonePub, outsidePort)
	s.clientsWithoutOld = laptop
	s.clientsWithOld = laptop + fmt.Sprintf(`
[[client]]
name = "old"
public_key = %q
allow = ["%d/tcp"]
`, s.oldPub, svcPort)
	return s
}

// config is a gateway config with [spa] and the given client tables (and
// anything else, e.g. a door).
func (s *spaBench) config(stateDir, rest string) string {
	return fmt.Sprintf(`[gateway]
state_dir = %q

[spa]
port = %d
key = %q
%s`, stateDir, spaPort, s.gwKey, rest)
}

// open runs `sesame open` in the client namespace with the laptop's keys
// unless key says otherwise.
func (s *spaBench) open(t *testing.T, b *netns.Bench, key string, args ...string) string {
	t.Helper()
	argv := append([]string{sesameBin, "open", "--key", key, "--gateway-key", s.gwPub}, args...)
	out, _ := run(t, b, b.Client, 20*time.Second, false, argv...)
	return out
}

// serveExtra listens on the unasked and outside-policy ports, so that
// "hidden" there means filtered, not closed.
func serveExtra(t *testing.T, b *netns.Bench) {
	t.Helper()
	for _, a := range []netip.Addr{b.GW4, b.GW6} {
		for _, p := range []uint16{unaskedPort, outsidePort} {
			if _, err := b.ServeTCP(b.GW, netip.AddrPortFrom(a, p), []byte("hi\n")); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// waitLog waits until the daemon's log contains every substring on one
// line.
func waitLog(t *testing.T, g *gateway, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, l := range strings.Split(g.log(), "\n") {
			if containsAll(l, parts) {
				return l
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no log line with %q:\n%s", parts, g.log())
	return ""
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// `sesame open` opens exactly the asked service for exactly the sending
// address, IPv4 and IPv6; with --wait it returns once the port answers.
func TestSPAOpensForThatSourceOnly(t *testing.T) {
	b := newBench(t)
	serveService(t, b)
	serveExtra(t, b)
	s := newSPABench(t)
	g := startGateway(t, b, s.config(t.TempDir(), s.clientsWithoutOld))
	for _, f := range families(b) {
		t.Run(f.name, func(t *testing.T) {
			dst := netip.AddrPortFrom(f.gw, svcPort)
			hidden(t, b, f.cl, dst)
			if f.gw.Is4() {
				out := s.open(t, b, s.laptop, f.gw.String(), fmt.Sprintf("%d/tcp", svcPort), "--duration", "30s", "--wait", "-v")
				if !strings.Contains(out, "open after") {
					t.Fatalf("open --wait -v said %q", out)
				}
			} else {
				// Without --wait: exits once sent; "tcp/PORT" order; -6.
				s.open(t, b, s.laptop, "-6", f.gw.String(), fmt.Sprintf("tcp/%d", svcPort))
				if err := b.WaitReachable(context.Background(), b.Client, dst, 3*time.Second); err != nil {
					t.Fatal(err)
				}
			}
			reachable(t, b, f.cl, dst)
			hidden(t, b, f.second, dst)                               // another source stays blocked
			hidden(t, b, f.cl, netip.AddrPortFrom(f.gw, unaskedPort)) // allowed but not asked
			hidden(t, b, f.cl, netip.AddrPortFrom(f.gw, outsidePort)) // not in the policy
			waitLog(t, g, "msg=grant", "proto=spa", "client=laptop", "src="+f.cl.String(), fmt.Sprintf("services=[%d/tcp]", svcPort))
		})
	}
	if strings.Contains(g.log(), "grant failed") {
		t.Fatalf("grant errors:\n%s", g.log())
	}
}

// An unknown client, a removed key, a service outside the policy and a
// too-long duration are refused, each with its reason in the log.
func TestSPARejectsWithReason(t *testing.T) {
	b := newBench(t)
	serveService(t, b)
	serveExtra(t, b)
	s := newSPABench(t)
	state := t.TempDir()
	g := startGateway(t, b, s.config(state, s.clientsWithOld))
	gw4 := b.GW4.String()
	dst := netip.AddrPortFrom(b.GW4, svcPort)

	s.open(t, b, s.mallory, gw4, fmt.Sprintf("%d/tcp", svcPort))
	waitLog(t, g, "msg=reject", "proto=spa", "reason=unknown-key", "src="+b.Client4.String())
	hidden(t, b, netip.Addr{}, dst)

	s.open(t, b, s.laptop, gw4, fmt.Sprintf("%d/tcp", outsidePort))
	waitLog(t, g, "msg=reject", "reason=service-not-allowed", "client=laptop", fmt.Sprintf("%d/tcp", outsidePort))
	hidden(t, b, netip.Addr{}, netip.AddrPortFrom(b.GW4, outsidePort))

	s.open(t, b, s.laptop, gw4, fmt.Sprintf("%d/tcp", svcPort), "--duration", "10m")
	waitLog(t, g, "msg=reject", "reason=duration-too-long", "client=laptop", "10m0s > 1m0s")
	hidden(t, b, netip.Addr{}, dst)

	// The same over IPv6.
	gw6 := b.GW6.String()
	dst6 := netip.AddrPortFrom(b.GW6, svcPort)
	s.open(t, b, s.mallory, gw6, fmt.Sprintf("%d/tcp", svcPort))
	waitLog(t, g, "msg=reject", "reason=unknown-key", "src="+b.Client6.String())
	s.open(t, b, s.laptop, gw6, fmt.Sprintf("%d/tcp", outsidePort))
	waitLog(t, g, "msg=reject", "reason=service-not-allowed", "src="+b.Client6.String())
	s.open(t, b, s.laptop, gw6, fmt.Sprintf("%d/tcp", svcPort), "--duration", "2m")
	waitLog(t, g, "msg=reject", "reason=duration-too-long", "src="+b.Client6.String())
	hidden(t, b, netip.Addr{}, dst6)
	hidden(t, b, netip.Addr{}, netip.AddrPortFrom(b.GW6, outsidePort))

	// "old" works while configured...
	s.open(t, b, s.old, gw4, fmt.Sprintf("%d/tcp", svcPort), "--duration", "2s", "--wait", "--wait-timeout", "5s")
	waitLog(t, g, "msg=grant", "client=old")
	// ...and is refused once removed from the config (restart).
	if err := b.Stop(g.proc); err != nil {
		t.Logf("stop: %v", err)
	}
	os.WriteFile(g.cfg, []byte(s.config(state, s.clientsWithoutOld)), 0o600)
	g.start()
	waitHidden(t, b, dst, 5*time.Second)
	s.open(t, b, s.old, gw4, fmt.Sprintf("%d/tcp", svcPort))
	waitLog(t, g, "msg=reject", "reason=unknown-key", s.oldPub)
	hidden(t, b, netip.Addr{}, dst)
	if strings.Contains(g.log(), "msg=grant") {
		t.Fatalf("a refused request was granted:\n%s", g.log())
	}
}

// The same datagram again is refused: from the same address, from
// another, and after a daemon restart.
func TestSPAReplay(t *testing.T) {
	b := newBench(t)
	serveService(t, b)
	s := newSPABench(t)
	g := startGateway(t, b, s.config(t.TempDir(), s.clientsWithoutOld))
	packets := map[string][]byte{}
	for _, f := range families(b) {
		t.Run(f.name, func(t *testing.T) {
			// The bytes sesame open would send, captured with --print.
			out := s.open(t, b, s.laptop, f.gw.String(), fmt.Sprintf("%d/tcp", svcPort), "--print")
			pkt, err := hex.DecodeString(strings.TrimSpace(out))
			if err != nil || len(pkt) < 89 || len(pkt) > 1232 {
				t.Fatalf("--print gave %q (%v)", out, err)
			}
			packets[f.name] = pkt
			spa := netip.AddrPortFrom(f.gw, spaPort)
			dst := netip.AddrPortFrom(f.gw, svcPort)
			if err := b.SendUDP(b.Client, f.cl, spa, pkt); err != nil {
				t.Fatal(err)
			}
			if err := b.WaitReachable(context.Background(), b.Client, dst, 3*time.Second); err != nil {
				t.Fatal(err)
			}
			// Captured and replayed from the second address: refused.
			if err := b.SendUDP(b.Client, f.second, spa, pkt); err != nil {
				t.Fatal(err)
			}
			waitLog(t, g, "msg=reject", "reason=replay", "client=laptop", "src="+f.second.String())
			hidden(t, b, f.second, dst)
			// And from the first address again.
			n := strings.Count(g.log(), "reason=replay")
			b.SendUDP(b.Client, f.cl, spa, pkt)
			deadline := time.Now().Add(5 * time.Second)
			for strings.Count(g.log(), "reason=replay") == n && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if strings.Count(g.log(), "reason=replay") == n {
				t.Fatalf("replay from the same address not refused:\n%s", g.log())
			}
		})
	}
	// A restart does not reopen the window: the replay state is on disk.
	if err := b.Stop(g.proc); err != nil {
		t.Logf("stop: %v", err)
	}
	g.start()
	for _, f := range families(b) {
		if err := b.SendUDP(b.Client, f.second, netip.AddrPortFrom(f.gw, spaPort), packets[f.name]); err != nil {
			t.Fatal(err)
		}
		waitLog(t, g, "msg=reject", "reason=replay", "src="+f.second.String())
		hidden(t, b, f.second, netip.AddrPortFrom(f.gw, svcPort))
	}
	if strings.Contains(g.log(), "msg=grant") {
		t.Fatalf("a replay was granted after the restart:\n%s", g.log())
	}
}

// A reload (SIGHUP) applies a changed client list at once and keeps the
// replay state: a packet accepted before the reload stays refused.
func TestSPAReloadKeepsReplay(t *testing.T) {
	b := newBench(t)
	serveService(t, b)
	s := newSPABench(t)
	state := t.TempDir()
	g := startGateway(t, b, s.config(state, s.clientsWithOld))
	spa := netip.AddrPortFrom(b.GW4, spaPort)
	out := s.open(t, b, s.laptop, b.GW4.String(), fmt.Sprintf("%d/tcp", svcPort), "--print")
	pkt, err := hex.DecodeString(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SendUDP(b.Client, b.Client4, spa, pkt); err != nil {
		t.Fatal(err)
	}
	waitLog(t, g, "msg=grant", "client=laptop")

	os.WriteFile(g.cfg, []byte(s.config(state, s.clientsWithoutOld)), 0o600)
	if err := syscall.Kill(g.proc.PID(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, g, "configuration reloaded")
	if err := b.SendUDP(b.Client, b.Client4b, spa, pkt); err != nil {
		t.Fatal(err)
	}
	waitLog(t, g, "msg=reject", "reason=replay", "src="+b.Client4b.String())
	s.open(t, b, s.old, b.GW4.String(), fmt.Sprintf("%d/tcp", svcPort))
	waitLog(t, g, "msg=reject", "reason=unknown-key", s.oldPub)
	// The reloaded handler still records new packets on disk: after a
	// restart this one is a replay too.
	out = s.open(t, b, s.laptop, b.GW4.String(), fmt.Sprintf("%d/tcp", svcPort), "--print")
	pkt2, _ := hex.DecodeString(strings.TrimSpace(out))
	b.SendUDP(b.Client, b.Client4, spa, pkt2)
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(g.log(), "client=laptop services") < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := b.Stop(g.proc); err != nil {
		t.Logf("stop: %v", err)
	}
	g.start()
	b.SendUDP(b.Client, b.Client4b, spa, pkt2)
	waitLog(t, g, "msg=reject", "reason=replay", "src="+b.Client4b.String())
}

// ssh's ProxyCommand: `sesame proxy HOST PORT` sends the packet, waits for
// the port and carries the session over stdin/stdout. IPv4 with flags,
// IPv6 through a client.toml profile named like the ssh host alias.
func TestSPAProxyCommand(t *testing.T) {
	b := newBench(t)
	serveService(t, b)
	s := newSPABench(t)
	startGateway(t, b, s.config(t.TempDir(), s.clientsWithoutOld))
	profiles := filepath.Join(t.TempDir(), "client.toml")
	os.WriteFile(profiles, []byte(fmt.Sprintf("[profile.gw6]\nhost = %q\ngateway_key = %q\nkey = %q\nduration = \"20s\"\n", b.GW6, s.gwPub, s.laptop)), 0o600)
	for _, tc := range []struct {
		name string
		argv []string
	}{
		{"ipv4 flags", []string{sesameBin, "proxy", "--key", s.laptop, "--gateway-key", s.gwPub, b.GW4.String(), fmt.Sprint(svcPort)}},
		{"ipv6 profile", []string{sesameBin, "proxy", "--profiles", profiles, "gw6", fmt.Sprint(svcPort)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := b.Command(ctx, b.Client, tc.argv...)
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			r := bufio.NewReader(stdout)
			for _, line := range []string{"SSH-2.0-test\n", "a second line\n"} {
				if _, err := io.WriteString(stdin, line); err != nil {
					t.Fatal(err)
				}
				got, err := r.ReadString('\n')
				if err != nil || got != line {
					t.Fatalf("echo: %q, %v (stderr %s)", got, err, stderr.String())
				}
			}
			stdin.Close() // the ssh client is done: the service sees EOF and closes
			if rest, _ := io.ReadAll(r); len(rest) != 0 {
				t.Fatalf("trailing output %q", rest)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("proxy: %v\n%s", err, stderr.String())
			}
		})
	}
}

// A knock door and native SPA in one config: each opens its own service.
func TestSPAAndKnockTogether(t *testing.T) {
	b := newBench(t)
	serveService(t, b)
	serveExtra(t, b)
	s := newSPABench(t)
	door := fmt.Sprintf(`
[[door]]
name = "web"
sequence = ["7000/tcp", "8000/udp", "9000/tcp"]
seq_timeout = "10s"
open = ["%d/tcp"]
duration = "30s"

[[client]]
name = "laptop"
public_key = %q
allow = ["%d/tcp"]
`, outsidePort, s.laptopPub, svcPort)
	g := startGateway(t, b, s.config(t.TempDir(), door))
	spaSvc, knockSvc := netip.AddrPortFrom(b.GW4, svcPort), netip.AddrPortFrom(b.GW4, outsidePort)
	hidden(t, b, netip.Addr{}, spaSvc)
	hidden(t, b, netip.Addr{}, knockSvc)
	s.open(t, b, s.laptop, b.GW4.String(), fmt.Sprintf("%d/tcp", svcPort), "--wait")
	reachable(t, b, netip.Addr{}, spaSvc)
	hidden(t, b, netip.Addr{}, knockSvc)
	run(t, b, b.Client, 10*time.Second, false, sesameBin, "knock", b.GW6.String(), "7000/tcp", "8000/udp", "9000/tcp", "--wait", fmt.Sprintf("tcp/%d=5s", outsidePort))
	reachable(t, b, b.Client6, netip.AddrPortFrom(b.GW6, outsidePort))
	hidden(t, b, b.Client6, netip.AddrPortFrom(b.GW6, svcPort)) // the knock opened only its door's port
	waitLog(t, g, "msg=grant", "door=web")
	waitLog(t, g, "msg=grant", "proto=spa", "client=laptop")
}

// startSPABench starts a gateway on a latency bench with the laptop as its
// only client, allowed 2222/tcp.
func startSPABench(b *testing.B) (*netns.Bench, *spaBench) {
	bench := benchSetup(b)
	s := newSPABench(b)
	path := filepath.Join(b.TempDir(), "sesame.toml")
	os.WriteFile(path, []byte(s.config(b.TempDir(), s.clientsWithoutOld)), 0o600)
	ownControlSocketFile(b, path, controlSocket(b))
	p := serveForBench(b, bench, "-c", path)
	b.Cleanup(func() {
		if f := os.Getenv("SESAME_BENCH_LOG"); f != "" {
			os.WriteFile(f, p.Output(), 0o644)
		}
	})
	return bench, s
}

var spaOpenAfter = regexp.MustCompile(`open after (\d+)us \((\d+) packets\)`)

// spaTry runs one `sesame open --wait` from the client namespace after
// flushing the grants, and returns the time from the first packet to the
// open port, the packets it took, and whether it succeeded.
func spaTry(bench *netns.Bench, s *spaBench, gw netip.Addr, timeout string) (us float64, packets int, ok bool, out []byte) {
	set := "grants4"
	if gw.Is6() {
		set = "grants6"
	}
	bench.Command(context.Background(), bench.GW, "nft", "flush", "set", "inet", "sesame", set).Run()
	out, err := bench.Command(context.Background(), bench.Client, sesameBin, "open", "-v", gw.String(), "2222/tcp",
		"--key", s.laptop, "--gateway-key", s.gwPub, "--wait", "--wait-interval", "200us", "--resend", "500ms", "--wait-timeout", timeout).CombinedOutput()
	if err != nil {
		return 0, 0, false, out
	}
	m := spaOpenAfter.FindSubmatch(out)
	if m == nil {
		return 0, 0, false, out
	}
	v, _ := strconv.Atoi(string(m[1]))
	n, _ := strconv.Atoi(string(m[2]))
	return float64(v), n, true, out
}

func report(b *testing.B, lat []float64) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	b.ReportMetric(pct(0.5), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(lat[len(lat)-1], "max-µs")
	b.Logf("n=%d p50=%.0fµs p90=%.0fµs p99=%.0fµs max=%.0fµs", len(lat), pct(0.5), pct(0.9), pct(0.99), lat[len(lat)-1])
}

// Latency from the SPA packet leaving `sesame open` to 2222/tcp answering
// (the client probes every 200 µs). Tries are paced under the gateway's
// per-source rate limit (20 datagrams/s). Run with
//
//	go test ./e2e -run '^$' -bench SPAToOpen -benchtime 100x
func BenchmarkSPAToOpen(b *testing.B) {
	bench, s := startSPABench(b)
	var lat []float64
	resent := 0
	for i := 0; i < b.N; i++ {
		us, n, ok, out := spaTry(bench, s, bench.GW4, "5s")
		if !ok {
			b.Fatalf("try %d: %s", i, out)
		}
		lat = append(lat, us)
		resent += n - 1
		time.Sleep(60 * time.Millisecond)
	}
	b.ReportMetric(float64(resent), "resends")
	report(b, lat)
}

// The legitimate client's success rate and latency while the second client
// address floods the SPA port with random garbage (half of it with a valid
// magic and version, so it reaches the pre-filter's HMAC). The flood is one
// goroutine writing as fast as it can, for at most 60 s and 20 M datagrams.
// Run with
//
//	go test ./e2e -run '^$' -bench SPAUnderFlood -benchtime 50x
func BenchmarkSPAUnderFlood(b *testing.B) {
	bench, s := startSPABench(b)
	for _, f := range families(bench) {
		if f.gw.Is6() {
			// ServeTCP in benchSetup listens on GW4 only.
			if _, err := bench.ServeTCP(bench.GW, netip.AddrPortFrom(bench.GW6, 2222), []byte("hi\n")); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(f.name, func(b *testing.B) {
			conn, err := bench.DialUDP(bench.Client, f.second, netip.AddrPortFrom(f.gw, spaPort))
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			stop := make(chan struct{})
			done := make(chan int)
			go func() {
				const maxPackets, maxTime = 20_000_000, 60 * time.Second
				rnd := rand.New(rand.NewPCG(1, 2))
				buf := make([]byte, 1232)
				end := time.Now().Add(maxTime)
				n := 0
				for ; n < maxPackets; n++ {
					if n%1024 == 0 {
						select {
						case <-stop:
							done <- n
							return
						default:
						}
						if time.Now().After(end) {
							break
						}
					}
					size := 89 + rnd.IntN(1232-89+1)
					for i := 0; i+8 <= size; i += 8 {
						binary.LittleEndian.PutUint64(buf[i:], rnd.Uint64())
					}
					if n%2 == 0 {
						buf[0], buf[1] = 0xD3, 0x01
					}
					conn.Write(buf[:size])
				}
				<-stop
				done <- n
			}()
			time.Sleep(500 * time.Millisecond) // let the flood reach its rate
			start := time.Now()
			var lat []float64
			fails, resent := 0, 0
			for i := 0; i < b.N; i++ {
				us, n, ok, _ := spaTry(bench, s, f.gw, "3s")
				if !ok {
					fails++
				} else {
					lat = append(lat, us)
					resent += n - 1
				}
				time.Sleep(60 * time.Millisecond)
			}
			close(stop)
			sent := <-done
			secs := time.Since(start).Seconds() + 0.5
			b.ReportMetric(100*float64(b.N-fails)/float64(b.N), "success-%")
			b.ReportMetric(float64(resent), "resends")
			b.ReportMetric(float64(sent)/secs, "flood-pps")
			b.Logf("%s: %d/%d opened, %d resends, flood %d datagrams (%.0f/s)", f.name, b.N-fails, b.N, resent, sent, float64(sent)/secs)
			report(b, lat)
		})
	}
}

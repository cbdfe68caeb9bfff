package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/sesame-gw/sesame/internal/netns"
	"github.com/sesame-gw/sesame/internal/netns/netnstest"
	"github.com/sesame-gw/sesame/internal/packet"
	"github.com/sesame-gw/sesame/internal/service"
)

// The differential test: one corpus of knock traces, replayed once while
// Debian's knockd, `sesame serve --knockd-conf` and `sesame serve
// --knockd-conf --knockd-parity` all watch the same interface with the same
// knockd.conf (each daemon in its own directory: the commands append to
// ./cmd.log, the one-time sequences are ./otp.txt). The commands each one
// ran must match, except the deliberate differences of
// docs/knockd-compat.md, which are asserted explicitly.

const diffConf = `[options]
	LogFile = knockd.log
[ssh]
	sequence = 7000,8000,9000
	seq_timeout = 3
	tcpflags = syn
	start_command = echo "start %IP% ssh" >> cmd.log
	start_command_6 = echo "start6 %IP% ssh" >> cmd.log
	stop_command = echo "stop %IP% ssh" >> cmd.log
	cmd_timeout = 1
[mix]
	sequence = 7100:udp,7200,7300:udp
	seq_timeout = 3
	tcpflags = syn
	start_command = echo "start %IP% mix" >> cmd.log
[fin]
	sequence = 7400,7500
	seq_timeout = 3
	tcpflags = fin,!ack
	start_command = echo "start %IP% fin" >> cmd.log
[otp]
	one_time_sequences = otp.txt
	seq_timeout = 3
	tcpflags = syn
	start_command = echo "start %IP% otp" >> cmd.log
[one]
	sequence = 7600:udp
	start_command = echo "start %IP% one" >> cmd.log
[brk]
	sequence = 6500,6600
	tcpflags = syn
	start_command = echo "start %IP% brk" >> cmd.log
`

const diffOTP = " 7700,7800,7900\n 7710,7810,7910\n 7720,7820,7920\n"

// step is one packet of a trace: from a role ("A", "B": IPv4, "A6": IPv6)
// to a service of the gateway with TCP flags, after an optional wait.
type step struct {
	from  string
	svc   service.Service
	flags packet.TCPFlags
	wait  time.Duration
}

func syn(from string, port uint16) step {
	return step{from: from, svc: tcpSvc(port), flags: packet.SYN}
}
func dgram(from string, port uint16) step {
	return step{from: from, svc: service.Service{Proto: service.UDP, Port: port}}
}
func flagged(from string, port uint16, f packet.TCPFlags) step {
	return step{from: from, svc: tcpSvc(port), flags: f}
}
func tcpSvc(p uint16) service.Service { return service.Service{Proto: service.TCP, Port: p} }

func syns(from string, ports ...uint16) []step {
	var s []step
	for _, p := range ports {
		s = append(s, syn(from, p))
	}
	return s
}

// diffTrace is one case of the corpus and what each daemon must do (start
// lines, roles in place of addresses). sesame and parity default to
// knockd's outcome; when they differ, why names the documented reason.
type diffTrace struct {
	name   string
	steps  []step
	custom func(t *testing.T, b *netns.Bench, roles map[string]netip.Addr) // instead of steps
	knockd []string
	sesame []string
	parity []string
	why    string
}

func diffCorpus() []diffTrace {
	open := func(lines ...string) []string { return lines }
	none := []string{}
	return []diffTrace{
		{name: "correct", steps: syns("A", 7000, 8000, 9000), knockd: open("start A ssh")},
		{name: "wrong order", steps: syns("A", 9000, 8000, 7000), knockd: none},
		{name: "too slow", steps: append(syns("A", 7000, 8000), step{from: "A", svc: tcpSvc(9000), flags: packet.SYN, wait: 3500 * time.Millisecond}), knockd: none},
		{name: "repeated first knock", steps: syns("A", 7000, 7000, 8000, 9000), knockd: none, sesame: open("start A ssh"), why: "repeat tolerated"},
		{name: "retransmitted middle knock", steps: syns("A", 7000, 8000, 8000, 9000), knockd: none, sesame: open("start A ssh"), why: "repeat tolerated"},
		{name: "noise on other ports", steps: syns("A", 7000, 1111, 8000, 2222, 9000), knockd: open("start A ssh"), sesame: none, why: "scan-proof reset"},
		{name: "door port out of place", steps: syns("A", 7000, 8000, 7000, 9000), knockd: none},
		{name: "another door's port between", steps: []step{syn("A", 7000), dgram("A", 7100), syn("A", 8000), syn("A", 9000)}, knockd: none},
		{name: "stale attempt, then the right sequence", steps: syns("A", 9000, 8000, 7000, 7000, 8000, 9000), knockd: none, sesame: open("start A ssh"), why: "repeat tolerated (knockd's failed attempt swallows the retry)"},
		{name: "two sources interleaved", steps: syns2(), knockd: open("start A ssh"), sesame: open("start A ssh", "start B ssh"), parity: open("start A ssh", "start B ssh"), why: "knockd bug: when the oldest attempt ends, every other attempt is lost"},
		{name: "ACK packets between (established traffic)", steps: []step{syn("A", 7000), flagged("A", 8000, packet.ACK), syn("A", 8000), flagged("A", 1234, packet.ACK), syn("A", 9000)}, knockd: open("start A ssh")},
		{name: "SYN+ACK knocks match tcpflags=syn", steps: []step{flagged("A", 7000, packet.SYN|packet.ACK), flagged("A", 8000, packet.SYN|packet.ACK), flagged("A", 9000, packet.SYN|packet.ACK)}, knockd: open("start A ssh")},
		{name: "FIN knocks (tcpflags=fin,!ack)", steps: []step{flagged("A", 7400, packet.FIN), flagged("A", 7500, packet.FIN)}, knockd: open("start A fin")},
		{name: "FIN+ACK knocks (tcpflags=fin,!ack)", steps: []step{flagged("A", 7400, packet.FIN|packet.ACK), flagged("A", 7500, packet.FIN|packet.ACK)}, knockd: none},
		{name: "UDP and TCP steps", steps: []step{dgram("A", 7100), syn("A", 7200), dgram("A", 7300)}, knockd: open("start A mix")},
		{name: "wrong protocol", steps: []step{syn("A", 7100), syn("A", 7200), dgram("A", 7300)}, knockd: none},
		{name: "one-port UDP door", steps: []step{dgram("A", 7600)}, knockd: open("start A one")},
		{name: "IPv6 correct (Start_Command_6)", steps: syns("A6", 7000, 8000, 9000), knockd: open("start6 A6 ssh")},
		{name: "IPv6 noise on other ports", steps: syns("A6", 7000, 1111, 8000, 9000), knockd: open("start6 A6 ssh"), sesame: none, why: "scan-proof reset"},
		{name: "one-time sequence 1", steps: syns("A", 7700, 7800, 7900), knockd: open("start A otp")},
		{name: "one-time sequence 1 replayed", steps: syns("A", 7700, 7800, 7900), knockd: none},
		{name: "one-time sequence 2 (IPv4)", steps: syns("A", 7710, 7810, 7910), knockd: open("start A otp")},
		{name: "one-time sequence 3 over IPv6", steps: syns("A6", 7720, 7820, 7920), knockd: none, sesame: open("start A6 otp"), parity: open("start A6 otp"), why: "knockd 0.8 rebuilds only the IPv4 filter after a one-time sequence"},
		{name: "ascending port scan (nmap -r)", custom: nmapAscending, knockd: open("start A ssh"), sesame: none, why: "scan-proof reset"},
		{name: "Debian knock client", custom: knockClient, knockd: open("start A mix")},
	}
}

func syns2() []step {
	var s []step
	for _, p := range []uint16{7000, 8000, 9000} {
		s = append(s, syn("A", p), syn("B", p))
	}
	return s
}

func nmapAscending(t *testing.T, b *netns.Bench, roles map[string]netip.Addr) {
	run(t, b, b.Client, 60*time.Second, false, "nmap", "-S", roles["A"].String(), "-e", netns.ClientIf, "-Pn", "-n", "-sS", "-r",
		"--max-retries", "0", "-p", "6990-7010,7990-8010,8990-9010", b.GW4.String())
}

func knockClient(t *testing.T, b *netns.Bench, roles map[string]netip.Addr) {
	run(t, b, b.Client, 10*time.Second, false, "knock", "-d", "20", b.GW4.String(), "7100:udp", "7200", "7300:udp")
}

// diffDaemon is one of the three daemons under comparison.
type diffDaemon struct {
	name string
	dir  string
	proc *netns.Proc
}

func startDiffDaemon(t *testing.T, b *netns.Bench, root, name, ready string, argv ...string) *diffDaemon {
	t.Helper()
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "otp.txt"), []byte(diffOTP), 0o600); err != nil {
		t.Fatal(err)
	}
	// cd, then exec: the daemon keeps the shell's PID.
	script := `cd "$1" && shift && exec "$@"`
	p, err := b.Start(b.GW, append([]string{"sh", "-c", script, "sh", dir}, argv...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitOutput(ctx, ready); err != nil {
		t.Fatalf("%s did not start: %v\n%s", name, err, p.Output())
	}
	return &diffDaemon{name: name, dir: dir, proc: p}
}

// lines returns cmd.log's lines.
func (d *diffDaemon) lines(t *testing.T) []string {
	f, err := os.Open(filepath.Join(d.dir, "cmd.log"))
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	for sc := bufio.NewScanner(f); sc.Scan(); {
		out = append(out, sc.Text())
	}
	return out
}

func TestKnockdDifferential(t *testing.T) {
	b := netnstest.New(t, netns.Options{Name: "kdiff"})
	for _, bin := range []string{"knockd", "knock", "nmap"} {
		netnstest.RequireBinary(t, bin)
	}
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(root, "knockd.conf")
	if err := os.WriteFile(conf, []byte(diffConf), 0o644); err != nil {
		t.Fatal(err)
	}
	daemons := []*diffDaemon{
		startDiffDaemon(t, b, root, "knockd", "listening on", "knockd", "-v", "-i", netns.GWIf, "-c", conf),
		startDiffDaemon(t, b, root, "sesame", "knockd mode ready", withControlSocket(t, []string{sesameBin, "serve", "--knockd-conf", conf, "-i", netns.GWIf, "--state-dir", "state"})...),
		startDiffDaemon(t, b, root, "parity", "knockd mode ready", withControlSocket(t, []string{sesameBin, "serve", "--knockd-conf", conf, "-i", netns.GWIf, "--state-dir", "state", "--knockd-parity"})...),
	}
	corpus := diffCorpus()
	v4, v6 := addClientAddrs(t, b, 20, 2*len(corpus))
	raw := newRawSender(t, b)
	roleOf := map[netip.Addr]string{} // address → "trace#role"
	for i, tr := range corpus {
		roles := map[string]netip.Addr{"A": v4[2*i], "B": v4[2*i+1], "A6": v6[2*i]}
		if tr.name == "Debian knock client" {
			roles["A"] = b.Client4 // knock uses the default source
		}
		for r, a := range roles {
			roleOf[a] = fmt.Sprintf("%d#%s", i, r)
		}
		if tr.custom != nil {
			tr.custom(t, b, roles)
		}
		for _, s := range tr.steps {
			time.Sleep(s.wait)
			src := roles[s.from]
			dst := b.GW4
			if src.Is6() {
				dst = b.GW6
			}
			raw.send(t, src, dst, s.svc, s.flags)
			pause()
		}
		// End every attempt the trace left, so that no stale attempt of
		// knockd's (whose end would drop every other attempt: see "two
		// sources interleaved") reaches into the next trace: 6600/tcp is a
		// door port but never a next step here.
		for _, r := range []string{"A", "B", "A6"} {
			dst := b.GW4
			if roles[r].Is6() {
				dst = b.GW6
			}
			raw.send(t, roles[r], dst, tcpSvc(6600), packet.SYN)
		}
		pause()
		raw.send(t, b.Client4b, b.GW4, tcpSvc(6600), packet.SYN) // knockd drops failed attempts on the next packet
		time.Sleep(150 * time.Millisecond)                       // knockd's pcap delivers every 50 ms
	}
	time.Sleep(2500 * time.Millisecond) // Cmd_Timeout 1 s: let the stop commands run

	// Outcomes per trace and daemon: the start lines, addresses as roles.
	got := map[string][][]string{}
	for _, d := range daemons {
		per := make([][]string, len(corpus))
		starts, stops := map[string]bool{}, map[string]bool{}
		for _, line := range d.lines(t) {
			f := strings.Fields(line)
			if len(f) != 3 {
				t.Errorf("%s: odd command line %q", d.name, line)
				continue
			}
			a, err := netip.ParseAddr(f[1])
			tag, ok := roleOf[a]
			if err != nil || !ok {
				t.Errorf("%s: command for an unknown source: %q", d.name, line)
				continue
			}
			var i int
			var role string
			fmt.Sscanf(strings.Replace(tag, "#", " ", 1), "%d %s", &i, &role)
			norm := f[0] + " " + role + " " + f[2]
			if f[0] == "stop" {
				stops[role+"@"+fmt.Sprint(i)] = true
				continue
			}
			starts[role+"@"+fmt.Sprint(i)+" "+f[2]] = f[2] == "ssh"
			per[i] = append(per[i], norm)
		}
		// Every ssh door opened is closed again by its stop command.
		for k, isSSH := range starts {
			if isSSH && !stops[strings.Fields(k)[0]] {
				t.Errorf("%s: no stop command after %s", d.name, k)
			}
		}
		got[d.name] = per
	}

	var table strings.Builder
	tw := tabwriter.NewWriter(&table, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "trace\tknockd 0.8\tsesame --knockd-conf\t--knockd-parity\tdifference")
	for i, tr := range corpus {
		want := map[string][]string{"knockd": tr.knockd, "sesame": tr.sesame, "parity": tr.parity}
		if want["sesame"] == nil {
			want["sesame"] = tr.knockd
		}
		if want["parity"] == nil {
			want["parity"] = tr.knockd
		}
		cells := []string{}
		for _, d := range []string{"knockd", "sesame", "parity"} {
			g := slices.Clone(got[d][i])
			w := slices.Clone(want[d])
			slices.Sort(g)
			slices.Sort(w)
			if !slices.Equal(g, w) {
				t.Errorf("%q: %s ran %q, want %q", tr.name, d, g, w)
			}
			cell := "closed"
			if len(g) > 0 {
				cell = strings.Join(g, "; ")
			}
			cells = append(cells, cell)
		}
		why := "same"
		if tr.why != "" {
			why = tr.why
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", tr.name, cells[0], cells[1], cells[2], why)
	}
	tw.Flush()
	t.Logf("outcomes (start commands run):\n%s", table.String())
	if f := os.Getenv("SESAME_DIFF_TABLE"); f != "" {
		os.WriteFile(f, []byte(table.String()), 0o644)
	}

	// The one-time files: knockd marked two lines used, Sesame three.
	for _, c := range []struct {
		daemon string
		want   string
	}{
		{"knockd", "#7700,7800,7900\n#7710,7810,7910\n 7720,7820,7920\n"},
		{"sesame", "#7700,7800,7900\n#7710,7810,7910\n#7720,7820,7920\n"},
		{"parity", "#7700,7800,7900\n#7710,7810,7910\n#7720,7820,7920\n"},
	} {
		b, _ := os.ReadFile(filepath.Join(root, c.daemon, "otp.txt"))
		if string(b) != c.want {
			t.Errorf("%s's otp.txt: %q, want %q", c.daemon, b, c.want)
		}
	}
	// Both write knockd's log format.
	for _, d := range daemons {
		b, _ := os.ReadFile(filepath.Join(d.dir, "knockd.log"))
		if !strings.Contains(string(b), ": ssh: OPEN SESAME\n") || !strings.Contains(string(b), "] ssh: running command: echo \"start ") {
			t.Errorf("%s's knockd.log:\n%s", d.name, b)
		}
	}
}

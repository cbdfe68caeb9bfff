// Command bench is Sesame's benchmark suite against Debian's knockd and
// fwknopd (issue 6). As root, from the repository root:
//
//	go run ./bench [-quick] [-out DIR] [-peers ...] [-scenarios ...]
//	make bench-suite
//
// For every daemon — Sesame (one daemon with a knock door, native SPA and
// fwknop's access.conf), knockd 0.8, fwknopd 2.6.10 with libpcap and with
// -U — it builds a fresh two-namespace bench (internal/netns), runs the
// same scenarios with the same client code, and writes results.md,
// results.csv and PNG plots to -out. docs/benchmarks.md explains the
// method and holds the latest figures.
//
// Safety: traffic only ever flows between the two namespaces of a bench.
// The benches' own prefixes are blackholed in the host namespace by
// internal/netns; the spoofed source prefix (-spoof, default
// 10.224.0.0/12) is blackholed in the host namespace for the whole run and
// in every gateway namespace. Every generator is bounded in packets and
// seconds, the whole run by -max-time; on exit (or SIGINT/SIGTERM) every
// process the suite started is stopped by PID, the namespaces and the
// routes are removed.
//
// The program also contains the two helpers it runs inside the client
// namespace: `bench agent` (the legitimate client) and `bench flood` (the
// raw-socket generator). They are not meant to be run by hand.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	out          string
	quick        bool
	peers        []string
	scenarios    map[string]bool
	tries        int
	floodTries   int
	floodTimeout time.Duration
	floodThreads int
	floodMix     string
	floodMax     time.Duration
	floodPackets uint64
	memSources   int
	grantLevels  []int
	connects     int
	idle         time.Duration
	benchtime    string
	benchCount   int
	rateN        int
	maxTime      time.Duration
	spoof        string
	sesame       string
}

var allPeers = []string{"sesame", "knockd", "fwknopd-pcap", "fwknopd-udp"}
var allScenarios = []string{"idle", "latency", "flood", "memory", "rate", "grants", "throughput"}

func main() {
	if len(os.Args) > 1 {
		var err error
		switch os.Args[1] {
		case "agent":
			err = runAgent(os.Stdin, os.Stdout)
		case "flood":
			err = runFlood(os.Args[2:], os.Stdin, os.Stdout)
		default:
			err = run(os.Args[1:])
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(nil); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.out, "out", filepath.Join(os.TempDir(), "sesame-bench"), "directory for results.md, results.csv and the plots")
	fs.BoolVar(&o.quick, "quick", false, "a short run (about 4 minutes): fewer tries, 100k sources, up to 10k grants")
	peers := fs.String("peers", strings.Join(allPeers, ","), "daemons to run: "+strings.Join(allPeers, ","))
	scen := fs.String("scenarios", strings.Join(allScenarios, ","), "scenarios: "+strings.Join(allScenarios, ","))
	fs.IntVar(&o.tries, "tries", 0, "latency tries per method (default 200, quick 30)")
	fs.IntVar(&o.floodTries, "flood-tries", 0, "legitimate tries per method during the flood (default 100, quick 20)")
	fs.DurationVar(&o.floodTimeout, "flood-timeout", time.Second, "how long one try under flood may take to see the port open (no resend)")
	fs.IntVar(&o.floodThreads, "flood-threads", 1, "sending threads of the flood generator (each takes a core: the receive path runs on the sender's CPU)")
	fs.StringVar(&o.floodMix, "flood-mix", "syn,bin", "flood composition (weights of syn, bin, d3, b64; see the flood scenario)")
	fs.DurationVar(&o.floodMax, "flood-max", 5*time.Minute, "upper bound on one generator's run")
	fs.Uint64Var(&o.floodPackets, "flood-packets", 100_000_000, "upper bound on one generator's packets")
	fs.IntVar(&o.memSources, "mem-sources", 0, "distinct spoofed sources in the memory scenario (default 1,000,000, quick 100,000)")
	levels := fs.String("grant-levels", "", "live grant counts for connect timing (default 0,10000,100000; quick 0,1000,10000)")
	fs.IntVar(&o.connects, "connects", 0, "connections timed per grant level (default 300, quick 100)")
	fs.DurationVar(&o.idle, "idle", 0, "how long daemons are watched idle (default 10s, quick 3s)")
	fs.StringVar(&o.benchtime, "benchtime", "", "go test -benchtime for the hot paths (default 2s, quick 300ms)")
	fs.IntVar(&o.benchCount, "bench-count", 0, "go test -count for the hot paths: the median run is reported, with the best (default 5, quick 1)")
	fs.IntVar(&o.rateN, "rate-packets", 0, "valid packets for the end-to-end rate (default 3000, quick 1000)")
	fs.DurationVar(&o.maxTime, "max-time", 25*time.Minute, "upper bound on the whole run")
	fs.StringVar(&o.spoof, "spoof", "10.224.0.0/12", "prefix spoofed sources come from (blackholed on the host while the suite runs)")
	fs.StringVar(&o.sesame, "sesame", "", "sesame binary (default: go build ./cmd/sesame)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	def := func(v *int, full, quick int) {
		if *v == 0 {
			*v = full
			if o.quick {
				*v = quick
			}
		}
	}
	def(&o.tries, 200, 30)
	def(&o.floodTries, 100, 20)
	def(&o.memSources, 1_000_000, 100_000)
	def(&o.connects, 300, 100)
	def(&o.rateN, 3000, 1000)
	def(&o.benchCount, 5, 1)
	if o.idle == 0 {
		o.idle = 10 * time.Second
		if o.quick {
			o.idle = 3 * time.Second
		}
	}
	if o.benchtime == "" {
		o.benchtime = "2s"
		if o.quick {
			o.benchtime = "300ms"
		}
	}
	if *levels == "" {
		*levels = "0,10000,100000"
		if o.quick {
			*levels = "0,1000,10000"
		}
	}
	for f := range strings.SplitSeq(*levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 || n > 1_000_000 {
			return o, fmt.Errorf("-grant-levels: %q", f)
		}
		o.grantLevels = append(o.grantLevels, n)
	}
	slices.Sort(o.grantLevels)
	for p := range strings.SplitSeq(*peers, ",") {
		if !slices.Contains(allPeers, p) {
			return o, fmt.Errorf("-peers: unknown %q", p)
		}
		o.peers = append(o.peers, p)
	}
	o.scenarios = map[string]bool{}
	for s := range strings.SplitSeq(*scen, ",") {
		if !slices.Contains(allScenarios, s) {
			return o, fmt.Errorf("-scenarios: unknown %q", s)
		}
		o.scenarios[s] = true
	}
	return o, nil
}

func run(args []string) error {
	opts, err := parseOptions(args, os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root: it builds network namespaces, nftables and iptables rules")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, opts.maxTime)
	defer cancel()

	spoof, err := netip.ParsePrefix(opts.spoof)
	if err != nil || !spoof.Addr().Is4() || spoof.Bits() > 16 {
		return fmt.Errorf("-spoof %q: want an IPv4 prefix of /16 or wider", opts.spoof)
	}
	if err := checkSpoofFree(ctx, spoof); err != nil {
		return err
	}
	if err := os.MkdirAll(opts.out, 0o755); err != nil {
		return err
	}
	scratch, err := os.MkdirTemp("", "sesame-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	e := &env{opts: opts, log: log, self: self, dir: scratch, spoof: spoof.Masked()}
	if e.sesameBin = opts.sesame; e.sesameBin == "" {
		e.sesameBin = filepath.Join(scratch, "bin", "sesame")
		build := exec.CommandContext(ctx, "go", "build", "-o", e.sesameBin, "./cmd/sesame")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building sesame (run from the repository root, or pass -sesame): %w", err)
		}
	}
	unguard, err := guardSpoof(ctx, e.spoof)
	if err != nil {
		return err
	}
	defer unguard()

	rep := newReport()
	rep.floodMix = opts.floodMix
	rep.res.Machine = machine(opts)
	started := time.Now()
	runErr := runAll(ctx, e, rep)
	if runErr != nil {
		log.Error("run stopped early; writing what was measured", "err", runErr)
	}
	rep.res.Machine = append(rep.res.Machine, fmt.Sprintf("run took %v", time.Since(started).Round(time.Second)))
	if err := writeAll(opts.out, rep); err != nil {
		return err
	}
	log.Info("results written", "dir", opts.out)
	return runErr
}

func runAll(ctx context.Context, e *env, rep *report) error {
	for _, name := range e.opts.peers {
		if err := runPeer(ctx, e, rep, name); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if e.opts.scenarios["grants"] && slices.Contains(e.opts.peers, "sesame") {
		r, err := newRig(ctx, e, "iptables")
		if err != nil {
			return err
		}
		err = grantsIptables(ctx, e, r, rep)
		if cerr := r.close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("iptables baseline: %w", err)
		}
	}
	if e.opts.scenarios["throughput"] {
		if err := throughput(ctx, e, rep); err != nil {
			return err
		}
	}
	return nil
}

func newPeer(name string) peer {
	switch name {
	case "sesame":
		return &sesamePeer{}
	case "knockd":
		return &knockdPeer{}
	case "fwknopd-pcap":
		return &fwknopdPeer{}
	default:
		return &fwknopdPeer{udp: true}
	}
}

// runPeer runs every selected scenario against one daemon on its own rig.
func runPeer(ctx context.Context, e *env, rep *report, name string) (err error) {
	p := newPeer(name)
	r, err := newRig(ctx, e, name)
	if err != nil {
		return err
	}
	defer func() {
		// The daemon's log, for reading what it decided under load.
		if out := p.output(); len(out) > 0 {
			if os.MkdirAll(filepath.Join(e.opts.out, "logs"), 0o755) == nil {
				os.WriteFile(filepath.Join(e.opts.out, "logs", name+".log"), out, 0o644)
			}
		}
		if cerr := r.close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	if err := p.start(ctx, e, r); err != nil {
		return err
	}
	rep.peer(p.name())
	e.log.Info("daemon ready", "peer", p.name(), "pid", p.pid(), "gw", r.b.GW)
	steps := []struct {
		name string
		fn   func() error
	}{
		{"idle", func() error { return idle(ctx, e, p, rep) }},
		{"memory", func() error {
			if !p.knocks() {
				return nil
			}
			return memory(ctx, e, r, p, rep)
		}},
		{"latency", func() error { return latency(ctx, e, r, p, rep) }},
		{"flood", func() error { return flood(ctx, e, r, p, rep) }},
		{"rate", func() error {
			s, ok := p.(*sesamePeer)
			if !ok {
				return nil
			}
			if err := e2eRate(ctx, e, r, s, rep, "sesame spa", e.opts.rateN, 5000); err != nil {
				return err
			}
			return e2eRate(ctx, e, r, s, rep, "sesame fwknop", 4*e.opts.rateN, 20000)
		}},
		{"grants", func() error {
			if _, ok := p.(*sesamePeer); !ok {
				return nil
			}
			return grantsSesame(ctx, e, r, rep)
		}},
	}
	for _, s := range steps {
		if !e.opts.scenarios[s.name] {
			continue
		}
		if err := s.fn(); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// machine describes the host for the report header.
func machine(o options) []string {
	var out []string
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				out = append(out, fmt.Sprintf("CPU: %d × %s", runtime.NumCPU(), strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))))
				break
			}
		}
	}
	if b, err := exec.Command("uname", "-sr").Output(); err == nil {
		out = append(out, "kernel: "+strings.TrimSpace(string(b)))
	}
	out = append(out, "Go: "+runtime.Version())
	var vers []string
	for _, pkg := range []string{"knockd", "fwknop-server", "nftables", "iptables"} {
		if b, err := exec.Command("dpkg-query", "-W", "-f=${Version}", pkg).Output(); err == nil {
			vers = append(vers, pkg+" "+string(b))
		}
	}
	if len(vers) > 0 {
		out = append(out, "peers: "+strings.Join(vers, ", "))
	}
	if b, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
		out = append(out, "sesame: "+strings.TrimSpace(string(b)))
	}
	mode := "full"
	if o.quick {
		mode = "quick"
	}
	out = append(out, fmt.Sprintf("mode: %s (tries %d, flood tries %d, %d sources, grant levels %v, flood threads %d)",
		mode, o.tries, o.floodTries, o.memSources, o.grantLevels, o.floodThreads))
	out = append(out, "date: "+time.Now().UTC().Format("2006-01-02 15:04 MST"))
	return out
}

func writeAll(dir string, rep *report) error {
	buildTables(rep)
	var md, csv strings.Builder
	if err := rep.res.WriteMarkdown(&md); err != nil {
		return err
	}
	if err := rep.res.WriteCSV(&csv); err != nil {
		return err
	}
	plots, err := rep.res.WritePlots(dir)
	if err != nil {
		return err
	}
	if len(plots) > 0 {
		md.WriteString("## Plots\n\n")
		for _, p := range plots {
			md.WriteString(fmt.Sprintf("![%s](%s)\n\n", strings.TrimSuffix(p, ".png"), p))
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "results.md"), []byte(md.String()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "results.csv"), []byte(csv.String()), 0o644)
}

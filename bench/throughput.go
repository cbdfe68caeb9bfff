package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

// Hot-path throughput (goal 2): the repository's own Go benchmarks, run
// with -cpu 1 and -count N, read as packets per core-second (their
// pkts/core-s metric, measured in CPU time, when they report it; else
// 1e9 / ns/op). The median of the N runs is the figure judged against the
// goal; the best run is reported next to it, because on a shared VM the
// same code moves by a third between runs (a neighbour on the host core)
// and the best run is the closest to the code's own cost.

// benchSpec is one Go benchmark and what it stands for.
type benchSpec struct {
	pkg, name, what, goal string
	goalValue             float64
}

var benchSpecs = []benchSpec{
	{"./internal/spagw", "BenchmarkHandleValid", "native SPA: valid packet verified and granted (X25519, Ed25519, replay, policy)", "≥ 10,000", 10_000},
	{"./internal/spa", "BenchmarkOpen", "native SPA: spa.Opener.Open alone", "", 0},
	{"./internal/fwknopgw", "BenchmarkHandleValid", "fwknop: valid packet verified and granted", "≥ 100,000", 100_000},
	{"./internal/gateway", "BenchmarkDatagramGarbage", "engine: random garbage on the SPA port, rejected before public-key work", "≥ 1,000,000", 1_000_000},
	{"./internal/gateway", "BenchmarkDatagramForgedMagic", "engine: native magic+version, bad mac1 (one HMAC)", "", 0},
	{"./internal/fwknopgw", "BenchmarkHandleWrongHMAC", "fwknop: base64 garbage with a bad HMAC", "", 0},
}

// benchRecord is one benchmark result.
type benchRecord struct {
	spec   benchSpec
	perSec float64 // packets per core-second (the median run's)
	nsOp   float64
	best   float64 // the best run's packets per core-second
	runs   int
}

// throughput runs each benchmark of benchSpecs in its package and parses
// the result line.
func throughput(ctx context.Context, e *env, rep *report) error {
	byPkg := map[string][]benchSpec{}
	var pkgs []string
	for _, s := range benchSpecs {
		if _, ok := byPkg[s.pkg]; !ok {
			pkgs = append(pkgs, s.pkg)
		}
		byPkg[s.pkg] = append(byPkg[s.pkg], s)
	}
	for _, pkg := range pkgs {
		var names []string
		for _, s := range byPkg[pkg] {
			names = append(names, s.name)
		}
		args := []string{"test", "-run", "^$", "-bench", "^(" + strings.Join(names, "|") + ")$", "-cpu", "1",
			"-benchtime", e.opts.benchtime, "-count", strconv.Itoa(e.opts.benchCount), pkg}
		cmd := exec.CommandContext(ctx, "go", args...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
		}
		got := parseBench(out)
		for _, s := range byPkg[pkg] {
			r, ok := got[s.name]
			if !ok {
				e.log.Warn("benchmark missing from output", "pkg", pkg, "name", s.name)
				continue
			}
			r.spec = s
			rep.bench = append(rep.bench, r)
			subject := strings.TrimPrefix(pkg, "./internal/") + "." + s.name
			rep.res.Add("throughput", subject, "packets_per_core_s", r.perSec, "packets/core-s")
			rep.res.Add("throughput", subject, "packets_per_core_s_best", r.best, "packets/core-s")
			e.log.Info("throughput", "bench", s.name, "pkg", pkg, "per_core_s", int(r.perSec), "best", int(r.best), "runs", r.runs)
		}
	}
	return nil
}

// parseBench reads `go test -bench` output: for each benchmark (the -cpu
// suffix stripped) its ns/op and packets per core-second, of the median
// run when it ran more than once (-count), with the best run's rate.
func parseBench(out []byte) map[string]benchRecord {
	all := map[string][]benchRecord{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		var r benchRecord
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				r.nsOp = v
			case "pkts/core-s":
				r.perSec = v
			}
		}
		if r.perSec == 0 && r.nsOp > 0 {
			r.perSec = 1e9 / r.nsOp
		}
		all[name] = append(all[name], r)
	}
	res := make(map[string]benchRecord, len(all))
	for name, rs := range all {
		slices.SortFunc(rs, func(a, b benchRecord) int { return cmp.Compare(a.perSec, b.perSec) })
		m := rs[len(rs)/2] // the upper median for an even count
		m.best, m.runs = rs[len(rs)-1].perSec, len(rs)
		res[name] = m
	}
	return res
}

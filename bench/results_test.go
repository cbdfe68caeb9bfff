package main

import (
	"bytes"
	"encoding/csv"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sampleReport() *report {
	rep := newReport()
	rep.res.Machine = []string{"CPU: test", "kernel: test"}
	for i, subj := range []string{"sesame knock", "knockd"} {
		peer := "sesame"
		if i == 1 {
			peer = "knockd"
		}
		s := rep.subject(subj, peer)
		s.tries = 4
		s.latency = []float64{300, 250, 900 * float64(1+i*40), 400}
		s.floodN, s.floodOK, s.floodPPS, s.floodCPU = 10, 10-i*6, 150000, 42
		s.floodLat = []float64{500, 700}
		rep.res.AddLatency(subj, s.latency)
		rep.res.Flood = append(rep.res.Flood, FloodPoint{subj, s.floodOK, s.floodN})
		rep.res.Add("latency", subj, "p50", s.latency[0], "us")
		p := rep.peer(peer)
		p.idleCPU, p.idleFor = 0.01*float64(i), 10*time.Second
		for n := 0; n <= 4; n++ {
			m := MemPoint{n * 250_000, float64(20_000 + n*1000*(1+10*i))}
			p.mem = append(p.mem, m)
			rep.res.AddMemory(peer, m)
		}
		p.memSources = 1_000_000
	}
	for _, g := range []grantRecord{
		{backend: "sesame (nft set)", grants: 0, connect: summary{P50: 80, P99: 200}, installRate: 0, singleRate: 50000},
		{backend: "sesame (nft set)", grants: 100000, connect: summary{P50: 85, P99: 210}, installRate: 400000},
		{backend: "iptables rule per grant", grants: 0, connect: summary{P50: 80, P99: 190}, singleRate: 250},
		{backend: "iptables rule per grant", grants: 100000, connect: summary{P50: 9000, P99: 12000}},
	} {
		rep.grants = append(rep.grants, g)
		rep.res.Grants = append(rep.res.Grants, GrantPoint{g.backend, g.grants, g.connect.P50, g.connect.P99})
	}
	rep.bench = []benchRecord{{spec: benchSpecs[0], perSec: 9000}}
	rep.rate = []rateRecord{{subject: "sesame spa", sent: 1000, granted: 1000, wall: time.Second, perCPUs: 8000, perSecond: 1000, offered: 5000}}
	return rep
}

func TestWriteMarkdownAndCSV(t *testing.T) {
	rep := sampleReport()
	buildTables(rep)
	var md bytes.Buffer
	if err := rep.res.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	text := md.String()
	for _, want := range []string{
		"# Sesame benchmark results", "- CPU: test",
		"## Goals (issue 6)", "| 1. latency knock | p50 ≤ 1 ms, p99 ≤ 5 ms | 0.30 / 0.90 ms |",
		"| sesame knock | 4 | 0 | 0.30 |",
		"| knockd | 4/10 |", "| 3. flood knock | ≥ 99% (150,000 pkt/s) | 10/10 |",
		"| 4. connect time flat in grants |", "iptables: p50 80 µs at 0 → 9,000 µs at 100,000", "| 4. grant installation | ≥ 10,000 grants/s | 400,000 grants/s |",
		"| 5. memory, 1,000,000 sources | ≤ 64 MiB | 23.4 MiB | knockd 62.5 MiB | yes |",
		"| 6. idle CPU | ~0 % | 0.000 % | knockd 0.010% | yes |",
		"| 2. native SPA: valid packet verified and granted (X25519, Ed25519, replay, policy) | ≥ 10,000 /core-s | 9,000 |  | no |",
		"end to end: sesame spa",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("markdown lacks %q:\n%s", want, text)
		}
	}
	// Every table row has as many cells as its header.
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "|") && !strings.HasSuffix(line, "|") {
			t.Errorf("ragged row %q", line)
		}
	}

	var buf bytes.Buffer
	if err := rep.res.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1+len(rep.res.Rows) || strings.Join(recs[0], ",") != "scenario,subject,metric,value,unit" {
		t.Fatalf("csv: %q", recs)
	}
	if got := strings.Join(recs[1], ","); got != "latency,sesame knock,p50,300,us" {
		t.Errorf("first csv row %q", got)
	}
}

func TestWritePlots(t *testing.T) {
	rep := sampleReport()
	dir := t.TempDir()
	files, err := rep.res.WritePlots(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"latency-cdf.png", "flood-success.png", "connect-vs-grants.png", "memory-vs-sources.png"}
	if strings.Join(files, " ") != strings.Join(want, " ") {
		t.Fatalf("plots %v, want %v", files, want)
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) < 1000 || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
			t.Errorf("%s: not a PNG (%d bytes)", f, len(b))
		}
	}
	// Nothing measured: nothing drawn, no error.
	var empty Results
	if files, err := empty.WritePlots(t.TempDir()); err != nil || len(files) != 0 {
		t.Errorf("empty results: %v %v", files, err)
	}
}

func TestSummaryAndFormatting(t *testing.T) {
	s := summarize([]float64{5, 1, 4, 2, 3, 6, 7, 8, 9, 10})
	if s.N != 10 || s.P50 != 5 || s.P90 != 9 || s.P99 != 10 || s.Min != 1 || s.Max != 10 {
		t.Errorf("summary %+v", s)
	}
	if e := summarize(nil); !math.IsNaN(e.P50) || ms(e.P50) != "-" {
		t.Errorf("empty summary %+v", e)
	}
	for v, want := range map[float64]string{1234567.891: "1,234,567.9", -1000: "-1,000.0", 12: "12.0", math.NaN(): "-"} {
		if got := num(v, 1); got != want {
			t.Errorf("num(%v) = %q, want %q", v, got, want)
		}
	}
	if got := formatValue(2.5); got != "2.500" {
		t.Errorf("formatValue = %q", got)
	}
}

func TestParseBench(t *testing.T) {
	out := []byte(`goos: linux
BenchmarkHandleValid-1   	   12345	     95000 ns/op	     10526 pkts/core-s
BenchmarkHandleGarbage   	 1000000	       250 ns/op
PASS
`)
	got := parseBench(out)
	if r := got["BenchmarkHandleValid"]; r.perSec != 10526 || r.nsOp != 95000 {
		t.Errorf("valid: %+v", r)
	}
	if r := got["BenchmarkHandleGarbage"]; r.perSec != 4e6 {
		t.Errorf("garbage: %+v", r)
	}
	// -count 3: the median run, and the best.
	got = parseBench([]byte(`BenchmarkOpen 	   21284	    126827 ns/op	      7823 pkts/core-s
BenchmarkOpen 	   35799	     99287 ns/op	     10005 pkts/core-s
BenchmarkOpen 	   17587	    134182 ns/op	      7401 pkts/core-s
`))
	if r := got["BenchmarkOpen"]; r.perSec != 7823 || r.nsOp != 126827 || r.best != 10005 || r.runs != 3 {
		t.Errorf("count 3: %+v", r)
	}
	if s := benchRate(got["BenchmarkOpen"]); s != "7,823 (best 10,005 of 3)" {
		t.Errorf("benchRate = %q", s)
	}
}

func TestParseProc(t *testing.T) {
	stat := "1234 (knockd (x)) S 1 1234 1234 0 -1 4194560 500 0 0 0 150 50 7 3 20 0 1 0 100 0 0"
	d, err := parseStatCPU(stat)
	if err != nil || d != 2100*time.Millisecond {
		t.Errorf("parseStatCPU = %v, %v; want 2.1s", d, err)
	}
	rss, err := parseVmRSS("Name:\tsesame\nVmRSS:\t   23456 kB\nThreads:\t5\n")
	if err != nil || rss != 23456 {
		t.Errorf("parseVmRSS = %v, %v", rss, err)
	}
}

func TestPackets(t *testing.T) {
	src, dst := netip.MustParseAddr("10.224.1.2"), netip.MustParseAddr("10.252.1.1")
	buf := make([]byte, 2048)
	syn := buildSYN(buf, src, dst, 40000, 7000, 1)
	if len(syn) != 40 || syn[9] != protoTCP || syn[33] != 0x02 {
		t.Fatalf("syn % x", syn)
	}
	// A correct checksum sums to 0xffff with the pseudo-header.
	if got := fold(sum16(syn[20:], pseudoSum(src, dst, protoTCP, 20))); got != 0xffff {
		t.Errorf("tcp checksum does not verify: %#x", got)
	}
	if got := fold(sum16(syn[:20], 0)); got != 0xffff {
		t.Errorf("ip checksum does not verify: %#x", got)
	}
	udp := buildUDP(buf, src, dst, 1, 62201, []byte{0xD3, 1, 2})
	if len(udp) != 31 || udp[9] != protoUDP || udp[22] != 0xF2 || udp[23] != 0xF9 || udp[28] != 0xD3 {
		t.Errorf("udp % x", udp)
	}
	p := netip.MustParsePrefix("10.224.0.0/12")
	if a := nthAddr(p, 0x10203); a != netip.MustParseAddr("10.225.2.3") {
		t.Errorf("nthAddr = %v", a)
	}
	if a := nthAddr(p, 1<<20); a != netip.MustParseAddr("10.224.0.0") {
		t.Errorf("nthAddr wraps to %v", a)
	}
	if _, err := parseMix("syn=2,bin"); err != nil {
		t.Error(err)
	}
	if _, err := parseMix("nope"); err == nil {
		t.Error("unknown kind accepted")
	}
}

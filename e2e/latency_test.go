package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/netns"
	"github.com/sesame-gw/sesame/internal/netns/netnstest"
)

// Latency from the last knock leaving the client to the protected port
// answering, for Sesame and for Debian's knockd on the same bench, with the
// same client (sesame knock --wait, probing every 200 µs). Run with
//
//	go test ./e2e -run '^$' -bench KnockToOpen -benchtime 50x
//
// It reports p50/p99 in µs; nothing here fails on time.

var openAfter = regexp.MustCompile(`open after (\d+)us`)

func measureKnocks(b *testing.B, bench *netns.Bench, flush func()) {
	var lat []float64
	for i := 0; i < b.N; i++ {
		flush()
		out, err := bench.Command(context.Background(), bench.Client, sesameBin, "knock", "-v", bench.GW4.String(),
			"7000", "8000", "9000", "--wait", "tcp/2222=3s", "--wait-interval", "200us").CombinedOutput()
		if err != nil {
			b.Fatalf("try %d: %v\n%s", i, err, out)
		}
		m := openAfter.FindSubmatch(out)
		if m == nil {
			b.Fatalf("no timing in %q", out)
		}
		us, _ := strconv.Atoi(string(m[1]))
		lat = append(lat, float64(us))
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	b.ReportMetric(pct(0.5), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(lat[len(lat)-1], "max-µs")
	b.Logf("n=%d p50=%.0fµs p90=%.0fµs p99=%.0fµs max=%.0fµs", len(lat), pct(0.5), pct(0.9), pct(0.99), lat[len(lat)-1])
}

func benchSetup(b *testing.B) *netns.Bench {
	if os.Geteuid() != 0 {
		b.Skip(netnstest.SkipMessage)
	}
	bench := netnstest.New(b, netns.Options{Name: "sbench"})
	netnstest.RequireBinary(b, "nft")
	for _, a := range []netip.Addr{bench.GW4} {
		if _, err := bench.ServeTCP(bench.GW, netip.AddrPortFrom(a, 2222), []byte("hi\n")); err != nil {
			b.Fatal(err)
		}
	}
	return bench
}

func BenchmarkKnockToOpenSesame(b *testing.B) {
	bench := benchSetup(b)
	cfg := fmt.Sprintf("[gateway]\nstate_dir = %q\n[[door]]\nname = \"ssh\"\nsequence = [\"7000\", \"8000\", \"9000\"]\nseq_timeout = \"5s\"\nopen = [\"2222/tcp\"]\nduration = \"30s\"\n", b.TempDir())
	path := filepath.Join(b.TempDir(), "sesame.toml")
	os.WriteFile(path, []byte(cfg), 0o600)
	ownControlSocketFile(b, path, controlSocket(b))
	p := serveForBench(b, bench, "-c", path)
	measureKnocks(b, bench, func() {
		bench.Command(context.Background(), bench.GW, "nft", "flush", "set", "inet", "sesame", "grants4").Run()
	})
	if f := os.Getenv("SESAME_BENCH_LOG"); f != "" {
		os.WriteFile(f, p.Output(), 0o644)
	}
}

func BenchmarkKnockToOpenKnockd(b *testing.B) {
	bench := benchSetup(b)
	netnstest.RequireBinary(b, "knockd")
	dir := b.TempDir()
	// The usual knockd setup: a drop-policy table whose set the
	// start_command fills with nft, as in ../shared/bench.
	rules := `table inet kbench {
	set allowed { type ipv4_addr . inet_service; flags timeout; }
	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related accept
		iifname "lo" accept
		meta l4proto { icmp, ipv6-icmp } accept
		ip saddr . tcp dport @allowed accept
	}
}
`
	os.WriteFile(filepath.Join(dir, "kbench.nft"), []byte(rules), 0o600)
	if out, err := bench.Command(context.Background(), bench.GW, "nft", "-f", filepath.Join(dir, "kbench.nft")).CombinedOutput(); err != nil {
		b.Fatalf("%v %s", err, out)
	}
	nft, _ := execLookPath("nft")
	conf := fmt.Sprintf("[options]\n\tLogFile = %s/knockd.log\n[open2222]\n\tsequence = 7000,8000,9000\n\tseq_timeout = 5\n\ttcpflags = syn\n\tstart_command = %s add element inet kbench allowed { %%IP%% . 2222 timeout 30s }\n", dir, nft)
	os.WriteFile(filepath.Join(dir, "knockd.conf"), []byte(conf), 0o600)
	p, err := bench.Start(bench.GW, "knockd", "-4", "-v", "-i", netns.GWIf, "-c", filepath.Join(dir, "knockd.conf"), "-p", filepath.Join(dir, "knockd.pid"))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitOutput(ctx, "listening on"); err != nil {
		b.Fatal(err)
	}
	measureKnocks(b, bench, func() {
		bench.Command(context.Background(), bench.GW, "nft", "flush", "set", "inet", "kbench", "allowed").Run()
	})
}

package main

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// The traffic scenarios run against one peer on its rig. Each records rows
// in the report and keeps what the tables and plots need.

// subjectRecord is what one subject (a daemon and a method) measured.
type subjectRecord struct {
	peer             string
	latency          []float64
	latFails, tries  int
	floodOK, floodN  int
	floodLat         []float64
	floodPPS         float64
	floodCPU         float64 // daemon CPU, % of one core, during the flood
	floodSent        uint64
	floodSeconds     float64
	floodRunForPeers bool
}

// peerRecord is what one daemon measured, method-independent.
type peerRecord struct {
	idleCPU    float64 // % of one core
	idleFor    time.Duration
	mem        []MemPoint
	memRate    float64 // spoofed packets per second reached
	memSources int
	floodRSS   float64 // KiB, right after the flood's tries
}

// report gathers everything across peers.
type report struct {
	res      Results
	floodMix string
	order    []string // subjects in run order
	subjects map[string]*subjectRecord
	peers    map[string]*peerRecord
	peerList []string
	rate     []rateRecord
	grants   []grantRecord
	bench    []benchRecord
}

func newReport() *report {
	return &report{subjects: map[string]*subjectRecord{}, peers: map[string]*peerRecord{}}
}

func (rep *report) subject(name, peer string) *subjectRecord {
	s, ok := rep.subjects[name]
	if !ok {
		s = &subjectRecord{peer: peer}
		rep.subjects[name] = s
		rep.order = append(rep.order, name)
	}
	return s
}

func (rep *report) peer(name string) *peerRecord {
	p, ok := rep.peers[name]
	if !ok {
		p = &peerRecord{}
		rep.peers[name] = p
		rep.peerList = append(rep.peerList, name)
	}
	return p
}

// idle measures the daemon's CPU over e.opts.idle with no traffic at all.
func idle(ctx context.Context, e *env, p peer, rep *report) error {
	time.Sleep(time.Second) // let start-up work finish
	c0, err := cpuTime(p.pid())
	if err != nil {
		return err
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(e.opts.idle):
	}
	c1, err := cpuTime(p.pid())
	if err != nil {
		return err
	}
	wall := time.Since(t0)
	cpu := 100 * (c1 - c0).Seconds() / wall.Seconds()
	pr := rep.peer(p.name())
	pr.idleCPU, pr.idleFor = cpu, wall
	rep.res.Add("idle", p.name(), "cpu", cpu, "% of one core")
	rep.res.Add("idle", p.name(), "cpu_seconds", (c1 - c0).Seconds(), "s")
	e.log.Info("idle", "peer", p.name(), "cpu%", fmt.Sprintf("%.3f", cpu), "over", wall.Round(time.Millisecond))
	return nil
}

// tries runs n tries of m, resetting the grants before each; it returns
// the latencies of the successes (µs) and the number of failures.
func tries(ctx context.Context, r *rig, p peer, m method, n int, timeout time.Duration) ([]float64, int, error) {
	var lat []float64
	fails := 0
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return lat, fails, err
		}
		if err := p.reset(ctx, r); err != nil {
			return lat, fails, err
		}
		req, err := m.request(r)
		if err != nil {
			return lat, fails, err
		}
		req.TimeoutMS, req.IntervalUS = int(timeout.Milliseconds()), 200
		resp, err := r.do(req)
		if err != nil {
			return lat, fails, err
		}
		if resp.OK {
			lat = append(lat, resp.US)
		} else {
			fails++
		}
		time.Sleep(m.pace)
	}
	return lat, fails, nil
}

// latency: e.opts.tries tries of every method, one at a time.
func latency(ctx context.Context, e *env, r *rig, p peer, rep *report) error {
	for _, m := range p.methods() {
		lat, fails, err := tries(ctx, r, p, m, e.opts.tries, 3*time.Second)
		if err != nil {
			return fmt.Errorf("%s: %w", m.subject, err)
		}
		s := rep.subject(m.subject, p.name())
		s.latency, s.latFails, s.tries = lat, fails, e.opts.tries
		rep.res.AddLatency(m.subject, lat)
		sum := summarize(lat)
		for _, q := range []struct {
			name string
			v    float64
		}{{"p50", sum.P50}, {"p90", sum.P90}, {"p99", sum.P99}, {"max", sum.Max}} {
			rep.res.Add("latency", m.subject, q.name, q.v, "us")
		}
		rep.res.Add("latency", m.subject, "failures", float64(fails), "tries")
		e.log.Info("latency", "subject", m.subject, "n", sum.N, "p50", ms(sum.P50)+"ms", "p99", ms(sum.P99)+"ms", "fails", fails)
	}
	return nil
}

// floodPrefix is the /16 of the spoofed prefix the flood comes from.
func floodPrefix(e *env) string {
	p := e.spoof.Masked()
	if p.Bits() < 16 {
		p = netip.PrefixFrom(p.Addr(), 16).Masked()
	}
	return p.String()
}

// flood: a garbage flood at the highest rate the generator reaches (random
// binary UDP, UDP with the native magic, fwknop-shaped base64 to the SPA
// port, SYNs to the knock ports, random sources from a /16) while the
// legitimate client tries every method e.opts.floodTries times, once each
// (no resend), with e.opts.floodTimeout to see the port open.
func flood(ctx context.Context, e *env, r *rig, p peer, rep *report) error {
	argv := []string{e.self, "flood", "-src", floodPrefix(e), "-dst", r.b.GW4.String(),
		"-spa-port", strconv.Itoa(spaPort), "-knock-ports", "7000,8000,9000", "-mix", e.opts.floodMix,
		"-threads", strconv.Itoa(e.opts.floodThreads), "-seconds", e.opts.floodMax.String(),
		"-packets", strconv.FormatUint(e.opts.floodPackets, 10)}
	f, err := startHelper(ctx, r.b, r.b.Client, argv...)
	if err != nil {
		return err
	}
	defer f.stop()
	time.Sleep(time.Second) // the flood reaches its rate
	c0, _ := cpuTime(p.pid())
	t0 := time.Now()
	for _, m := range p.methods() {
		lat, fails, err := tries(ctx, r, p, m, e.opts.floodTries, e.opts.floodTimeout)
		if err != nil {
			return fmt.Errorf("%s under flood: %w", m.subject, err)
		}
		s := rep.subject(m.subject, p.name())
		s.floodOK, s.floodN, s.floodLat = len(lat), e.opts.floodTries, lat
		rep.res.Flood = append(rep.res.Flood, FloodPoint{Subject: m.subject, OK: len(lat), Tries: e.opts.floodTries})
		rep.res.Add("flood", m.subject, "legit_ok", float64(len(lat)), "tries")
		rep.res.Add("flood", m.subject, "legit_tries", float64(e.opts.floodTries), "tries")
		sum := summarize(lat)
		rep.res.Add("flood", m.subject, "p50", sum.P50, "us")
		rep.res.Add("flood", m.subject, "p99", sum.P99, "us")
		e.log.Info("flood", "subject", m.subject, "ok", len(lat), "tries", e.opts.floodTries, "fails", fails, "p50", ms(sum.P50)+"ms")
	}
	c1, _ := cpuTime(p.pid())
	wall := time.Since(t0)
	if rss, err := rssKiB(p.pid()); err == nil {
		rep.peer(p.name()).floodRSS = rss
		rep.res.Add("flood", p.name(), "rss_after_flood", rss/1024, "MiB")
	}
	f.in.Close()
	sent, secs := readDone(f)
	cpu := 100 * (c1 - c0).Seconds() / wall.Seconds()
	for _, m := range p.methods() {
		s := rep.subjects[m.subject]
		s.floodCPU, s.floodSent, s.floodSeconds = cpu, sent, secs
		if secs > 0 {
			s.floodPPS = float64(sent) / secs
		}
		rep.res.Add("flood", m.subject, "flood_pps", s.floodPPS, "packets/s")
		rep.res.Add("flood", m.subject, "daemon_cpu", cpu, "% of one core")
	}
	e.log.Info("flood done", "peer", p.name(), "sent", sent, "pps", int(float64(sent)/max(secs, 1e-9)), "daemon_cpu%", int(cpu))
	time.Sleep(500 * time.Millisecond)
	return nil
}

// readDone reads the generator's output up to its "done" line and returns
// the packets sent and the seconds it ran.
func readDone(f *helper) (uint64, float64) {
	for {
		line, err := f.out.ReadString('\n')
		if strings.HasPrefix(line, "done ") {
			var sent, nanos, errs uint64
			fmt.Sscanf(line, "done %d %d %d", &sent, &nanos, &errs)
			return sent, float64(nanos) / 1e9
		}
		if err != nil {
			return 0, 0
		}
	}
}

// memory: e.opts.memSources distinct spoofed sources each knock once (a
// SYN to the first knock port) and send one fwknop-shaped datagram, as
// fast as the generator goes; the daemon's RSS is sampled along the way.
func memory(ctx context.Context, e *env, r *rig, p peer, rep *report) error {
	n := e.opts.memSources
	progress := max(n/20, 1000)
	argv := []string{e.self, "flood", "-src", e.spoof.String(), "-dst", r.b.GW4.String(),
		"-spa-port", strconv.Itoa(spaPort), "-knock-ports", "7000", "-mix", "syn,b64", "-sequential", "-per-source", "2",
		"-threads", strconv.Itoa(e.opts.floodThreads), "-seconds", e.opts.floodMax.String(),
		"-packets", strconv.Itoa(2 * n), "-progress", strconv.Itoa(2 * progress)}
	rss0, err := rssKiB(p.pid())
	if err != nil {
		return err
	}
	pr := rep.peer(p.name())
	pr.mem = append(pr.mem, MemPoint{0, rss0})
	rep.res.AddMemory(p.name(), MemPoint{0, rss0})
	f, err := startHelper(ctx, r.b, r.b.Client, argv...)
	if err != nil {
		return err
	}
	defer f.stop()
	var sent uint64
	var secs float64
	for {
		line, err := f.out.ReadString('\n')
		var a, b uint64
		if _, perr := fmt.Sscanf(line, "progress %d %d", &a, &b); perr == nil {
			if rss, err := rssKiB(p.pid()); err == nil {
				pt := MemPoint{int(a / 2), rss}
				pr.mem = append(pr.mem, pt)
				rep.res.AddMemory(p.name(), pt)
			}
			continue
		}
		if strings.HasPrefix(line, "done ") {
			var errs uint64
			fmt.Sscanf(line, "done %d %d %d", &sent, &b, &errs)
			secs = float64(b) / 1e9
			break
		}
		if err != nil {
			break
		}
	}
	time.Sleep(time.Second)
	if rss, err := rssKiB(p.pid()); err == nil {
		pt := MemPoint{int(sent / 2), rss}
		pr.mem = append(pr.mem, pt)
		rep.res.AddMemory(p.name(), pt)
	}
	pr.memSources = int(sent / 2)
	if secs > 0 {
		pr.memRate = float64(sent) / secs
	}
	maxRSS := 0.0
	for _, m := range pr.mem {
		maxRSS = math.Max(maxRSS, m.RSSKiB)
	}
	rep.res.Add("memory", p.name(), "sources", float64(pr.memSources), "sources")
	rep.res.Add("memory", p.name(), "rss_start", rss0/1024, "MiB")
	rep.res.Add("memory", p.name(), "rss_max", maxRSS/1024, "MiB")
	rep.res.Add("memory", p.name(), "packets_per_s", pr.memRate, "packets/s")
	e.log.Info("memory", "peer", p.name(), "sources", pr.memSources, "rss_start_MiB", int(rss0/1024), "rss_max_MiB", int(maxRSS/1024))
	// Let the per-source knock state time out (seq_timeout 5 s) before the
	// next scenario uses the same daemon.
	time.Sleep(6 * time.Second)
	return nil
}

package main

import (
	"fmt"
	"math"
	"strings"
)

// buildTables turns the report into the Markdown tables, the goals summary
// first.
func buildTables(rep *report) {
	r := &rep.res
	r.Tables = nil
	var lat, fl Table
	lat = Table{Title: "1. Latency: last knock / SPA packet sent → port reachable",
		Header: []string{"subject", "tries", "failed", "p50 ms", "p90 ms", "p99 ms", "max ms"},
		Note:   "Same client for every daemon: the bench agent sends, then starts a fresh non-blocking connect every 200 µs (client.WaitTCP); grants are flushed before each try."}
	fl = Table{Title: "3. Flood: legitimate opens during a garbage flood",
		Header: []string{"subject", "legit opened", "p50 ms", "p99 ms", "flood packets/s", "daemon CPU (% of a core)"},
		Note:   "Flood mix `" + rep.floodMix + "` (syn: SYNs to 7000-9000/tcp; bin: random binary UDP of random length to 62201/udp; d3: UDP with the native magic and version; b64: fwknop-shaped base64), from random sources of a /16, sent from the client namespace by a raw-socket generator on one thread (the kernel's receive path runs on the sender's CPU, so the generator and the gateway's netfilter share one of the two vCPUs, the daemon gets the other). A legitimate try sends once (no resend) and counts as opened when the port answers within the flood timeout."}
	for _, name := range rep.order {
		s := rep.subjects[name]
		if s.tries > 0 {
			sum := summarize(s.latency)
			lat.Rows = append(lat.Rows, []string{name, fmt.Sprint(s.tries), fmt.Sprint(s.latFails), ms(sum.P50), ms(sum.P90), ms(sum.P99), ms(sum.Max)})
		}
		if s.floodN > 0 {
			sum := summarize(s.floodLat)
			fl.Rows = append(fl.Rows, []string{name, pct(s.floodOK, s.floodN), ms(sum.P50), ms(sum.P99), num(s.floodPPS, 0), num(s.floodCPU, 0)})
		}
	}
	var tp Table
	if len(rep.bench) > 0 || len(rep.rate) > 0 {
		tp = Table{Title: "2. Throughput", Header: []string{"path", "what", "packets per core-second: median (best) of the runs", "goal"},
			Note: "Hot paths: `go test -bench -cpu 1 -count N` of the repository's benchmarks (CPU time when they report pkts/core-s); the median run is judged against the goal, the best run is shown beside it. End to end: valid packets, each from its own spoofed source, through NFLOG, the worker pool, verification, the replay record and a batched grant; counted in the kernel's grant set."}
		for _, b := range rep.bench {
			tp.Rows = append(tp.Rows, []string{"`" + strings.TrimPrefix(b.spec.pkg, "./internal/") + "." + b.spec.name + "`", b.spec.what, benchRate(b), b.spec.goal})
		}
		for _, x := range rep.rate {
			tp.Rows = append(tp.Rows, []string{"end to end: " + x.subject,
				fmt.Sprintf("%s sent at %s/s, %s granted in %v", num(float64(x.sent), 0), num(x.offered, 0), num(float64(x.granted), 0), x.wall.Round(1e6)),
				fmt.Sprintf("%s per daemon CPU-second (%s/s wall)", num(x.perCPUs, 0), num(x.perSecond, 0)), ""})
		}
	}
	var gr Table
	if len(rep.grants) > 0 {
		gr = Table{Title: "4. Scale of grants: new connection setup time vs live grants",
			Header: []string{"backend", "live grants", "connect p50 µs", "connect p99 µs", "one more grant (µs)", "bulk install rate", "one grant per transaction/command"},
			Note:   "Sesame: grants are elements of one nftables set (hash lookup); installed here through internal/firewall/nftables into the running daemon's table, 1,000 per transaction as the daemon's writer batches. Baseline: what fwknopd does, one iptables-nft rule per grant in FWKNOP_INPUT, the client's rule last; levels filled with iptables-nft-restore, and fwknopd's own way (a forked iptables per grant) timed separately."}
		for _, g := range rep.grants {
			bulk := "-"
			if g.installRate > 0 {
				bulk = num(g.installRate, 0) + " grants/s"
			} else if g.installNotes != "" {
				bulk = g.installNotes
			}
			unit := " grants/s"
			if strings.HasPrefix(g.backend, "iptables") {
				unit = " rules/s (fork)"
			}
			gr.Rows = append(gr.Rows, []string{g.backend, num(float64(g.grants), 0), num(g.connect.P50, 0), num(g.connect.P99, 0), num(g.singleGrant, 0), bulk, num(g.singleRate, 0) + unit})
		}
	}
	var mem, idl Table
	mem = Table{Title: "5. Memory while distinct spoofed sources knock",
		Header: []string{"daemon", "sources", "spoofed packets/s", "RSS before (MiB)", "RSS max (MiB)", "RSS after (MiB)", "RSS after the flood (MiB)"},
		Note:   "Each source sends one SYN to the first knock port (7000/tcp) and one fwknop-shaped datagram to 62201/udp; sources walk the spoofed prefix in order. fwknopd keeps no per-source state for knocks and is not run."}
	idl = Table{Title: "6. Idle CPU", Header: []string{"daemon", "CPU (% of one core)", "over"},
		Note: "utime+stime of the daemon and its reaped children (/proc/PID/stat) with no traffic at all."}
	for _, name := range rep.peerList {
		p := rep.peers[name]
		if len(p.mem) > 0 {
			first, last := p.mem[0].RSSKiB, p.mem[len(p.mem)-1].RSSKiB
			top := 0.0
			for _, m := range p.mem {
				top = math.Max(top, m.RSSKiB)
			}
			mem.Rows = append(mem.Rows, []string{name, num(float64(p.memSources), 0), num(p.memRate, 0), num(first/1024, 1), num(top/1024, 1), num(last/1024, 1), num(p.floodRSS/1024, 1)})
		}
		if p.idleFor > 0 {
			idl.Rows = append(idl.Rows, []string{name, num(p.idleCPU, 3), p.idleFor.Round(1e8).String()})
		}
	}
	for _, t := range []Table{lat, tp, fl, gr, mem, idl} {
		if len(t.Rows) > 0 {
			r.Tables = append(r.Tables, t)
		}
	}
	r.Goals = goals(rep)
}

// goals is the summary: each goal of issue 6, Sesame's figure, the peers'
// and whether the goal holds.
func goals(rep *report) Table {
	t := Table{Title: "Goals (issue 6)", Header: []string{"goal", "target", "Sesame", "peers", "met"}}
	// 1. latency
	for _, m := range []string{"sesame knock", "sesame spa", "sesame fwknop"} {
		s, ok := rep.subjects[m]
		if !ok || s.tries == 0 {
			continue
		}
		sum := summarize(s.latency)
		var peers []string
		for _, name := range rep.order {
			if p := rep.subjects[name]; p.peer != "sesame" && p.tries > 0 {
				ps := summarize(p.latency)
				peers = append(peers, fmt.Sprintf("%s %s / %s", name, ms(ps.P50), ms(ps.P99)))
			}
		}
		ok = sum.N > 0 && s.latFails == 0 && sum.P50 <= 1000 && sum.P99 <= 5000
		t.Rows = append(t.Rows, []string{"1. latency " + strings.TrimPrefix(m, "sesame "), "p50 ≤ 1 ms, p99 ≤ 5 ms",
			fmt.Sprintf("%s / %s ms", ms(sum.P50), ms(sum.P99)), strings.Join(peers, "; "), verdict(true, ok)})
	}
	// 2. throughput
	for _, b := range rep.bench {
		if b.spec.goalValue == 0 {
			continue
		}
		t.Rows = append(t.Rows, []string{"2. " + b.spec.what, b.spec.goal + " /core-s", benchRate(b), "", verdict(true, b.perSec >= b.spec.goalValue)})
	}
	// 3. flood
	for _, m := range []string{"sesame knock", "sesame spa", "sesame fwknop"} {
		s, ok := rep.subjects[m]
		if !ok || s.floodN == 0 {
			continue
		}
		var peers []string
		for _, name := range rep.order {
			if p := rep.subjects[name]; p.peer != "sesame" && p.floodN > 0 {
				peers = append(peers, name+" "+pct(p.floodOK, p.floodN))
			}
		}
		need := int(math.Ceil(0.99 * float64(s.floodN)))
		t.Rows = append(t.Rows, []string{"3. flood " + strings.TrimPrefix(m, "sesame "), fmt.Sprintf("≥ 99%% (%s pkt/s)", num(s.floodPPS, 0)),
			pct(s.floodOK, s.floodN), strings.Join(peers, "; "), verdict(true, s.floodOK >= need)})
	}
	// 4. grants
	var s0, sMax, i0, iMax *grantRecord
	for i := range rep.grants {
		g := &rep.grants[i]
		if strings.HasPrefix(g.backend, "sesame") {
			if s0 == nil || g.grants < s0.grants {
				s0 = g
			}
			if sMax == nil || g.grants > sMax.grants {
				sMax = g
			}
		} else {
			if i0 == nil || g.grants < i0.grants {
				i0 = g
			}
			if iMax == nil || g.grants > iMax.grants {
				iMax = g
			}
		}
	}
	if s0 != nil && sMax != nil && sMax != s0 {
		peer := ""
		if i0 != nil && iMax != nil {
			peer = fmt.Sprintf("iptables: p50 %s µs at %s → %s µs at %s", num(i0.connect.P50, 0), num(float64(i0.grants), 0), num(iMax.connect.P50, 0), num(float64(iMax.grants), 0))
		}
		flat := sMax.connect.P50 <= 1.5*s0.connect.P50+50
		t.Rows = append(t.Rows, []string{"4. connect time flat in grants", "flat from 0 to " + num(float64(sMax.grants), 0),
			fmt.Sprintf("p50 %s µs → %s µs", num(s0.connect.P50, 0), num(sMax.connect.P50, 0)), peer, verdict(true, flat)})
		rate := 0.0
		for _, g := range rep.grants {
			if strings.HasPrefix(g.backend, "sesame") && g.installRate > rate {
				rate = g.installRate
			}
		}
		ipr := ""
		if i0 != nil {
			ipr = num(i0.singleRate, 0) + " rules/s (forked iptables)"
		}
		t.Rows = append(t.Rows, []string{"4. grant installation", "≥ 10,000 grants/s", num(rate, 0) + " grants/s", ipr, verdict(rate > 0, rate >= 10000)})
	}
	// 5. memory
	if p, ok := rep.peers["sesame"]; ok && len(p.mem) > 0 {
		top := 0.0
		for _, m := range p.mem {
			top = math.Max(top, m.RSSKiB)
		}
		peer := ""
		if k, ok := rep.peers["knockd"]; ok && len(k.mem) > 0 {
			kt := 0.0
			for _, m := range k.mem {
				kt = math.Max(kt, m.RSSKiB)
			}
			peer = fmt.Sprintf("knockd %s MiB", num(kt/1024, 1))
		}
		t.Rows = append(t.Rows, []string{"5. memory, " + num(float64(p.memSources), 0) + " sources", "≤ 64 MiB", num(top/1024, 1) + " MiB", peer, verdict(true, top <= 64*1024)})
	}
	// 6. idle
	if p, ok := rep.peers["sesame"]; ok && p.idleFor > 0 {
		var peers []string
		for _, name := range rep.peerList {
			if name != "sesame" && rep.peers[name].idleFor > 0 {
				peers = append(peers, fmt.Sprintf("%s %s%%", name, num(rep.peers[name].idleCPU, 3)))
			}
		}
		t.Rows = append(t.Rows, []string{"6. idle CPU", "~0 %", num(p.idleCPU, 3) + " %", strings.Join(peers, "; "), verdict(true, p.idleCPU < 0.1)})
	}
	return t
}

// benchRate is a hot path's rate: the median run's, with the best run's
// when there were several ("9,870 (best 10,410 of 5)").
func benchRate(b benchRecord) string {
	if b.runs <= 1 {
		return num(b.perSec, 0)
	}
	return fmt.Sprintf("%s (best %s of %d)", num(b.perSec, 0), num(b.best, 0), b.runs)
}

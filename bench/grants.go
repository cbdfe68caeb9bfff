package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sesame-gw/sesame/internal/firewall"
	"github.com/sesame-gw/sesame/internal/firewall/nftables"
	"github.com/sesame-gw/sesame/internal/service"
)

// Scale of grants (goal 4) and the end-to-end verification rate (goal 2).

var svc2222 = service.Service{Proto: service.TCP, Port: svcPort}

// gwFirewall opens Sesame's nftables table in the rig's gateway namespace
// (the running daemon's table) through the same package the daemon uses.
func gwFirewall(r *rig) (*nftables.Firewall, func(), error) {
	fd, err := unix.Open("/run/netns/"+r.b.GW, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	fw, err := nftables.New(nftables.WithNetNS(fd))
	if err != nil {
		unix.Close(fd)
		return nil, nil, err
	}
	return fw, func() { fw.Close(); unix.Close(fd) }, nil
}

// grantRecord is one point of the grants scenario.
type grantRecord struct {
	backend      string
	grants       int
	connect      summary // µs
	installRate  float64 // grants per second reaching this level (bulk)
	singleRate   float64 // one grant per transaction / per forked command, per second
	singleGrant  float64 // µs for one more grant at this level
	installNotes string
}

// connects times e.opts.connects fresh TCP connections from the client.
func connects(e *env, r *rig) (summary, error) {
	resp, err := r.do(agentReq{Op: "connect", Dst: r.b.GW4, Wait: svcPort, Count: e.opts.connects, TimeoutMS: 2000})
	if err != nil {
		return summary{}, err
	}
	if !resp.OK {
		return summary{}, fmt.Errorf("connect: %s (after %d)", resp.Err, len(resp.Samples))
	}
	return summarize(resp.Samples), nil
}

// grantsSesame fills Sesame's grant set to each level of e.opts.grantLevels
// (batches of 1,000 in one transaction each, as the daemon's writer
// batches), grants the client, and times new connections.
func grantsSesame(ctx context.Context, e *env, r *rig, rep *report) error {
	fw, closeFW, err := gwFirewall(r)
	if err != nil {
		return err
	}
	defer closeFW()
	defer runIn(context.Background(), r.b, r.b.GW, "nft", "flush", "set", "inet", "sesame", "grants4")
	gp := e.spoof.Masked()
	have := 0
	// One grant per transaction: the unbatched cost.
	const singles = 2000
	t0 := time.Now()
	for i := range singles {
		g := []firewall.Grant{{Addr: nthAddr(gp, uint32(i)), Service: svc2222, TTL: 10 * time.Minute}}
		if err := fw.Grant(ctx, g); err != nil {
			return err
		}
	}
	singleRate := singles / time.Since(t0).Seconds()
	if _, err := runIn(ctx, r.b, r.b.GW, "nft", "flush", "set", "inet", "sesame", "grants4"); err != nil {
		return err
	}
	for _, level := range e.opts.grantLevels {
		start := time.Now()
		for have < level {
			n := min(1000, level-have)
			batch := make([]firewall.Grant, n)
			for i := range batch {
				batch[i] = firewall.Grant{Addr: nthAddr(gp, uint32(have+i)), Service: svc2222, TTL: 10 * time.Minute}
			}
			if err := fw.Grant(ctx, batch); err != nil {
				return fmt.Errorf("granting to %d: %w", level, err)
			}
			have += n
		}
		rate := 0.0
		if took := time.Since(start); level > 0 && took > 0 {
			rate = float64(level-(have-level)) / took.Seconds()
		}
		t1 := time.Now()
		if err := fw.Grant(ctx, []firewall.Grant{{Addr: r.b.Client4, Service: svc2222, TTL: 10 * time.Minute}}); err != nil {
			return err
		}
		one := float64(time.Since(t1).Microseconds())
		sum, err := connects(e, r)
		if err != nil {
			return fmt.Errorf("sesame at %d grants: %w", level, err)
		}
		rec := grantRecord{backend: "sesame (nft set)", grants: level, connect: sum, singleGrant: one, singleRate: singleRate}
		rep.grants = append(rep.grants, rec)
		rep.res.Grants = append(rep.res.Grants, GrantPoint{Backend: rec.backend, Grants: level, P50: sum.P50, P99: sum.P99})
		rep.res.Add("grants", rec.backend, fmt.Sprintf("connect_p50@%d", level), sum.P50, "us")
		rep.res.Add("grants", rec.backend, fmt.Sprintf("connect_p99@%d", level), sum.P99, "us")
		rep.res.Add("grants", rec.backend, fmt.Sprintf("one_grant@%d", level), one, "us")
		if rate > 0 {
			rep.grants[len(rep.grants)-1].installRate = rate
			rep.res.Add("grants", rec.backend, fmt.Sprintf("install_rate_to_%d", level), rate, "grants/s")
		}
		e.log.Info("grants", "backend", rec.backend, "grants", level, "connect_p50_us", int(sum.P50), "install_rate", int(rate))
	}
	rep.res.Add("grants", "sesame (nft set)", "single_grant_rate", singleRate, "grants/s")
	return nil
}

// grantsIptables is the baseline fwknopd uses: one iptables rule per grant
// in FWKNOP_INPUT (iptables-nft, Debian's default), walked in order by
// every new connection. The client's rule is the last one (a grant made
// after the others). Levels are filled with iptables-nft-restore (fast);
// the fork-per-grant cost fwknopd pays is timed separately.
func grantsIptables(ctx context.Context, e *env, r *rig, rep *report) error {
	ipt := []string{"iptables-nft"}
	for _, args := range [][]string{
		{"-N", "FWKNOP_INPUT"},
		{"-A", "INPUT", "-j", "FWKNOP_INPUT"},
		{"-A", "INPUT", "-p", "tcp", "--dport", strconv.Itoa(svcPort), "-j", "DROP"},
	} {
		if _, err := runIn(ctx, r.b, r.b.GW, append(ipt, args...)...); err != nil {
			return err
		}
	}
	rule := func(a netip.Addr) []string {
		return []string{"-s", a.String() + "/32", "-p", "tcp", "-m", "tcp", "--dport", strconv.Itoa(svcPort), "-j", "ACCEPT"}
	}
	gp := e.spoof.Masked()
	// Forked iptables per grant, as fwknopd does (on an empty chain).
	const forks = 100
	t0 := time.Now()
	for i := range forks {
		if _, err := runIn(ctx, r.b, r.b.GW, append(append(ipt, "-A", "FWKNOP_INPUT"), rule(nthAddr(gp, uint32(i)))...)...); err != nil {
			return err
		}
	}
	forkRate := forks / time.Since(t0).Seconds()
	if _, err := runIn(ctx, r.b, r.b.GW, "iptables-nft", "-F", "FWKNOP_INPUT"); err != nil {
		return err
	}
	have := 0
	clientIn := false
	for _, level := range e.opts.grantLevels {
		if clientIn {
			if _, err := runIn(ctx, r.b, r.b.GW, append(append(ipt, "-D", "FWKNOP_INPUT"), rule(r.b.Client4)...)...); err != nil {
				return err
			}
		}
		start := time.Now()
		if level > have {
			var sb strings.Builder
			sb.WriteString("*filter\n")
			for i := have; i < level; i++ {
				sb.WriteString("-A FWKNOP_INPUT " + strings.Join(rule(nthAddr(gp, uint32(i))), " ") + "\n")
			}
			sb.WriteString("COMMIT\n")
			path := filepath.Join(r.dir, "rules.txt")
			if err := os.WriteFile(path, []byte(sb.String()), 0o600); err != nil {
				return err
			}
			if _, err := runIn(ctx, r.b, r.b.GW, "sh", "-c", "iptables-nft-restore --noflush < "+path); err != nil {
				return err
			}
			have = level
		}
		bulk := time.Since(start)
		t1 := time.Now()
		if _, err := runIn(ctx, r.b, r.b.GW, append(append(ipt, "-A", "FWKNOP_INPUT"), rule(r.b.Client4)...)...); err != nil {
			return err
		}
		one := float64(time.Since(t1).Microseconds())
		clientIn = true
		sum, err := connects(e, r)
		if err != nil {
			return fmt.Errorf("iptables at %d rules: %w", level, err)
		}
		rec := grantRecord{backend: "iptables rule per grant", grants: level, connect: sum, singleGrant: one, singleRate: forkRate}
		if level > 0 {
			rec.installNotes = fmt.Sprintf("bulk restore %v", bulk.Round(time.Millisecond))
		}
		rep.grants = append(rep.grants, rec)
		rep.res.Grants = append(rep.res.Grants, GrantPoint{Backend: rec.backend, Grants: level, P50: sum.P50, P99: sum.P99})
		rep.res.Add("grants", rec.backend, fmt.Sprintf("connect_p50@%d", level), sum.P50, "us")
		rep.res.Add("grants", rec.backend, fmt.Sprintf("connect_p99@%d", level), sum.P99, "us")
		rep.res.Add("grants", rec.backend, fmt.Sprintf("one_grant@%d", level), one, "us")
		e.log.Info("grants", "backend", rec.backend, "grants", level, "connect_p50_us", int(sum.P50), "one_rule_us", int(one))
	}
	rep.res.Add("grants", "iptables rule per grant", "forked_rule_rate", forkRate, "rules/s")
	return nil
}

// rateRecord is one end-to-end verification run.
type rateRecord struct {
	subject            string
	sent, granted      int
	wall, cpu          time.Duration
	perCPUs, perSecond float64
	offered            float64
}

// e2eRate sends n valid packets, each from its own spoofed source, at pps,
// and counts the grants that reach the kernel: the whole path (capture,
// verification, replay record, policy, batched grant).
func e2eRate(ctx context.Context, e *env, r *rig, s *sesamePeer, rep *report, subject string, n int, pps float64) error {
	src := netip.PrefixFrom(nthAddr(e.spoof.Masked(), 1<<16), 16) // the second /16
	var sb strings.Builder
	for i := range n {
		var pkt []byte
		var err error
		if subject == "sesame spa" {
			pkt, err = s.spaPacket(netip.AddrPortFrom(r.b.GW4, spaPort))
		} else {
			pkt, err = s.fwk.packet(nthAddr(src, uint32(i)))
		}
		if err != nil {
			return err
		}
		sb.WriteString(hex.EncodeToString(pkt) + "\n")
	}
	path := filepath.Join(r.dir, "payloads.txt")
	if err := os.WriteFile(path, []byte(sb.String()), 0o600); err != nil {
		return err
	}
	fw, closeFW, err := gwFirewall(r)
	if err != nil {
		return err
	}
	defer closeFW()
	if err := s.reset(ctx, r); err != nil {
		return err
	}
	c0, _ := cpuTime(s.pid())
	t0 := time.Now()
	f, err := startHelper(ctx, r.b, r.b.Client, e.self, "flood", "-src", src.String(), "-dst", r.b.GW4.String(),
		"-spa-port", strconv.Itoa(spaPort), "-payloads", path, "-pps", strconv.FormatFloat(pps, 'f', 0, 64), "-seconds", "60s")
	if err != nil {
		return err
	}
	sent, _ := readDone(f)
	f.stop()
	// Wait until the grant count stops growing for a second.
	count, last, lastChange := 0, -1, time.Now()
	for time.Since(lastChange) < time.Second && time.Since(t0) < 90*time.Second {
		gs, err := fw.List(ctx)
		if err != nil {
			return err
		}
		count = 0
		for _, g := range gs {
			if src.Contains(g.Addr) {
				count++
			}
		}
		if count != last {
			last, lastChange = count, time.Now()
		}
		time.Sleep(100 * time.Millisecond)
	}
	c1, _ := cpuTime(s.pid())
	wall := lastChange.Sub(t0)
	rec := rateRecord{subject: subject, sent: int(sent), granted: count, wall: wall, cpu: c1 - c0, offered: pps}
	if rec.cpu > 0 {
		rec.perCPUs = float64(count) / rec.cpu.Seconds()
	}
	if wall > 0 {
		rec.perSecond = float64(count) / wall.Seconds()
	}
	rep.rate = append(rep.rate, rec)
	rep.res.Add("e2e_rate", subject, "sent", float64(sent), "packets")
	rep.res.Add("e2e_rate", subject, "granted", float64(count), "grants")
	rep.res.Add("e2e_rate", subject, "granted_per_s", rec.perSecond, "grants/s")
	rep.res.Add("e2e_rate", subject, "granted_per_cpu_s", rec.perCPUs, "grants/core-s")
	e.log.Info("e2e rate", "subject", subject, "sent", sent, "granted", count, "per_s", int(rec.perSecond), "per_cpu_s", int(rec.perCPUs))
	return s.reset(ctx, r)
}

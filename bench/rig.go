package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/sesame-gw/sesame/internal/netns"
)

// env is what every scenario shares: options, binaries, the scratch
// directory and the spoofed-source prefix.
type env struct {
	opts      options
	log       *slog.Logger
	sesameBin string
	self      string // this program, run again as `agent` and `flood`
	dir       string
	spoof     netip.Prefix
}

// spoofRouteProto tags the host-namespace blackhole route of the spoofed
// prefix (netns.RouteProto is 83 for the benches' own prefixes).
const spoofRouteProto = 84

// guardSpoof blackholes the spoofed prefix in the host namespace, so that
// nothing this program sends can ever follow the host's default route to
// one of those addresses. It returns the function that removes it.
func guardSpoof(ctx context.Context, p netip.Prefix) (func(), error) {
	// replace: a leftover of a killed run is taken over, not an error.
	args := []string{"route", "replace", "blackhole", p.String(), "proto", strconv.Itoa(spoofRouteProto)}
	if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip %v: %w: %s", args, err, out)
	}
	return func() {
		exec.Command("ip", "route", "del", "blackhole", p.String(), "proto", strconv.Itoa(spoofRouteProto)).Run()
	}, nil
}

// checkSpoofFree refuses a spoofed prefix that overlaps a route or an
// address of the host (other than our own blackhole): spoofing from a real
// network, even inside a namespace, is not what the bench is for.
func checkSpoofFree(ctx context.Context, p netip.Prefix) error {
	out, err := exec.CommandContext(ctx, "ip", "-j", "-4", "route", "show", "table", "all").Output()
	if err != nil {
		return fmt.Errorf("ip route show: %w", err)
	}
	var routes []struct {
		Dst      string `json:"dst"`
		Protocol string `json:"protocol"`
		Type     string `json:"type"`
	}
	if err := json.Unmarshal(out, &routes); err != nil {
		return fmt.Errorf("parse ip -j route: %w", err)
	}
	for _, r := range routes {
		if r.Dst == "default" {
			continue
		}
		rp, err := netip.ParsePrefix(r.Dst)
		if err != nil {
			a, aerr := netip.ParseAddr(r.Dst)
			if aerr != nil {
				continue
			}
			rp = netip.PrefixFrom(a, a.BitLen())
		}
		if rp.Bits() < 9 || !rp.Overlaps(p) {
			continue
		}
		if rp == p && r.Type == "blackhole" && r.Protocol == strconv.Itoa(spoofRouteProto) {
			continue
		}
		return fmt.Errorf("spoofed prefix %s overlaps host route %s (%s): pick another with -spoof", p, r.Dst, r.Type)
	}
	return nil
}

// rig is one bench with one daemon: the namespaces, the protected service
// (a banner on GW4:2222) and the client agent.
type rig struct {
	b     *netns.Bench
	dir   string
	agent *helper
	svc   netip.AddrPort
}

func newRig(ctx context.Context, e *env, name string) (*rig, error) {
	b, err := netns.New(ctx, netns.Options{Name: "sbs", Logger: e.log})
	if err != nil {
		return nil, err
	}
	r := &rig{b: b, dir: filepath.Join(e.dir, name), svc: netip.AddrPortFrom(b.GW4, svcPort)}
	if err := r.setup(ctx, e); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

func (r *rig) setup(ctx context.Context, e *env) error {
	if err := os.MkdirAll(r.dir, 0o700); err != nil {
		return err
	}
	if _, err := r.b.ServeTCP(r.b.GW, r.svc, []byte("hi\n")); err != nil {
		return err
	}
	// Spoofed sources: no reverse-path check in the gateway namespace (a
	// new namespace starts with rp_filter 0; made explicit), and a
	// blackhole for their prefix there too, so that replies (RST, ICMP)
	// die in the gateway namespace instead of asking ARP on the veth.
	steps := [][]string{
		{"sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"},
		{"sysctl", "-qw", "net.ipv4.conf." + netns.GWIf + ".rp_filter=0"},
		{"ip", "route", "add", "blackhole", e.spoof.String()},
	}
	for _, s := range steps {
		if _, err := runIn(ctx, r.b, r.b.GW, s...); err != nil {
			return err
		}
	}
	a, err := startHelper(ctx, r.b, r.b.Client, e.self, "agent")
	if err != nil {
		return err
	}
	r.agent = a
	return nil
}

// do sends one request to the agent and reads its answer.
func (r *rig) do(req agentReq) (agentResp, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return agentResp{}, err
	}
	if _, err := r.agent.in.Write(append(b, '\n')); err != nil {
		return agentResp{}, fmt.Errorf("agent: %w", err)
	}
	line, err := r.agent.out.ReadBytes('\n')
	if err != nil {
		return agentResp{}, fmt.Errorf("agent: %w", err)
	}
	var resp agentResp
	if err := json.Unmarshal(line, &resp); err != nil {
		return agentResp{}, fmt.Errorf("agent said %q: %w", line, err)
	}
	return resp, nil
}

// close stops the agent and tears the bench down (every process it
// started, the namespaces, the host routes).
func (r *rig) close() error {
	if r.agent != nil {
		r.agent.stop()
	}
	return r.b.Close()
}

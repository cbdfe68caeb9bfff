package netns

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// counter spreads the first index candidate of successive benches of one
// process (see candidates).
var counter atomic.Int64

// New builds a bench: it claims an index, removes leftovers of that index,
// blackholes both prefixes in the host namespace, creates the two
// namespaces, the veth pair and the addresses, and waits until both links
// are up. On any failure it removes what it created. ctx bounds the setup
// only. It needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and the ip tool.
func New(ctx context.Context, opts Options) (*Bench, error) {
	if runtime.GOOS != "linux" {
		return nil, fmt.Errorf("netns: %w on %s", errors.ErrUnsupported, runtime.GOOS)
	}
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		return nil, fmt.Errorf("netns: the ip tool (iproute2) is needed: %w", err)
	}
	name := opts.Name
	if name == "" {
		name = DefaultName
	}
	if opts.Index != 0 {
		if _, err := newLayout(name, opts.Index); err != nil {
			return nil, err
		}
	}
	b := &Bench{
		ipPath: ipPath,
		log:    logger(opts.Logger),
		grace:  opts.StopGrace,
		outLim: opts.OutputLimit,
	}
	if b.grace <= 0 {
		b.grace = 3 * time.Second
	}
	if b.outLim <= 0 {
		b.outLim = 1 << 20
	}
	if err := b.setup(ctx, name, opts.Index); err != nil {
		if terr := b.teardown(); terr != nil {
			err = fmt.Errorf("%w (and cleaning up: %w)", err, terr)
		}
		b.closed = true
		return nil, err
	}
	b.spawn = newSpawner()
	b.log.Info("netns bench up", "index", b.Index, "gw", b.GW, "client", b.Client,
		"prefix4", b.Prefix4, "prefix6", b.Prefix6)
	return b, nil
}

// setup does New's work, recording in b what it creates for teardown.
func (b *Bench) setup(ctx context.Context, name string, index int) error {
	l, leftovers, err := b.claim(ctx, name, index)
	if err != nil {
		return err
	}
	b.Index, b.GW, b.Client = l.Index, l.GW, l.Client
	b.Prefix4, b.Prefix6 = l.Prefix4, l.Prefix6
	b.GW4, b.Client4, b.Client4b = l.GW4, l.Client4, l.Client4b
	b.GW6, b.Client6, b.Client6b = l.GW6, l.Client6, l.Client6b

	// Leftovers of a dead holder of this index (we hold its lock now).
	for _, p := range leftovers {
		b.log.Warn("netns removing leftover blackhole route", "prefix", p)
		if err := b.delBlackhole(ctx, p); err != nil {
			return err
		}
	}
	for _, ns := range []string{b.GW, b.Client} {
		if err := b.removeLeftoverNS(ctx, ns); err != nil {
			return err
		}
	}

	// The guard goes in before anything that could send.
	for _, p := range []netip.Prefix{b.Prefix4, b.Prefix6} {
		if _, err := b.ip(ctx, family(p), "route", "add", "blackhole", p.String(), "proto", strconv.Itoa(RouteProto)); err != nil {
			return err
		}
		b.routes = append(b.routes, p)
	}
	for _, ns := range []string{b.GW, b.Client} {
		if _, err := b.ip(ctx, "netns", "add", ns); err != nil {
			return err
		}
		b.created = append(b.created, ns)
	}

	gw, cl := []string{"-n", b.GW}, []string{"-n", b.Client}
	steps := [][]string{
		// Made inside the client namespace, so the host never sees the pair.
		append(cl, "link", "add", ClientIf, "type", "veth", "peer", "name", GWIf),
		append(cl, "link", "set", GWIf, "netns", b.GW),
		append(gw, "link", "set", "lo", "up"),
		append(cl, "link", "set", "lo", "up"),
		append(gw, "addr", "add", pfx(b.GW4, 24), "dev", GWIf),
		append(cl, "addr", "add", pfx(b.Client4, 24), "dev", ClientIf),
		append(cl, "addr", "add", pfx(b.Client4b, 24), "dev", ClientIf),
		// nodad: usable at once, no tentative period.
		append(gw, "addr", "add", pfx(b.GW6, 64), "dev", GWIf, "nodad"),
		append(cl, "addr", "add", pfx(b.Client6, 64), "dev", ClientIf, "nodad"),
		// Deprecated at once: valid and bindable, never a default source.
		append(cl, "addr", "add", pfx(b.Client6b, 64), "dev", ClientIf, "nodad", "preferred_lft", "0"),
		append(gw, "link", "set", GWIf, "up"),
		append(cl, "link", "set", ClientIf, "up"),
	}
	for _, args := range steps {
		if _, err := b.ip(ctx, args...); err != nil {
			return err
		}
	}
	if err := b.waitUp(ctx, b.GW, GWIf); err != nil {
		return err
	}
	return b.waitUp(ctx, b.Client, ClientIf)
}

// claim locks a free index whose prefixes do not collide with the host's
// routes, and returns its layout and the leftover tagged blackholes of it.
// With index != 0 only that index is tried.
func (b *Bench) claim(ctx context.Context, name string, index int) (layout, []netip.Prefix, error) {
	routes4, routes6, err := b.hostRoutes(ctx)
	if err != nil {
		return layout{}, nil, err
	}
	cands := []int{index}
	if index == 0 {
		cands = candidates(os.Getpid(), int(counter.Add(1)))
	}
	var busy int
	for _, idx := range cands {
		l, err := newLayout(name, idx)
		if err != nil {
			return layout{}, nil, err
		}
		if c := conflicts(routes4, routes6, l); c != "" {
			b.log.Debug("netns index skipped", "index", idx, "reason", c)
			if index != 0 {
				return layout{}, nil, fmt.Errorf("netns: index %d unusable: %s", idx, c)
			}
			continue
		}
		f, err := lockIndex(LockDir, idx)
		if errors.Is(err, ErrIndexBusy) {
			busy++
			if index != 0 {
				return layout{}, nil, err
			}
			continue
		}
		if err != nil {
			return layout{}, nil, err
		}
		// Read again under the lock: the previous holder may have finished
		// its Close since the first read.
		routes4, routes6, err = b.hostRoutes(ctx)
		if err != nil {
			f.Close()
			return layout{}, nil, err
		}
		if c := conflicts(routes4, routes6, l); c != "" {
			f.Close()
			if index != 0 {
				return layout{}, nil, fmt.Errorf("netns: index %d unusable: %s", idx, c)
			}
			continue
		}
		b.lock = f
		var left []netip.Prefix
		if leftover(routes4, l.Prefix4) {
			left = append(left, l.Prefix4)
		}
		if leftover(routes6, l.Prefix6) {
			left = append(left, l.Prefix6)
		}
		return l, left, nil
	}
	return layout{}, nil, fmt.Errorf("netns: no free bench index (%d busy, the rest collide with host routes)", busy)
}

// hostRoutes reads the IPv4 and IPv6 routes of every table of the host
// namespace.
func (b *Bench) hostRoutes(ctx context.Context) (v4, v6 []hostRoute, err error) {
	for _, fam := range []string{"-4", "-6"} {
		out, err := b.ip(ctx, "-j", fam, "route", "show", "table", "all")
		if err != nil {
			return nil, nil, err
		}
		rs, err := parseRoutes(out)
		if err != nil {
			return nil, nil, err
		}
		if fam == "-4" {
			v4 = rs
		} else {
			v6 = rs
		}
	}
	return v4, v6, nil
}

// conflicts returns the first host route that makes l unusable, or "".
func conflicts(routes4, routes6 []hostRoute, l layout) string {
	if c := conflict(routes4, l.Prefix4); c != "" {
		return c
	}
	return conflict(routes6, l.Prefix6)
}

// removeLeftoverNS deletes namespace ns if it exists. Only a dead holder of
// our index can have made it. Processes still inside are not ours to kill:
// they are logged and stay, cut off, in the unnamed namespace.
func (b *Bench) removeLeftoverNS(ctx context.Context, ns string) error {
	if _, err := os.Lstat("/run/netns/" + ns); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	pids, _ := b.ip(ctx, "netns", "pids", ns)
	b.log.Warn("netns removing leftover namespace", "ns", ns,
		"pids", strings.Fields(string(pids)))
	_, err := b.ip(ctx, "netns", "del", ns)
	return err
}

// waitUp polls until link dev in ns reports operstate UP (the veth carrier
// follows both ends being up; packets sent before are dropped).
func (b *Bench) waitUp(ctx context.Context, ns, dev string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		out, err := b.ip(ctx, "-n", ns, "-j", "link", "show", "dev", dev)
		if err != nil {
			return err
		}
		var links []struct {
			Operstate string `json:"operstate"`
		}
		if err := json.Unmarshal(out, &links); err != nil {
			return fmt.Errorf("netns: parse ip -j link: %w", err)
		}
		if len(links) == 1 && links[0].Operstate == "UP" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("netns: %s in %s not up: %w", dev, ns, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// delBlackhole removes the tagged blackhole for p from the host namespace.
func (b *Bench) delBlackhole(ctx context.Context, p netip.Prefix) error {
	_, err := b.ip(ctx, family(p), "route", "del", "blackhole", p.String(), "proto", strconv.Itoa(RouteProto))
	return err
}

// ip runs the ip tool with args (argv, no shell) and returns its stdout;
// the error carries the command and its stderr. Each run is bounded.
func (b *Bench) ip(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, b.ipPath, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("netns: ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.Bytes(), nil
}

func family(p netip.Prefix) string {
	if p.Addr().Is4() {
		return "-4"
	}
	return "-6"
}

func pfx(a netip.Addr, bits int) string { return netip.PrefixFrom(a, bits).String() }

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"time"

	"github.com/sesame-gw/sesame/internal/client"
	"github.com/sesame-gw/sesame/internal/policy"
	"github.com/sesame-gw/sesame/internal/service"
	"github.com/sesame-gw/sesame/internal/spa"
	"github.com/sesame-gw/sesame/internal/spakey"
)

func init() {
	register("open", command{summary: "send an SPA packet: open HOST|PROFILE [SERVICE...] [--wait]", run: runOpen})
}

// spaFlags are the flags open and proxy share. Unset flags fall back to
// the profile, then to the built-in defaults.
type spaFlags struct {
	key, cert, gatewayKey, forAddress, profiles string
	port                                        int
	duration, resend, waitTimeout               time.Duration
	v4, v6                                      bool
}

func (f *spaFlags) register(fs *flag.FlagSet, waitTimeout time.Duration) {
	fs.StringVar(&f.key, "key", "", "identity key file, or the certificate's key with --cert (default: the profile's, else with a certificate NAME.key beside NAME.crt, else ~/"+client.DefaultIdentity+")")
	fs.StringVar(&f.cert, "cert", "", "client certificate file (sesame ca issue): certificate SPA instead of a raw key (default: the profile's cert)")
	fs.StringVar(&f.gatewayKey, "gateway-key", "", "the gateway's public key, sesame-gw1:... (default: the profile's)")
	fs.IntVar(&f.port, "port", 0, fmt.Sprintf("the gateway's SPA port, UDP (default: the profile's, else %d)", spa.DefaultPort))
	fs.DurationVar(&f.duration, "duration", 0, fmt.Sprintf("how long the gateway should open (default: the profile's, else %v)", client.DefaultDuration))
	fs.StringVar(&f.forAddress, "for-address", "", "open for this address instead of the packet's source (the gateway must allow it)")
	fs.BoolVar(&f.v4, "4", false, "use IPv4 only")
	fs.BoolVar(&f.v6, "6", false, "use IPv6 only")
	fs.DurationVar(&f.resend, "resend", time.Second, "while waiting, send a fresh packet this often (the last may have been lost)")
	fs.DurationVar(&f.waitTimeout, "wait-timeout", waitTimeout, "give up waiting after this long")
	fs.StringVar(&f.profiles, "profiles", "", "profiles file (default: ~/.config/"+client.ProfilesFile+")")
}

// loadProfiles reads --profiles, or the default file if it exists.
func (f *spaFlags) loadProfiles() (*client.Profiles, error) {
	if f.profiles != "" {
		return client.LoadProfiles(f.profiles)
	}
	path, err := client.DefaultProfilesPath()
	if err != nil {
		return nil, nil // no home: no profiles
	}
	ps, err := client.LoadProfiles(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return ps, err
}

// profile finds the profile for what the user typed (a profile name or a
// host), or the defaults with that host.
func (f *spaFlags) profile(ps *client.Profiles, host string) (client.Profile, error) {
	p, ok, err := ps.ForHost(host)
	if err != nil {
		return client.Profile{}, err
	}
	if !ok {
		p = ps.Defaults()
		p.Name, p.Host = host, host
	}
	return p, nil
}

// target is a resolved gateway with what a request needs.
type target struct {
	addr netip.Addr
	spa  *client.SPA
	req  policy.Request
}

// resolve applies the flags over p and builds the sender for services.
func (f *spaFlags) resolve(ctx context.Context, p client.Profile, services []service.Range) (*target, error) {
	if f.v4 && f.v6 {
		return nil, &exitError{code: 2, err: errors.New("-4 and -6 exclude each other")}
	}
	certPath := p.Cert
	if f.cert != "" {
		certPath = f.cert
	}
	keyPath := p.Key
	if f.key != "" {
		keyPath = f.key
	}
	if keyPath == "" && certPath != "" {
		keyPath = client.CertKeyPath(certPath)
	}
	if keyPath == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("no --key and no home directory: %w", err)
		}
		keyPath = filepath.Join(home, client.DefaultIdentity)
	}
	gw := p.GatewayKey
	if f.gatewayKey != "" {
		k, err := spakey.ParseGateway(f.gatewayKey)
		if err != nil {
			return nil, &exitError{code: 2, err: fmt.Errorf("--gateway-key: %w", err)}
		}
		gw = k
	}
	if gw == nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("no gateway key for %s: pass --gateway-key sesame-gw1:... or add a profile", p.Target())}
	}
	port := p.Port
	if f.port != 0 {
		if f.port < 1 || f.port > 65535 {
			return nil, &exitError{code: 2, err: fmt.Errorf("--port %d is not from 1 to 65535", f.port)}
		}
		port = uint16(f.port)
	}
	req := policy.Request{Services: services, Duration: p.Duration, Addr: p.ForAddress}
	if f.duration != 0 {
		if f.duration < 0 {
			return nil, &exitError{code: 2, err: errors.New("--duration must be positive")}
		}
		req.Duration = f.duration
	}
	if f.forAddress != "" {
		a, err := netip.ParseAddr(f.forAddress)
		if err != nil {
			return nil, &exitError{code: 2, err: fmt.Errorf("--for-address: %w", err)}
		}
		req.Addr = a.Unmap()
	}
	network := "ip"
	switch {
	case f.v4 || (!f.v6 && p.IP == 4):
		network = "ip4"
	case f.v6 || p.IP == 6:
		network = "ip6"
	}
	id, err := client.LoadIdentity(keyPath, certPath)
	if err != nil {
		return nil, err
	}
	addr, err := client.Resolve(ctx, p.Target(), network)
	if err != nil {
		return nil, err
	}
	return &target{
		addr: addr,
		spa:  &client.SPA{Identity: id, Gateway: gw, Dst: netip.AddrPortFrom(addr, port)},
		req:  req,
	}, nil
}

func runOpen(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("open", stderr)
	var f spaFlags
	f.register(fs, 10*time.Second)
	wait := fs.Bool("wait", false, "after sending, wait until the first tcp service answers, resending if needed; exit 1 if it never does")
	waitEvery := fs.Duration("wait-interval", 5*time.Millisecond, "with --wait, start a fresh connection attempt this often")
	verbose := fs.Bool("v", false, "say what is sent, and with --wait the time from the first packet to the open port")
	printPkt := fs.Bool("print", false, "print the packet in hex on stdout instead of sending it (debugging)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sesame open [flags] HOST|PROFILE [SERVICE...]    (SERVICE: 22/tcp, tcp/22, 60000-61000/udp)")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 {
		fs.Usage()
		return &exitError{code: 2, err: errors.New("need a host or a profile")}
	}
	ps, err := f.loadProfiles()
	if err != nil {
		return err
	}
	p, err := f.profile(ps, pos[0])
	if err != nil {
		return err
	}
	services := p.Services
	if len(pos) > 1 {
		services = nil
		for _, s := range pos[1:] {
			r, err := service.ParseRange(s, service.TCP)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			services = append(services, r)
		}
	}
	if len(services) == 0 {
		return &exitError{code: 2, err: fmt.Errorf("no service to open for %s (name one, e.g. 22/tcp, or add services to the profile)", pos[0])}
	}
	if len(services) > spa.MaxServices {
		return &exitError{code: 2, err: fmt.Errorf("%d services; one packet carries at most %d", len(services), spa.MaxServices)}
	}
	var waitSvc service.Range
	if *wait {
		i := slices.IndexFunc(services, func(r service.Range) bool { return r.Proto == service.TCP })
		if i < 0 {
			return &exitError{code: 2, err: errors.New("--wait needs a tcp service to try")}
		}
		waitSvc = services[i]
		if *waitEvery <= 0 || f.resend <= 0 || f.waitTimeout <= 0 {
			return &exitError{code: 2, err: errors.New("--wait-interval, --resend and --wait-timeout must be positive")}
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	t, err := f.resolve(ctx, p, services)
	if err != nil {
		return err
	}
	if *printPkt {
		pkt, err := t.spa.Packet(t.req)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%x\n", pkt)
		return nil
	}
	if *verbose {
		fmt.Fprintf(stdout, "sending SPA for %v (%v) to %v\n", services, t.req.Duration, t.spa.Dst)
	}
	if !*wait {
		return t.spa.Open(t.req)
	}
	dst := netip.AddrPortFrom(t.addr, waitSvc.First)
	start := time.Now()
	n, err := t.spa.OpenAndWait(ctx, t.req, dst, client.WaitOptions{Interval: *waitEvery, Resend: f.resend, Timeout: f.waitTimeout})
	if err != nil {
		return err
	}
	if *verbose {
		fmt.Fprintf(stdout, "%v open after %dus (%d packets)\n", dst, time.Since(start).Microseconds(), n)
	}
	return nil
}

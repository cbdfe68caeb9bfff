package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"time"

	"github.com/sesame-gw/sesame/internal/client"
	"github.com/sesame-gw/sesame/internal/service"
)

func init() {
	register("knock", command{summary: "send a knock sequence: knock HOST PORT[/PROTO]...", run: runKnock})
}

func runKnock(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("knock", stderr)
	delay := fs.Duration("delay", 0, "pause between knocks (e.g. 100ms)")
	fs.DurationVar(delay, "d", 0, "shorthand for --delay")
	v4 := fs.Bool("4", false, "use IPv4 only")
	v6 := fs.Bool("6", false, "use IPv6 only")
	allUDP := fs.Bool("u", false, "knock with UDP on every port without a protocol (knock -u)")
	wait := fs.String("wait", "", "after knocking, poll tcp/PORT[=TIMEOUT] until it answers; exit 1 if it never does")
	waitEvery := fs.Duration("wait-interval", 5*time.Millisecond, "with --wait, start a fresh connection attempt this often")
	verbose := fs.Bool("v", false, "print each step, and with --wait the time from the last knock to the open port")
	rot := addRotatingFlags(fs) // knock_rotating.go
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sesame knock [--delay D] [-4|-6] [-u] [--wait tcp/PORT[=TIMEOUT]] HOST PORT[/tcp|/udp|:udp]...")
		fmt.Fprintln(stderr, "       sesame knock --door NAME --secret FILE [--period 30s] [--port-range 40000-49999/tcp] [--steps 3] [--delay D] [-4|-6] [--wait ...] HOST")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if rot.enabled() {
		if len(pos) != 1 {
			fs.Usage()
			return &exitError{code: 2, err: errors.New("with --door, give the host only: the ports come from the secret and the time")}
		}
		seq, err := rot.sequence(time.Now())
		if err != nil {
			return err
		}
		for _, s := range seq {
			pos = append(pos, s.String())
		}
	}
	if len(pos) < 2 {
		fs.Usage()
		return &exitError{code: 2, err: errors.New("need a host and at least one port")}
	}
	if *v4 && *v6 {
		return &exitError{code: 2, err: errors.New("-4 and -6 exclude each other")}
	}
	def := service.TCP
	if *allUDP {
		def = service.UDP
	}
	steps := make([]service.Service, 0, len(pos)-1)
	for _, p := range pos[1:] {
		s, err := service.Parse(p, def)
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		steps = append(steps, s)
	}
	var waitSvc service.Service
	var waitFor time.Duration
	if *wait != "" {
		if waitSvc, waitFor, err = client.ParseWait(*wait); err != nil {
			return &exitError{code: 2, err: err}
		}
	}
	network := "ip"
	if *v4 {
		network = "ip4"
	} else if *v6 {
		network = "ip6"
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	addr, err := client.Resolve(ctx, pos[0], network)
	if err != nil {
		return err
	}
	if *verbose {
		for _, s := range steps {
			fmt.Fprintf(stdout, "hitting %s %s\n", s.Proto, client.FormatPort(addr, s.Port))
		}
	}
	if err := client.Knock(ctx, addr, steps, *delay); err != nil {
		return err
	}
	sent := time.Now() // the last knock has left
	if *wait != "" {
		dst := netip.AddrPortFrom(addr, waitSvc.Port)
		if *waitEvery <= 0 {
			return &exitError{code: 2, err: errors.New("--wait-interval must be positive")}
		}
		if err := client.WaitTCP(ctx, dst, *waitEvery, waitFor); err != nil {
			return err
		}
		if *verbose {
			fmt.Fprintf(stdout, "%v open after %dus\n", dst, time.Since(sent).Microseconds())
		}
	}
	return nil
}

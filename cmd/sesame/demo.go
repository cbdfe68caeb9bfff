package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sesame-gw/sesame/internal/netns"
)

func init() {
	register("demo", command{summary: "show a gateway and a client in two network namespaces (root)", run: runDemo})
}

const demoConfig = `[gateway]
state_dir = %q

[[door]]
name = "ssh"
sequence = ["7000/tcp", "8000/udp", "9000/tcp"]
seq_timeout = "10s"
open = ["2222/tcp"]
duration = "%s"
`

func runDemo(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", stderr)
	duration := fs.Duration("duration", 5*time.Second, "how long the demo grant lives")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("the demo builds network namespaces: run it as root")
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	say := func(format string, a ...any) { fmt.Fprintf(stdout, format+"\n", a...) }

	b, err := netns.New(ctx, netns.Options{Name: "sesdemo"})
	if err != nil {
		return fmt.Errorf("building namespaces: %w", err)
	}
	defer func() {
		_ = b.Command(context.Background(), b.GW, exe, "cleanup").Run()
		if err := b.Close(); err != nil {
			fmt.Fprintf(stderr, "cleanup: %v\n", err)
		} else {
			say("\nremoved the namespaces, the veth pair and the host blackhole routes")
		}
	}()
	say("gateway namespace %s (%v, %v) <== veth ==> client namespace %s (%v, %v)", b.GW, b.GW4, b.GW6, b.Client, b.Client4, b.Client6)

	dir, err := os.MkdirTemp("", "sesame-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := filepath.Join(dir, "sesame.toml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, demoConfig, dir, *duration), 0o600); err != nil {
		return err
	}
	svc := netip.AddrPortFrom(b.GW4, 2222)
	if _, err := b.ServeTCP(b.GW, netip.AddrPortFrom(netip.IPv4Unspecified(), 2222), []byte("SSH-2.0-demo\r\n")); err != nil {
		return err
	}
	say("a TCP service listens on %v in the gateway namespace", svc)
	daemon, err := b.Start(b.GW, exe, "serve", "-c", cfg)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = daemon.WaitOutput(wctx, "gateway ready")
	cancel()
	if err != nil {
		return fmt.Errorf("gateway did not start: %w\n%s", err, daemon.Output())
	}
	say("sesame serve is running with the door: 7000/tcp, 8000/udp, 9000/tcp opens 2222/tcp for %v\n", *duration)

	probe := func() bool { return b.Reachable(ctx, b.Client, svc, 500*time.Millisecond) }
	state := func(open bool) string {
		if open {
			return "OPEN"
		}
		return "hidden (no answer at all)"
	}
	say("1. client connects to %v: %s", svc, state(probe()))
	say("2. client knocks: sesame knock %v 7000/tcp 8000/udp 9000/tcp", b.GW4)
	start := time.Now()
	out, err := b.Command(ctx, b.Client, exe, "knock", b.GW4.String(), "7000/tcp", "8000/udp", "9000/tcp", "--wait", "tcp/2222=5s").CombinedOutput()
	if err != nil {
		return fmt.Errorf("knock: %v\n%s", err, out)
	}
	say("3. client connects to %v: %s (%v after the knock)", svc, state(probe()), time.Since(start).Round(time.Millisecond))
	say("   from the client's second address %v: %s", b.Client4b, state(b.ReachableFrom(ctx, b.Client, b.Client4b, svc, 500*time.Millisecond)))
	say("4. waiting for the grant to expire (the kernel removes it)...")
	deadline := time.Now().Add(*duration + 5*time.Second)
	for probe() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(250 * time.Millisecond)
	}
	say("5. client connects to %v: %s (%v after the knock)", svc, state(probe()), time.Since(start).Round(100*time.Millisecond))
	say("\ngateway log:")
	for _, l := range strings.Split(strings.TrimSpace(string(daemon.Output())), "\n") {
		say("   %s", l)
	}
	return b.Stop(daemon)
}

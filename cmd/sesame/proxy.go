package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/sesame-gw/sesame/internal/client"
	"github.com/sesame-gw/sesame/internal/service"
)

func init() {
	register("proxy", command{summary: "ssh ProxyCommand: proxy HOST PORT (send SPA, wait, carry the session)", run: runProxy})
}

// proxyStdin is the session's input (a variable for tests).
var proxyStdin io.Reader = os.Stdin

// runProxy is `ssh -o ProxyCommand='sesame proxy %h %p' host`: it asks the
// gateway to open PORT/tcp, connects as soon as the port answers (sending
// a fresh packet every --resend in case one was lost), then carries the
// session between stdin/stdout and the connection. Keys come from the
// profile matching HOST, or from flags.
func runProxy(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("proxy", stderr)
	var f spaFlags
	f.register(fs, 20*time.Second)
	every := fs.Duration("wait-interval", 20*time.Millisecond, "start a fresh connection attempt this often until the port answers")
	verbose := fs.Bool("v", false, "report progress on stderr")
	fs.Usage = func() {
		io.WriteString(stderr, "usage: sesame proxy [flags] HOST PORT      (ssh -o ProxyCommand='sesame proxy %h %p' HOST)\n")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		fs.Usage()
		return &exitError{code: 2, err: errors.New("need a host and a port")}
	}
	port, err := strconv.ParseUint(pos[1], 10, 16)
	if err != nil || port == 0 {
		return &exitError{code: 2, err: fmt.Errorf("port %q is not a number from 1 to 65535", pos[1])}
	}
	if *every <= 0 || f.resend <= 0 || f.waitTimeout <= 0 {
		return &exitError{code: 2, err: errors.New("--wait-interval, --resend and --wait-timeout must be positive")}
	}
	ps, err := f.loadProfiles()
	if err != nil {
		return err
	}
	p, err := f.profile(ps, pos[0])
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	svc := service.Range{Proto: service.TCP, First: uint16(port), Last: uint16(port)}
	t, err := f.resolve(ctx, p, []service.Range{svc})
	if err != nil {
		return err
	}
	dst := netip.AddrPortFrom(t.addr, uint16(port))
	var conn *net.TCPConn
	dial := func(ctx context.Context, dst netip.AddrPort, interval, _ time.Duration) error {
		c, err := client.DialUntil(ctx, dst, interval)
		conn = c
		return err
	}
	start := time.Now()
	n, err := t.spa.OpenAndWait(ctx, t.req, dst, client.WaitOptions{Interval: *every, Resend: f.resend, Timeout: f.waitTimeout, Wait: dial})
	if err != nil {
		return err
	}
	if *verbose {
		fmt.Fprintf(stderr, "sesame proxy: %v open after %v (%d packets)\n", dst, time.Since(start).Round(time.Millisecond), n)
	}
	return client.Splice(conn, proxyStdin, stdout)
}

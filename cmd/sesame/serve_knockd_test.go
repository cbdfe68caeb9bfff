package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/capture"
	"github.com/sesame-gw/sesame/internal/capture/capturetest"
	"github.com/sesame-gw/sesame/internal/config"
	"github.com/sesame-gw/sesame/internal/control"
	"github.com/sesame-gw/sesame/internal/knockd"
	"github.com/sesame-gw/sesame/internal/packet"
	"github.com/sesame-gw/sesame/internal/service"
)

// recordRunner stands for /bin/sh: it records the commands.
type recordRunner struct {
	mu  sync.Mutex
	ran []string
}

func (r *recordRunner) Run(_ context.Context, cmd string) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ran = append(r.ran, cmd)
	return 0, nil
}

func (r *recordRunner) has(cmd string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.ran, cmd)
}

const knockdSSH = `[ssh]
	sequence = 7000,8000:udp,9000
	tcpflags = syn
	start_command = nft add element inet fw allowed { %IP% . 22 }
	stop_command = nft delete element inet fw allowed { %IP% . 22 }
	cmd_timeout = 3600
`

// The knockd mode over the ops side of every mode, in-process: READY,
// status and revoke over the control socket, a refused and an applied
// reload (the pending stop command survives both), the audit log.
func TestKnockdModeOps(t *testing.T) {
	dir := t.TempDir()
	confPath := filepath.Join(dir, "knockd.conf")
	write := func(s string) {
		if err := os.WriteFile(confPath, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(knockdSSH)
	conf, err := readKnockdConf(confPath)
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	notes := make(chan string, 32)
	expect := func(prefix string) string {
		t.Helper()
		select {
		case n := <-notes:
			if !strings.HasPrefix(n, prefix) {
				t.Fatalf("sd_notify %q, want %s...", n, prefix)
			}
			return n
		case <-time.After(5 * time.Second):
			t.Fatalf("no sd_notify %s\n%s", prefix, logs)
		}
		return ""
	}
	o := newOps(log, confPath, func(s string) { notes <- s }, opsNotes{ready: "knockd mode ready", stopping: "stopping"})
	runner := &recordRunner{}
	srv, err := knockd.New(knockd.Config{Conf: conf, ConfFile: confPath, Runner: runner, Logger: log,
		StateFile: filepath.Join(dir, "pending.json"), IsLocal: func(netip.Addr) bool { return true }, OnDecision: o.onDecision})
	if err != nil {
		t.Fatal(err)
	}
	src := capturetest.New(0)
	keys := config.Ops{ControlSocket: filepath.Join(dir, "control.sock"), AuditLog: filepath.Join(dir, "audit.log")}
	o.open(&knockdMode{path: confPath, conf: conf, keys: keys, srv: srv, src: src, log: log}, keys)
	ctx, cancel := context.WithCancel(context.Background())
	o.serve(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, src) }()
	stop := sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		o.close()
	})
	defer stop()
	if n := expect("READY=1"); !strings.Contains(n, "STATUS=knockd mode ready") {
		t.Fatalf("READY %q", n)
	}

	alice := netip.MustParseAddr("192.0.2.10")
	for _, s := range []service.Service{tcpS(7000), udpS(8000), tcpS(9000)} {
		src.Inject(capture.Packet{Packet: packet.Packet{Src: alice, Dst: netip.MustParseAddr("192.0.2.1"), Proto: s.Proto, SrcPort: 40000, DstPort: s.Port, Flags: packet.SYN}})
	}
	eventually(t, "start command", func() bool { return runner.has("nft add element inet fw allowed { 192.0.2.10 . 22 }") })
	pending := func(want int) {
		t.Helper()
		st, err := control.Status(ctl(t), keys.ControlSocket)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Grants) != want || want == 1 && (st.Grants[0].Src != alice || st.Grants[0].Service != "[ssh] Stop_Command") {
			t.Fatalf("pending stops %+v, want %d", st.Grants, want)
		}
	}
	pending(1)

	// Refused: a port knockd would misread; the error names file:line.
	write(knockdSSH + "[web]\n\tsequence = 5000,70OO\n")
	var re *control.RemoteError
	if err := control.Reload(ctl(t), keys.ControlSocket); !errors.As(err, &re) || !strings.Contains(err.Error(), confPath+":8:") {
		t.Fatalf("bad reload: %v", err)
	}
	expect("RELOADING=1")
	if n := expect("READY=1"); !strings.Contains(n, "STATUS=reload refused: "+confPath+":8:") {
		t.Fatalf("notify after the refusal: %q", n)
	}
	// Applied: a second door; the pending stop is still there.
	write(knockdSSH + "[web]\n\tsequence = 5000,6000\n\tcommand = true\n")
	if err := o.Reload(ctl(t)); err != nil {
		t.Fatal(err)
	}
	expect("RELOADING=1")
	expect("READY=1\nSTATUS=knockd mode ready (reloaded)")
	st, _ := control.Status(ctl(t), keys.ControlSocket)
	if len(st.Doors) != 2 || len(st.Grants) != 1 {
		t.Fatalf("after reload: doors %+v grants %+v", st.Doors, st.Grants)
	}

	// Revoke: no service to pick; the stop command runs now.
	if _, err := control.Revoke(ctl(t), keys.ControlSocket, alice, tcpS(22)); err == nil || !strings.Contains(err.Error(), "knockd mode") {
		t.Fatalf("revoke with a service: %v", err)
	}
	gone, err := control.Revoke(ctl(t), keys.ControlSocket, alice, service.Service{})
	if err != nil || len(gone) != 1 || gone[0].Src != alice || gone[0].Service != "22/tcp" {
		t.Fatalf("revoke: %+v %v", gone, err)
	}
	eventually(t, "stop command", func() bool { return runner.has("nft delete element inet fw allowed { 192.0.2.10 . 22 }") })
	eventually(t, "no pending stop", func() bool {
		st, err := control.Status(ctl(t), keys.ControlSocket)
		return err == nil && len(st.Grants) == 0
	})

	stop()
	expect("STOPPING=1")
	var kinds []string
	for _, r := range readAudit(t, keys.AuditLog) {
		kinds = append(kinds, r.Kind+" "+r.Door+" "+r.Src)
	}
	if !slices.Equal(kinds, []string{"grant ssh 192.0.2.10", "revoke ssh 192.0.2.10"}) {
		t.Fatalf("audit %q", kinds)
	}
}

func TestKnockdOpsFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		err  string
	}{
		{nil, ""},
		{[]string{"--control-socket", "/tmp/s.sock", "--audit-log", "/var/log/a.log", "--metrics-listen", "9273"}, ""},
		{[]string{"--control-socket", "run/s.sock"}, `--control-socket "run/s.sock": not an absolute, clean path`},
		{[]string{"--control-socket", "/" + strings.Repeat("x", 107)}, "longer than a unix socket path"},
		{[]string{"--audit-log", "/var/log/../a.log"}, `--audit-log "/var/log/../a.log": not an absolute, clean path`},
		{[]string{"--metrics-listen", "example.com:9273"}, `--metrics-listen "example.com:9273": not IP:PORT or PORT`},
	} {
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		k := addKnockdFlags(fs)
		if err := fs.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		keys, err := k.opsKeys()
		if c.err == "" {
			if err != nil {
				t.Errorf("%q: %v", c.args, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%q: %v, want %s", c.args, err, c.err)
		}
		if keys.ControlSocket == "" {
			t.Errorf("%q: no default control socket", c.args)
		}
	}
}

func TestStopGrants(t *testing.T) {
	a := netip.MustParseAddr("2001:db8::7")
	for _, c := range []struct {
		cmd  string
		want []string
	}{
		{"nft delete element inet fw allowed { 2001:db8::7 . 22 }", []string{"22/tcp"}},
		{"iptables -D INPUT -s 2001:db8::7 -p udp --dport 53,5353 -j ACCEPT", []string{"53/udp", "5353/udp"}},
		{"/usr/local/bin/close 2001:db8::7", []string{"0/0"}},
	} {
		var got []string
		for _, g := range stopGrants(knockd.Revoked{Door: "d", Src: a, Command: c.cmd}) {
			if g.Addr != a {
				t.Errorf("%s: address %v", c.cmd, g.Addr)
			}
			got = append(got, g.Service.String())
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: %q, want %q", c.cmd, got, c.want)
		}
	}
}

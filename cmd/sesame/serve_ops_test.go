package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/audit"
	"github.com/sesame-gw/sesame/internal/capture"
	"github.com/sesame-gw/sesame/internal/capture/capturetest"
	"github.com/sesame-gw/sesame/internal/config"
	"github.com/sesame-gw/sesame/internal/control"
	"github.com/sesame-gw/sesame/internal/firewall"
	"github.com/sesame-gw/sesame/internal/firewall/firewalltest"
	"github.com/sesame-gw/sesame/internal/gateway"
	"github.com/sesame-gw/sesame/internal/metrics"
	"github.com/sesame-gw/sesame/internal/packet"
	"github.com/sesame-gw/sesame/internal/service"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// opsBench runs the real engine and the ops side over the fake firewall and
// capture, with a configuration file on disk.
type opsBench struct {
	t        *testing.T
	dir      string
	cfgPath  string
	sock     string
	audit    string
	fw       *firewalltest.Fake
	src      *capturetest.Source
	log      *lockedBuffer
	notes    chan string
	o        *ops
	eng      *gateway.Engine
	cancel   context.CancelFunc
	done     chan error
	mu       sync.Mutex
	builds   int
	released int
}

func (b *opsBench) config(doors string) string {
	return fmt.Sprintf("[gateway]\nstate_dir = %q\ncontrol_socket = %q\naudit_log = %q\n%s", b.dir, b.sock, b.audit, doors)
}

func (b *opsBench) write(content string) {
	b.t.Helper()
	if err := os.WriteFile(b.cfgPath, []byte(content), 0o600); err != nil {
		b.t.Fatal(err)
	}
}

const sshDoor = `
[[door]]
name = "ssh"
sequence = ["7000/tcp", "8000/udp", "9000/tcp"]
open = ["22/tcp"]
duration = "1h"
`

func newOpsBench(t *testing.T) *opsBench {
	dir := t.TempDir()
	b := &opsBench{t: t, dir: dir, cfgPath: filepath.Join(dir, "sesame.toml"), sock: filepath.Join(dir, "control.sock"),
		audit: filepath.Join(dir, "audit.log"), fw: firewalltest.New(time.Now), src: capturetest.New(0),
		log: &lockedBuffer{}, notes: make(chan string, 64), done: make(chan error, 1)}
	b.write(b.config(sshDoor))
	cfg, err := config.Load(b.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(b.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	o, gc, err := startOps(opsSetup{path: b.cfgPath, cfg: cfg, log: log, src: b.src,
		notify: func(s string) { b.notes <- s },
		build: func(c *config.Config) (gateway.Config, func(), error) {
			b.mu.Lock()
			b.builds++
			b.mu.Unlock()
			return engineConfig(c, log), func() { b.mu.Lock(); b.released++; b.mu.Unlock() }, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	b.o = o
	b.eng = gateway.New(gc, b.fw, b.src)
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	o.attach(ctx, b.eng)
	go func() { b.done <- b.eng.Run(ctx) }()
	t.Cleanup(b.stop)
	b.expectNote("READY=1")
	return b
}

func (b *opsBench) stop() {
	if b.cancel == nil {
		return
	}
	b.cancel()
	b.cancel = nil
	if err := <-b.done; err != nil {
		b.t.Errorf("Run: %v", err)
	}
	b.o.close()
}

func (b *opsBench) expectNote(prefix string) string {
	b.t.Helper()
	select {
	case n := <-b.notes:
		if !strings.HasPrefix(n, prefix) {
			b.t.Fatalf("sd_notify %q, want %s...", n, prefix)
		}
		return n
	case <-time.After(5 * time.Second):
		b.t.Fatalf("no sd_notify %s\nlog:\n%s", prefix, b.log)
	}
	return ""
}

func (b *opsBench) knock(src netip.Addr, ports ...service.Service) {
	b.t.Helper()
	for _, s := range ports {
		p := capture.Packet{Packet: packet.Packet{Src: src, Dst: netip.MustParseAddr("192.0.2.1"), Proto: s.Proto,
			SrcPort: 40000, DstPort: s.Port, Flags: packet.SYN}}
		if !b.src.Inject(p) {
			b.t.Fatal("inject refused")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := b.src.WaitIdle(ctx)
		cancel()
		if err != nil {
			b.t.Fatal(err)
		}
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 1000 {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("never happened: %s", what)
}

func tcpS(p uint16) service.Service { return service.Service{Proto: service.TCP, Port: p} }
func udpS(p uint16) service.Service { return service.Service{Proto: service.UDP, Port: p} }

func ctl(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestOpsReloadKeepsGrantsAndRefusesBadConfigs(t *testing.T) {
	b := newOpsBench(t)
	alice := netip.MustParseAddr("192.0.2.10")
	b.knock(alice, tcpS(7000), udpS(8000), tcpS(9000))
	eventually(t, "grant", func() bool { return b.fw.Granted(alice, tcpS(22)) })

	st, err := control.Status(ctl(t), b.sock)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Doors) != 1 || len(st.Grants) != 1 || st.Grants[0].Src != alice {
		t.Fatalf("status before reload: %+v", st)
	}

	// A valid new file: applied, the grant survives.
	b.write(b.config(sshDoor + `
[[door]]
name = "web"
sequence = ["5000/udp"]
open = ["443/tcp"]
`))
	if err := control.Reload(ctl(t), b.sock); err != nil {
		t.Fatal(err)
	}
	b.expectNote("RELOADING=1\nMONOTONIC_USEC=")
	b.expectNote("READY=1")
	st, _ = control.Status(ctl(t), b.sock)
	if len(st.Doors) != 2 || len(st.Grants) != 1 || !b.fw.Granted(alice, tcpS(22)) {
		t.Fatalf("after reload: doors %v grants %v", st.Doors, st.Grants)
	}

	// Invalid files: refused with the reason, the running config stays.
	for _, bad := range []string{
		b.config(sshDoor + "\n[[door]]\nname = \"web\"\nsequence = []\nopen = [\"443/tcp\"]\n"),
		"[gateway]\nnflog_group = 9\ncontrol_socket = " + fmt.Sprintf("%q", b.sock) + "\n" + sshDoor,
		"not toml at all [",
	} {
		b.write(bad)
		var re *control.RemoteError
		err := control.Reload(ctl(t), b.sock)
		if !errors.As(err, &re) {
			t.Fatalf("bad config accepted: %v", err)
		}
		b.expectNote("RELOADING=1")
		if n := b.expectNote("READY=1"); !strings.Contains(n, "STATUS=reload refused") {
			t.Errorf("notify after a refused reload: %q", n)
		}
		st, _ = control.Status(ctl(t), b.sock)
		if len(st.Doors) != 2 || !b.fw.Granted(alice, tcpS(22)) {
			t.Fatalf("a refused reload changed the gateway: doors %v", st.Doors)
		}
	}
	for _, want := range []string{"sequence: missing or empty", "nflog_group or nflog_bulk_group changed", "reload refused; the running configuration stays"} {
		if !strings.Contains(b.log.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}

	// Revoke ends the grant; the audit log has the story.
	gone, err := control.Revoke(ctl(t), b.sock, alice, service.Service{})
	if err != nil || len(gone) != 1 || b.fw.Granted(alice, tcpS(22)) {
		t.Fatalf("revoke: %v %v", gone, err)
	}
	bob := netip.MustParseAddr("2001:db8::7")
	b.knock(bob, tcpS(7000), tcpS(9000)) // wrong order: a reset with a reason
	eventually(t, "reset recorded", func() bool {
		st, _ := control.Status(ctl(t), b.sock)
		return len(st.Recent) > 0 && st.Recent[len(st.Recent)-1].Kind == "reset"
	})
	b.stop()
	recs := readAudit(t, b.audit)
	kinds := map[string]audit.Record{}
	for _, r := range recs {
		kinds[r.Kind] = r
	}
	if g := kinds["grant"]; g.Src != alice.String() || g.Door != "ssh" || len(g.Services) != 1 {
		t.Errorf("grant record %+v", g)
	}
	if r := kinds["revoke"]; r.Src != alice.String() {
		t.Errorf("revoke record %+v", r)
	}
	if r := kinds["reset"]; r.Src != bob.String() || r.Reason == "" {
		t.Errorf("reset record %+v", r)
	}
	b.expectNote("STOPPING=1")
	if b.builds != 2 || b.released != 2 {
		t.Fatalf("engine configs built %d, released %d; want 2, 2", b.builds, b.released)
	}
	if _, err := os.Stat(b.sock); !os.IsNotExist(err) {
		t.Fatalf("control socket left behind: %v", err)
	}
}

func TestOpsReloadSwitchesAuditLog(t *testing.T) {
	b := newOpsBench(t)
	next := filepath.Join(b.dir, "audit2.log")
	b.write(strings.Replace(b.config(sshDoor), b.audit, next, 1))
	if err := b.o.Reload(ctl(t)); err != nil {
		t.Fatal(err)
	}
	b.knock(netip.MustParseAddr("192.0.2.20"), tcpS(7000), udpS(8000), tcpS(9000))
	eventually(t, "grant", func() bool { return len(b.fw.Grants()) == 1 })
	b.stop()
	if recs := readAudit(t, next); len(recs) != 1 || recs[0].Kind != "grant" {
		t.Fatalf("new audit log: %+v", recs)
	}
	if recs := readAudit(t, b.audit); len(recs) != 0 {
		t.Fatalf("old audit log written after the switch: %+v", recs)
	}
}

func readAudit(t *testing.T, path string) []audit.Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []audit.Record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r audit.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// A second daemon configured with a live daemon's control_socket does not
// take it over: it says so, naming the path and the key, and status keeps
// reaching the first daemon. A socket left by a dead daemon is taken.
func TestControlSocketOfAnotherDaemon(t *testing.T) {
	b := newOpsBench(t)
	var second lockedBuffer
	o := newOps(slog.New(slog.NewTextHandler(&second, nil)), "second.toml", func(string) {}, opsNotes{})
	o.open(idleMode{}, config.Ops{ControlSocket: b.sock})
	o.close()
	for _, want := range []string{"running WITHOUT the control socket", b.sock + " belongs to another running sesame daemon and is not taken over",
		"control_socket", "path=" + b.sock} {
		if !strings.Contains(second.String(), want) {
			t.Errorf("second daemon's log lacks %q:\n%s", want, second.String())
		}
	}
	if _, err := control.Status(context.Background(), b.sock); err != nil {
		t.Fatalf("the first daemon lost its socket: %v", err)
	}
	b.stop()

	// The first daemon is gone: the next one gets the path.
	var third lockedBuffer
	o = newOps(slog.New(slog.NewTextHandler(&third, nil)), "third.toml", func(string) {}, opsNotes{})
	o.open(idleMode{}, config.Ops{ControlSocket: b.sock})
	defer o.close()
	if o.ctl == nil || strings.Contains(third.String(), "WITHOUT") || !strings.Contains(third.String(), "msg=\"control socket\" path="+b.sock) {
		t.Fatalf("after the first daemon stopped: ctl %v\n%s", o.ctl, third.String())
	}
}

// idleMode is an opsMode that serves nothing.
type idleMode struct{}

func (idleMode) Status(context.Context) (gateway.Status, error) { return gateway.Status{}, nil }
func (idleMode) Revoke(context.Context, netip.Addr, service.Service) ([]firewall.Grant, error) {
	return nil, nil
}
func (idleMode) reload(context.Context) (config.Ops, error) { return config.Ops{}, nil }
func (idleMode) metricSources() metrics.Sources             { return metrics.Sources{} }
func (idleMode) release()                                   {}

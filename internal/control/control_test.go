package control

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/firewall"
	"github.com/sesame-gw/sesame/internal/gateway"
	"github.com/sesame-gw/sesame/internal/service"
)

type fakeHandler struct {
	mu        sync.Mutex
	reloadErr error
	reloads   int
	revoked   []string
	block     chan struct{} // Status waits on it when set
}

func (h *fakeHandler) Status(ctx context.Context) (gateway.Status, error) {
	if h.block != nil {
		select {
		case <-h.block:
		case <-ctx.Done():
			return gateway.Status{}, ctx.Err()
		}
	}
	return gateway.Status{
		Doors:    []gateway.DoorStatus{{Name: "ssh", Sequence: []string{"7000/tcp"}, Open: []string{"22/tcp"}, Duration: "30s"}},
		Grants:   []gateway.GrantStatus{{Src: netip.MustParseAddr("192.0.2.7"), Service: "22/tcp", Remaining: "12s"}},
		Recent:   []gateway.Decision{{Kind: "reject", Src: netip.MustParseAddr("2001:db8::1"), Reason: "replay", Latency: time.Millisecond}},
		Counters: map[string]uint64{"packets": 42},
	}, nil
}

func (h *fakeHandler) Reload(context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reloads++
	return h.reloadErr
}

func (h *fakeHandler) Revoke(_ context.Context, a netip.Addr, s service.Service) ([]firewall.Grant, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.revoked = append(h.revoked, a.String()+" "+s.String())
	if a == netip.MustParseAddr("192.0.2.7") {
		return []firewall.Grant{{Addr: a, Service: service.Service{Proto: service.TCP, Port: 22}}}, nil
	}
	return nil, nil
}

func start(t *testing.T, h Handler, opt Options) (*Server, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "control.sock")
	s, err := Listen(path, h, opt)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return s, path
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestStatusReloadRevoke(t *testing.T) {
	h := &fakeHandler{}
	_, path := start(t, h, Options{})
	st, err := Status(ctx(t), path)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Doors) != 1 || st.Grants[0].Src != netip.MustParseAddr("192.0.2.7") || st.Recent[0].Latency != time.Millisecond || st.Counters["packets"] != 42 {
		t.Fatalf("status %+v", st)
	}
	if err := Reload(ctx(t), path); err != nil {
		t.Fatal(err)
	}
	h.reloadErr = errors.New("sesame.toml:3: door[0].sequence: missing or empty")
	var re *RemoteError
	if err := Reload(ctx(t), path); !errors.As(err, &re) || !strings.Contains(re.Msg, "sesame.toml:3") {
		t.Fatalf("bad reload: %v", err)
	}
	gone, err := Revoke(ctx(t), path, netip.MustParseAddr("192.0.2.7"), service.Service{})
	if err != nil || len(gone) != 1 || gone[0].Service != "22/tcp" {
		t.Fatalf("revoke: %v %v", gone, err)
	}
	gone, err = Revoke(ctx(t), path, netip.MustParseAddr("::ffff:192.0.2.8"), service.Service{Proto: service.UDP, Port: 53})
	if err != nil || len(gone) != 0 {
		t.Fatalf("revoke nothing: %v %v", gone, err)
	}
	// The mapped address arrives unmapped; no service means every grant.
	if want := "192.0.2.7 " + (service.Service{}).String() + ",192.0.2.8 53/udp"; h.reloads != 2 || strings.Join(h.revoked, ",") != want {
		t.Fatalf("handler saw reloads=%d revoked=%q", h.reloads, h.revoked)
	}
}

func TestBadRequests(t *testing.T) {
	_, path := start(t, &fakeHandler{}, Options{})
	for req, want := range map[string]string{
		`{"op":"launch"}`:               `unknown op "launch"`,
		`{"op":"revoke","addr":"nope"}`: `revoke: address "nope"`,
		`{"op":"revoke","addr":"192.0.2.1","service":"99999/tcp"}`: `revoke: service`,
		`not json`: `bad request`,
		`{"op":"status","pad":"` + strings.Repeat("x", MaxRequest) + `"}`: `bad request`,
	} {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(req + "\n"))
		var resp Response
		err = json.NewDecoder(c).Decode(&resp)
		c.Close()
		if err != nil || resp.OK || !strings.Contains(resp.Error, want) {
			t.Errorf("%.40s: %+v %v, want %q", req, resp, err, want)
		}
	}
}

func TestSocketModeAndLifecycle(t *testing.T) {
	s, path := start(t, &fakeHandler{}, Options{})
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 || st.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket mode %v %v", st.Mode(), err)
	}
	if _, err := Listen(path, &fakeHandler{}, Options{}); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Listen on a live socket: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("second Listen removed the live socket: %v", err)
	}
	s.Close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("socket left after Close: %v", err)
	}
	if _, err := Status(ctx(t), path); !errors.Is(err, ErrNoDaemon) {
		t.Fatalf("Status without a daemon: %v", err)
	}
}

func TestStaleSocketReplacedOthersKept(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "control.sock")
	// A socket left by a daemon that died: nobody accepts on it.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := Status(ctx(t), path); !errors.Is(err, ErrNoDaemon) {
		t.Fatalf("dead socket: %v", err)
	}
	s, err := Listen(path, &fakeHandler{}, Options{})
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	s.Close()

	regular := filepath.Join(dir, "file")
	os.WriteFile(regular, []byte("keep me"), 0o600)
	if _, err := Listen(regular, &fakeHandler{}, Options{}); err == nil {
		t.Fatal("Listen replaced a regular file")
	}
	if b, _ := os.ReadFile(regular); string(b) != "keep me" {
		t.Fatal("regular file changed")
	}
}

// The lock file marks a live daemon even when its socket looks dead (a
// daemon too busy to accept, or between binding and renaming): Listen
// refuses and leaves the socket alone. Once the lock is released, the
// same stale socket is replaced.
func TestLockHeldIsInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close() // refuses connections: stale, were it not for the lock
	held, err := lockFile(path + ".lock")
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.Lstat(path)
	if _, err := Listen(path, &fakeHandler{}, Options{}); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Listen with the lock held: %v, want ErrInUse naming %s", err, path)
	}
	if after, err := os.Lstat(path); err != nil || !os.SameFile(before, after) {
		t.Fatalf("Listen touched the socket of a locked daemon: %v", err)
	}
	held.Close()
	s, err := Listen(path, &fakeHandler{}, Options{})
	if err != nil {
		t.Fatalf("stale socket after the lock is released: %v", err)
	}
	s.Close()
	if _, err := os.Stat(path + ".lock"); err != nil {
		t.Fatalf("lock file removed: %v", err)
	}
	// Close released the lock: the next daemon gets it.
	s, err = Listen(path, &fakeHandler{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// A live socket whose owner takes no lock (an older daemon, another
// program) is not taken over either.
func TestLiveSocketWithoutLockIsInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := Listen(path, &fakeHandler{}, Options{}); !errors.Is(err, ErrInUse) {
		t.Fatalf("Listen on another program's live socket: %v", err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("the live socket was replaced: %v", err)
	}
	c.Close()
}

// Close removes only its own socket: a newer daemon's stays.
func TestCloseKeepsAnotherDaemonsSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	s1, err := Listen(path, &fakeHandler{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s1.ln.Close() // s1 is dead but has not removed its file
	s1.lock.Close()
	s2, err := Listen(path, &fakeHandler{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	s1.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("old server removed the new socket: %v", err)
	}
}

func TestPeerNotAllowed(t *testing.T) {
	var seen []uint32
	var mu sync.Mutex
	_, path := start(t, &fakeHandler{}, Options{allow: func(uid uint32) bool {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, uid)
		return false
	}})
	if _, err := Status(ctx(t), path); !errors.Is(err, ErrDenied) {
		t.Fatalf("refused peer: %v", err)
	}
	if len(seen) != 1 || seen[0] != uint32(os.Getuid()) {
		t.Fatalf("allow saw %v, want our uid %d", seen, os.Getuid())
	}
}

// A real unprivileged process is refused even when the file mode would
// let it in: SO_PEERCRED is the gate, the mode only the first fence.
func TestNonRootProcessRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a client as another user")
	}
	for _, bin := range []string{"setpriv", "socat"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not installed (CI=true)", bin)
			}
			t.Skipf("%s not installed", bin)
		}
	}
	dir, err := os.MkdirTemp("", "sesame-control-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	path := filepath.Join(dir, "control.sock")
	h := &fakeHandler{}
	s, err := Listen(path, h, Options{})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(context.Background())
	defer s.Close()
	os.Chmod(path, 0o666)
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(c, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		"socat", "-t5", "-", "UNIX-CONNECT:"+path)
	cmd.Stdin = strings.NewReader(`{"op":"reload"}` + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("socat as nobody: %v\n%s", err, out)
	}
	var resp Response
	if err := json.Unmarshal(out, &resp); err != nil || resp.OK || resp.Error != ErrDenied.Error() {
		t.Fatalf("response to nobody: %s (%v)", out, err)
	}
	if h.reloads != 0 {
		t.Fatal("nobody's reload ran")
	}
}

func TestConnectionDeadline(t *testing.T) {
	h := &fakeHandler{block: make(chan struct{})}
	_, path := start(t, h, Options{Timeout: 200 * time.Millisecond})
	// A client that never finishes its request is cut off.
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var resp Response
	err = json.NewDecoder(c).Decode(&resp)
	if err == nil && resp.OK {
		t.Fatal("silent client got an OK")
	}
	// A handler that hangs is cancelled with the request's context.
	if _, err := Status(ctx(t), path); err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("hung handler: %v", err)
	}
	close(h.block)
}

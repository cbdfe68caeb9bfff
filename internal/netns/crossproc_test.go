package netns_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/netns"
	"github.com/sesame-gw/sesame/internal/netns/netnstest"
)

// helperEnv makes the test binary act as a second process holding a bench
// (TestHelperHoldBench).
const helperEnv = "SESAME_NETNS_HELPER"

// TestHelperHoldBench is not a test: run by TestCrossProcess and
// TestCrashedHolder in a child process, it builds a bench, starts a sleep
// in it, prints "INDEX idx gw prefix4 sleep-pid", and holds the bench until
// stdin closes.
func TestHelperHoldBench(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("helper process for TestCrossProcess and TestCrashedHolder")
	}
	fail := func(err error) {
		fmt.Printf("ERROR %v\n", err)
		os.Exit(1)
	}
	b, err := netns.New(t.Context(), netns.Options{Name: "sesamehp"})
	if err != nil {
		fail(err)
	}
	p, err := b.Start(b.GW, "sleep", "30")
	if err != nil {
		fail(err)
	}
	fmt.Printf("INDEX %d %s %s %d\n", b.Index, b.GW, b.Prefix4, p.PID())
	io.Copy(io.Discard, os.Stdin)
	if err := b.Close(); err != nil {
		fail(err)
	}
	os.Exit(0)
}

// holder is a child process holding a bench.
type holder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	idx   int
	gw    string
	p4    netip.Prefix
	pid   int // of the sleep it started
}

func startHolder(t *testing.T, ctx context.Context) *holder {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperHoldBench$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	cmd.WaitDelay = 5 * time.Second
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	h := &holder{cmd: cmd, stdin: stdin}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("helper: %q %v", line, err)
	}
	var p4 string
	if _, err := fmt.Sscanf(line, "INDEX %d %s %s %d", &h.idx, &h.gw, &p4, &h.pid); err != nil {
		t.Fatalf("helper said %q", line)
	}
	h.p4 = netip.MustParsePrefix(p4)
	return h
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// Two processes (like two test packages under `go test ./...`) get distinct
// benches, and the index lock holds across processes.
func TestCrossProcess(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip(netnstest.SkipMessage)
	}
	ctx := testCtx(t)
	h := startHolder(t, ctx)
	b := netnstest.New(t, netns.Options{Name: "sesamehp"})
	if h.idx == b.Index || h.gw == b.GW || h.p4 == b.Prefix4 {
		t.Errorf("child bench (%d %s %s) collides with ours (%d %s %s)", h.idx, h.gw, h.p4, b.Index, b.GW, b.Prefix4)
	}
	if _, err := netns.New(ctx, netns.Options{Index: h.idx}); !errors.Is(err, netns.ErrIndexBusy) {
		t.Errorf("New with the child's index %d: %v, want ErrIndexBusy", h.idx, err)
	}
	h.stdin.Close()
	if err := h.cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	if nsExists(h.gw) || hostHasRoute(t, h.p4) || alive(h.pid) {
		t.Errorf("child's bench outlived its Close")
	}
}

// A holder killed without Close: its processes die with it (parent-death
// signal) and the next bench on its index removes its namespaces and routes.
func TestCrashedHolder(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip(netnstest.SkipMessage)
	}
	ctx := testCtx(t)
	h := startHolder(t, ctx)
	if !alive(h.pid) {
		t.Fatalf("helper's sleep %d not running", h.pid)
	}
	h.cmd.Process.Kill()
	h.cmd.Wait()
	for deadline := time.Now().Add(5 * time.Second); alive(h.pid) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if alive(h.pid) {
		syscall.Kill(h.pid, syscall.SIGKILL) // ours: started by our helper
		t.Errorf("sleep %d survived its killed parent", h.pid)
	}
	if !nsExists(h.gw) || !hostHasRoute(t, h.p4) {
		t.Fatal("the killed helper left no leftovers: nothing to test")
	}
	b, err := netns.New(ctx, netns.Options{Name: "sesamehp", Index: h.idx, Logger: netnstest.Logger(t)})
	if errors.Is(err, netns.ErrIndexBusy) {
		t.Skipf("index %d taken by another process meanwhile", h.idx)
	}
	if err != nil {
		t.Fatalf("bench over the crashed holder's leftovers: %v", err)
	}
	defer b.Close()
	l, err := b.ListenTCP(b.GW, netip.AddrPortFrom(b.GW4, 0))
	if err != nil {
		t.Fatal(err)
	}
	if !b.Reachable(ctx, b.Client, l.Addr().(*net.TCPAddr).AddrPort(), 2*time.Second) {
		t.Error("bench over leftovers does not work")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if nsExists(h.gw) || hostHasRoute(t, h.p4) {
		t.Error("leftovers remain after Close")
	}
}

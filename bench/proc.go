package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/sesame-gw/sesame/internal/netns"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/PID/stat
// (100 on every Linux architecture Go supports).
const clockTicks = 100

// cpuTime returns the CPU time (user+system) a process has used, its
// reaped children's included (knockd and fwknopd fork a firewall command
// per grant, and fwknopd forks iptables on every loop).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

// parseStatCPU reads utime, stime, cutime and cstime (fields 14-17) from a
// /proc/PID/stat line. The command name (field 2) may hold spaces and
// parentheses, so fields are counted after its last ')'.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("proc stat: no ')' in %q", stat)
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 15 {
		return 0, fmt.Errorf("proc stat: %d fields", len(f))
	}
	var ticks int64
	for _, n := range []int{14, 15, 16, 17} {
		v, err := strconv.ParseInt(f[n-3], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("proc stat field %d: %w", n, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// rssKiB returns a process's resident set size (VmRSS) in KiB.
func rssKiB(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseVmRSS(string(b))
}

func parseVmRSS(status string) (float64, error) {
	for line := range strings.SplitSeq(status, "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) >= 1 {
				return strconv.ParseFloat(f[0], 64)
			}
		}
	}
	return 0, fmt.Errorf("proc status: no VmRSS")
}

// helper is a child of the coordinator (the agent or the flood generator)
// running inside a bench namespace with pipes on its stdin and stdout.
// Closing stdin stops it; it also stops by itself when the coordinator
// dies (stdin reaches EOF). ctx cancellation kills it.
type helper struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func startHelper(ctx context.Context, b *netns.Bench, ns string, argv ...string) (*helper, error) {
	cmd := b.Command(ctx, ns, argv...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %v in %s: %w", argv, ns, err)
	}
	return &helper{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<16)}, nil
}

// stop closes stdin and waits for the process (killed by WaitDelay/ctx if
// it lingers).
func (h *helper) stop() error {
	h.in.Close()
	return h.cmd.Wait()
}

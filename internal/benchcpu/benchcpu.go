// Package benchcpu lets a Go benchmark report its rate per CPU-second
// ("pkts/core-s"): the process's user+system CPU time, GC included, which
// stays meaningful on a machine whose cores other work shares, where ns/op
// (wall time) does not. The bench harness (bench/throughput.go) prefers
// this metric. Only benchmarks import it.
package benchcpu

import (
	"syscall"
	"testing"
	"time"
)

// Now is the process's user+system CPU time so far.
func Now() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Report adds the "pkts/core-s" metric: b.N packets over the CPU time
// since start (a Now taken just before the benchmark loop).
func Report(b *testing.B, start time.Duration) {
	if d := Now() - start; d > 0 {
		b.ReportMetric(float64(b.N)/d.Seconds(), "pkts/core-s")
	}
}

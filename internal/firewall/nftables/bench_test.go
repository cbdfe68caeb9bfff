//go:build linux

package nftables

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/mdlayher/netlink"

	"github.com/sesame-gw/sesame/internal/firewall"
)

// grantsFor returns n IPv4 grants with distinct addresses starting at base.
func grantsFor(base, n int) []firewall.Grant {
	gs := make([]firewall.Grant, n)
	for i := range gs {
		k := base + i
		gs[i] = firewall.Grant{Addr: netip.AddrFrom4([4]byte{100, 64 + byte(k>>16&63), byte(k >> 8), byte(k)}), Service: ssh, TTL: time.Minute}
	}
	return gs
}

// benchGrant measures Grant calls of batch grants each against the kernel,
// in a namespace of its own; addresses cycle through 200,000 so the set
// stays bounded.
func benchGrant(b *testing.B, batch int) {
	ns := newNetNS(b)
	f := newNSFirewall(b, ns)
	ctx := context.Background()
	if err := f.Setup(ctx, goldenLayout); err != nil {
		b.Fatal(err)
	}
	const space = 200_000
	pool := grantsFor(0, space)
	i := 0
	for b.Loop() {
		start := i % (space - batch)
		if err := f.Grant(ctx, pool[start:start+batch]); err != nil {
			b.Fatal(err)
		}
		i += batch
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "grants/s")
}

// BenchmarkGrant: one grant per transaction (the knock/SPA path).
func BenchmarkGrant(b *testing.B) { benchGrant(b, 1) }

// BenchmarkGrantBatch1000: 1,000 grants per transaction.
func BenchmarkGrantBatch1000(b *testing.B) { benchGrant(b, 1000) }

// BenchmarkGrantMarshal: the Go side only (validation, encoding, batching)
// of a one-grant transaction, against the test dial. No root needed.
func BenchmarkGrantMarshal(b *testing.B) {
	f, err := New(WithTestDial(func([]netlink.Message) ([]netlink.Message, error) { return nil, nil }))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	ctx := context.Background()
	g := grantsFor(0, 1)
	for b.Loop() {
		if err := f.Grant(ctx, g); err != nil {
			b.Fatal(err)
		}
	}
}

//go:build linux

package nftables

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	nft "github.com/google/nftables"
)

// Watch puts addrs in watch4/watch6 for ttl (rounded up to milliseconds),
// replacing any earlier mark, in one transaction: while marked, their new
// connections to any port are logged to the daemon. ttl must be in
// (0, MaxTTL].
func (f *Firewall) Watch(ctx context.Context, addrs []netip.Addr, ttl time.Duration) error {
	if ttl <= 0 || ttl > MaxTTL {
		return fmt.Errorf("%w: watch TTL %v not in (0, %v]", ErrInvalid, ttl, MaxTTL)
	}
	v4, v6, err := watchElems(addrs, ttl)
	if err != nil {
		return err
	}
	return f.watchOp(ctx, "watch", v4, v6, f.queueRefresh)
}

// Unwatch removes addrs from watch4/watch6; absent ones are not an error.
func (f *Firewall) Unwatch(ctx context.Context, addrs []netip.Addr) error {
	v4, v6, err := watchElems(addrs, 0)
	if err != nil {
		return err
	}
	remove := func(s *nft.Set, elems []nft.SetElement) error {
		keys := make([][]byte, len(elems))
		for i, e := range elems {
			keys[i] = e.Key
		}
		return f.queueRemove(s, keys)
	}
	return f.watchOp(ctx, "unwatch", v4, v6, remove)
}

func (f *Firewall) watchOp(ctx context.Context, op string, v4, v6 []nft.SetElement,
	queue func(*nft.Set, []nft.SetElement) error) error {
	if len(v4)+len(v6) == 0 {
		return nil
	}
	if err := f.lock(ctx); err != nil {
		return err
	}
	defer f.mu.Unlock()
	sets := setDefs(f.table)
	if err := queue(sets[setWatch4], v4); err != nil {
		return f.reset(fmt.Errorf("nftables: %s: %w", op, err))
	}
	if err := queue(sets[setWatch6], v6); err != nil {
		return f.reset(fmt.Errorf("nftables: %s: %w", op, err))
	}
	return f.flush(op, true)
}

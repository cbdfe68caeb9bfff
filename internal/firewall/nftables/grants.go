//go:build linux

package nftables

import (
	"context"
	"fmt"
	"slices"
	"time"

	nft "github.com/google/nftables"

	"github.com/sesame-gw/sesame/internal/firewall"
)

// Grant installs grants in one transaction (see firewall.Firewall). An
// existing grant gets the new TTL. TTLs are rounded up to whole
// milliseconds, the kernel's unit. When the same (address, service) appears
// more than once, the last one wins. IPv4-mapped IPv6 addresses are granted
// as IPv4; zones are ignored.
//
// The transaction must fit in the socket's send buffer (WithSendBuffer):
// with the default, a few hundred thousand grants per call.
func (f *Firewall) Grant(ctx context.Context, grants []firewall.Grant) error {
	v4, v6, err := grantElems(grants)
	if err != nil {
		return err
	}
	if len(v4)+len(v6) == 0 {
		return nil
	}
	if err := f.lock(ctx); err != nil {
		return err
	}
	defer f.mu.Unlock()
	start := time.Now()
	sets := setDefs(f.table)
	if err := f.queueRefresh(sets[setGrants4], v4); err != nil {
		return f.reset(fmt.Errorf("nftables: grant: %w", err))
	}
	if err := f.queueRefresh(sets[setGrants6], v6); err != nil {
		return f.reset(fmt.Errorf("nftables: grant: %w", err))
	}
	if err := f.flush("grant", true); err != nil {
		return err
	}
	f.log.Debug("nftables: granted", "count", len(v4)+len(v6), "took", time.Since(start))
	return nil
}

// Revoke removes grants in one transaction; absent ones are not an error.
// Only the address and service of each grant are used.
func (f *Firewall) Revoke(ctx context.Context, grants []firewall.Grant) error {
	var k4, k6 [][]byte
	seen := make(map[string]bool, len(grants))
	for i, g := range grants {
		if !g.Addr.IsValid() || !g.Service.Valid() {
			return fmt.Errorf("%w: revoke %d: %v %v", ErrInvalid, i, g.Addr, g.Service)
		}
		k := grantKey(g.Addr, g.Service)
		if seen[string(k)] {
			continue
		}
		seen[string(k)] = true
		if len(k) == grantKeyLen4 {
			k4 = append(k4, k)
		} else {
			k6 = append(k6, k)
		}
	}
	if len(seen) == 0 {
		return nil
	}
	if err := f.lock(ctx); err != nil {
		return err
	}
	defer f.mu.Unlock()
	sets := setDefs(f.table)
	if err := f.queueRemove(sets[setGrants4], k4); err != nil {
		return f.reset(fmt.Errorf("nftables: revoke: %w", err))
	}
	if err := f.queueRemove(sets[setGrants6], k6); err != nil {
		return f.reset(fmt.Errorf("nftables: revoke: %w", err))
	}
	if err := f.flush("revoke", true); err != nil {
		return err
	}
	f.log.Debug("nftables: revoked", "count", len(seen))
	return nil
}

// List reads both grant sets and returns the grants with their remaining
// TTL (to the millisecond), sorted by address then service. Without the
// table (before Setup, after Teardown) it returns no grants and no error.
// An element without a timeout (added by hand) is listed with TTL 0;
// elements whose key is not a grant key are skipped.
func (f *Firewall) List(ctx context.Context) ([]firewall.Grant, error) {
	if err := f.lock(ctx); err != nil {
		return nil, err
	}
	defer f.mu.Unlock()
	sets := setDefs(f.table)
	var out []firewall.Grant
	for _, name := range []string{setGrants4, setGrants6} {
		f.deadline()
		elems, err := f.conn.GetSetElements(sets[name])
		if err != nil {
			err = f.reset(fmt.Errorf("nftables: list %s: %w", name, err))
			if ok, terr := f.tableExists(); terr == nil && !ok {
				return nil, nil
			}
			return nil, err
		}
		out = slices.Grow(out, len(elems))
		for _, e := range elems {
			addr, svc, ok := parseGrantKey(e.Key)
			if !ok {
				continue
			}
			out = append(out, firewall.Grant{Addr: addr, Service: svc, TTL: e.Expires})
		}
	}
	slices.SortFunc(out, func(a, b firewall.Grant) int { return compareAddrSvc(a.Addr, a.Service, b.Addr, b.Service) })
	return out, nil
}

// tableExists reports whether the table is in the kernel.
func (f *Firewall) tableExists() (bool, error) {
	f.deadline()
	tables, err := f.conn.ListTablesOfFamily(nft.TableFamilyINet)
	if err != nil {
		return false, f.reset(fmt.Errorf("list tables: %w", err))
	}
	return slices.ContainsFunc(tables, func(t *nft.Table) bool { return t.Name == f.table.Name }), nil
}

// grantElems validates grants and turns them into set elements by family,
// deduplicated (the last occurrence wins: deleting the same key twice in
// one message would fail the batch).
func grantElems(grants []firewall.Grant) (v4, v6 []nft.SetElement, err error) {
	idx := make(map[string]int, len(grants))
	type kv struct {
		key []byte
		ttl time.Duration
	}
	all := make([]kv, 0, len(grants))
	for i, g := range grants {
		if !g.Addr.IsValid() || !g.Service.Valid() {
			return nil, nil, fmt.Errorf("%w: grant %d: %v %v", ErrInvalid, i, g.Addr, g.Service)
		}
		if g.TTL <= 0 || g.TTL > MaxTTL {
			return nil, nil, fmt.Errorf("%w: grant %d (%v %v): TTL %v not in (0, %v]", ErrInvalid, i, g.Addr, g.Service, g.TTL, MaxTTL)
		}
		k := grantKey(g.Addr, g.Service)
		if j, ok := idx[string(k)]; ok {
			all[j].ttl = g.TTL
			continue
		}
		idx[string(k)] = len(all)
		all = append(all, kv{k, g.TTL})
	}
	for _, e := range all {
		el := nft.SetElement{Key: e.key, Timeout: timeoutFor(e.ttl)}
		if len(e.key) == grantKeyLen4 {
			v4 = append(v4, el)
		} else {
			v6 = append(v6, el)
		}
	}
	return v4, v6, nil
}

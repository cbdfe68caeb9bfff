//go:build linux

package nftables

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	nft "github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/sesame-gw/sesame/internal/firewall"
	"github.com/sesame-gw/sesame/internal/service"
)

// Setup installs the table for layout l in one transaction (see
// firewall.Firewall and the package documentation for the ruleset).
//
// On a fresh kernel it creates everything. When the table exists, the
// grant and watch sets are kept as they are (with their elements' running
// timeouts) if their definition is unchanged; grants for services no
// longer in l.Protected are removed; every other chain and set of the table
// is deleted and recreated from l. Other kinds of objects in the table
// (named counters, flowtables) are left alone. Reading the current state
// and writing the new one are two steps: a concurrent change by another
// program in between can make the transaction fail, never half-apply.
func (f *Firewall) Setup(ctx context.Context, l firewall.Layout) error {
	el, err := layoutElems(l)
	if err != nil {
		return err
	}
	if err := f.lock(ctx); err != nil {
		return err
	}
	defer f.mu.Unlock()
	start := time.Now()

	st, err := f.readState()
	if err != nil {
		return fmt.Errorf("nftables: setup: %w", err)
	}
	want := setDefs(f.table)
	keep := make(map[string]bool)
	for name := range stateSets {
		if have, ok := st.sets[name]; ok {
			if compatible(have, want[name]) {
				keep[name] = true
			} else {
				f.log.Warn("nftables: set definition changed; recreating it empty", "set", name)
			}
		}
	}
	protected := make(map[service.Service]bool, len(l.Protected))
	for _, s := range l.Protected {
		protected[s] = true
	}
	stale := make(map[string][][]byte)
	kept := 0
	for _, name := range []string{setGrants4, setGrants6} {
		if !keep[name] {
			continue
		}
		f.deadline()
		elems, err := f.conn.GetSetElements(want[name])
		if err != nil {
			return f.reset(fmt.Errorf("nftables: setup: read %s: %w", name, err))
		}
		for _, e := range elems {
			if _, svc, ok := parseGrantKey(e.Key); ok && protected[svc] {
				kept++
				continue
			}
			stale[name] = append(stale[name], e.Key)
		}
	}

	if err := f.queueSetup(st, want, keep, stale, el); err != nil {
		return f.reset(fmt.Errorf("nftables: setup: %w", err))
	}
	if err := f.flush("setup", false); err != nil {
		return err
	}
	f.log.Info("nftables: table set up", "table", f.table.Name,
		"protected", len(l.Protected), "watched", len(l.Watched), "always_allow", len(l.AlwaysAllow),
		"grants_kept", kept, "grants_dropped", len(stale[setGrants4])+len(stale[setGrants6]),
		"took", time.Since(start))
	return nil
}

func (f *Firewall) queueSetup(st kernelState, want map[string]*nft.Set, keep map[string]bool,
	stale map[string][][]byte, el layoutSets) error {
	f.conn.AddTable(f.table)
	if st.exists {
		// Rules first (they reference sets), then chains, then sets.
		f.conn.FlushTable(f.table)
		for _, c := range st.chains {
			f.conn.DelChain(c)
		}
		for name, s := range st.sets {
			if !keep[name] {
				f.conn.DelSet(s)
			}
		}
	}
	for _, name := range setOrderFor(el.bulk != 0) {
		if keep[name] {
			continue
		}
		if err := f.conn.AddSet(want[name], nil); err != nil {
			return fmt.Errorf("add set %s: %w", name, err)
		}
		for chunk := range slices.Chunk(el.elems[name], f.chunk) {
			if err := f.conn.SetAddElements(want[name], chunk); err != nil {
				return fmt.Errorf("add elements to %s: %w", name, err)
			}
		}
	}
	for _, name := range []string{setGrants4, setGrants6} {
		if err := f.queueRemove(want[name], stale[name]); err != nil {
			return fmt.Errorf("remove stale grants from %s: %w", name, err)
		}
	}
	chain := f.conn.AddChain(inputChain(f.table, f.prio))
	for _, exprs := range rules(want, el.group, el.bulk, el.rate, el.watchTTL, el.onlyIfaces, el.dgram) {
		f.conn.AddRule(&nft.Rule{Table: f.table, Chain: chain, Exprs: exprs})
	}
	return nil
}

// Teardown deletes the table, with its grants. It is idempotent: the
// transaction adds the table (a no-op when it exists) and deletes it.
func (f *Firewall) Teardown(ctx context.Context) error {
	if err := f.lock(ctx); err != nil {
		return err
	}
	defer f.mu.Unlock()
	f.conn.AddTable(f.table)
	f.conn.DelTable(f.table)
	if err := f.flush("teardown", false); err != nil {
		return err
	}
	f.log.Info("nftables: table removed", "table", f.table.Name)
	return nil
}

// kernelState is what Setup finds of its table in the kernel.
type kernelState struct {
	exists bool
	chains []*nft.Chain
	sets   map[string]*nft.Set
}

func (f *Firewall) readState() (kernelState, error) {
	ok, err := f.tableExists()
	if err != nil || !ok {
		return kernelState{}, err
	}
	st := kernelState{exists: true, sets: make(map[string]*nft.Set)}
	f.deadline()
	chains, err := f.conn.ListChainsOfTableFamily(nft.TableFamilyINet)
	if err != nil {
		return kernelState{}, f.reset(fmt.Errorf("list chains: %w", err))
	}
	for _, c := range chains {
		if c.Table.Name == f.table.Name {
			st.chains = append(st.chains, c)
		}
	}
	f.deadline()
	sets, err := f.conn.GetSets(f.table)
	if err != nil {
		return kernelState{}, f.reset(fmt.Errorf("list sets: %w", err))
	}
	for _, s := range sets {
		st.sets[s.Name] = s
	}
	return st, nil
}

// layoutSets is a validated layout: the elements of the static sets by set
// name, and the NFLOG group.
type layoutSets struct {
	elems      map[string][]nft.SetElement
	group      uint16
	bulk       uint16        // Layout.BulkLogGroup
	rate       uint32        // Layout.LogRate, defaulted
	watchTTL   time.Duration // Layout.WatchTimeout, rounded up to seconds
	onlyIfaces bool          // Layout.Interfaces lists the interfaces to act on
	dgram      dgramFilter
}

// dgramFilter is a validated Layout.Datagrams: the SPA ports and the union
// of the shapes (see firewall.DatagramFilter.Bounds). No ports: no filter.
type dgramFilter struct {
	ports          []uint16
	minLen, maxLen int
	first          []byte // nil: any first byte
}

// maxFirstBytes bounds the first-byte alternatives: each is one comparison
// in the rule.
const maxFirstBytes = 16

// maxUDPPayload is the largest UDP payload over IPv4 (65535 - 20 - 8).
const maxUDPPayload = 65507

func datagramFilter(f firewall.DatagramFilter) (dgramFilter, error) {
	if !f.Active() {
		return dgramFilter{}, nil
	}
	for _, s := range f.Shapes {
		if s.MinLen < 1 || s.MaxLen < s.MinLen || s.MaxLen > maxUDPPayload {
			return dgramFilter{}, fmt.Errorf("%w: datagram shape length %d..%d", ErrInvalid, s.MinLen, s.MaxLen)
		}
	}
	var d dgramFilter
	d.minLen, d.maxLen, d.first = f.Bounds()
	if len(d.first) > maxFirstBytes {
		return dgramFilter{}, fmt.Errorf("%w: %d first-byte alternatives (at most %d)", ErrInvalid, len(d.first), maxFirstBytes)
	}
	seen := map[uint16]bool{}
	for _, p := range f.Ports {
		if p == 0 {
			return dgramFilter{}, fmt.Errorf("%w: datagram filter port 0", ErrInvalid)
		}
		if !seen[p] {
			seen[p] = true
			d.ports = append(d.ports, p)
		}
	}
	slices.Sort(d.ports)
	return d, nil
}

// layoutElems validates l and encodes its static sets.
func layoutElems(l firewall.Layout) (layoutSets, error) {
	el := layoutSets{elems: make(map[string][]nft.SetElement), group: l.LogGroup, bulk: l.BulkLogGroup, rate: l.LogRate}
	if el.rate == 0 {
		el.rate = firewall.DefaultLogRate
	}
	dg, err := datagramFilter(l.Datagrams)
	if err != nil {
		return layoutSets{}, err
	}
	el.dgram = dg
	if l.WatchTimeout < 0 || l.WatchTimeout > MaxTTL {
		return layoutSets{}, fmt.Errorf("%w: watch timeout %v not in [0, %v]", ErrInvalid, l.WatchTimeout, MaxTTL)
	}
	// Whole seconds: nft lists a rule's timeout without its milliseconds
	// (the listing of `sesame serve --check` would differ).
	el.watchTTL = (l.WatchTimeout + time.Second - 1).Truncate(time.Second)
	if el.bulk != 0 && el.bulk == el.group {
		return layoutSets{}, fmt.Errorf("%w: bulk log group %d is the log group", ErrInvalid, el.bulk)
	}
	for _, list := range []struct {
		set  string
		svcs []service.Service
	}{{setProtected, l.Protected}, {setWatched, l.Watched}} {
		seen := make(map[service.Service]bool)
		for _, s := range list.svcs {
			if !s.Valid() {
				return layoutSets{}, fmt.Errorf("%w: %s service %v", ErrInvalid, list.set, s)
			}
			if !seen[s] {
				seen[s] = true
				el.elems[list.set] = append(el.elems[list.set], nft.SetElement{Key: serviceKey(s)})
			}
		}
	}
	ifaces := l.Interfaces
	if len(ifaces) == 0 {
		ifaces = []string{"lo"}
	} else {
		el.onlyIfaces = true
	}
	seenIf := make(map[string]bool)
	for _, name := range ifaces {
		if name == "" || len(name) >= unix.IFNAMSIZ {
			return layoutSets{}, fmt.Errorf("%w: interface name %q", ErrInvalid, name)
		}
		if !seenIf[name] {
			seenIf[name] = true
			key := make([]byte, unix.IFNAMSIZ)
			copy(key, name)
			el.elems[setIfaces] = append(el.elems[setIfaces], nft.SetElement{Key: key})
		}
	}
	var p4, p6 []netip.Prefix
	for _, p := range l.AlwaysAllow {
		if !p.IsValid() {
			return layoutSets{}, fmt.Errorf("%w: always-allow prefix %v", ErrInvalid, p)
		}
		if p.Addr().Is4() {
			p4 = append(p4, p)
		} else {
			p6 = append(p6, p)
		}
	}
	for set, ps := range map[string][]netip.Prefix{setAllow4: p4, setAllow6: p6} {
		for _, iv := range intervalElems(ps) {
			el.elems[set] = append(el.elems[set], nft.SetElement{Key: iv.Key, IntervalEnd: iv.End})
		}
	}
	return el, nil
}

// Package firewalltest provides Fake, an in-memory firewall.Firewall for
// tests of the code above the firewall (the gateway engine, the CLI).
//
// Fake follows the contract of firewall.Firewall and the behaviour of the
// nftables backend where the contract leaves room: grants expire by an
// injected clock, Grant and Revoke fail with
// ErrNotSetUp before Setup or after Teardown, a Setup keeps the grants of
// services that stay protected, TTLs are rounded up to milliseconds, List
// is sorted by address then service. It records every call and can be told
// to fail the next call of an operation.
//
// A Fake is safe for concurrent use. The zero value is not usable: call New.
package firewalltest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/sesame-gw/sesame/internal/firewall"
	"github.com/sesame-gw/sesame/internal/service"
)

// ErrNotSetUp is returned by Grant and Revoke before Setup
// or after Teardown (the nftables backend fails the same way).
var ErrNotSetUp = errors.New("firewalltest: table not set up")

// ErrInvalid is wrapped when an argument is rejected (invalid address or
// service, TTL <= 0).
var ErrInvalid = errors.New("firewalltest: invalid argument")

// Op names a Firewall method, for Calls and FailNext.
type Op string

// The operations of firewall.Firewall.
const (
	OpSetup    Op = "Setup"
	OpGrant    Op = "Grant"
	OpRevoke   Op = "Revoke"
	OpList     Op = "List"
	OpTeardown Op = "Teardown"
)

// Call is one recorded method call, with copies of its arguments.
type Call struct {
	Op     Op
	Layout firewall.Layout  // Setup
	Grants []firewall.Grant // Grant, Revoke
	Err    error            // what the call returned
	Time   time.Time        // the fake clock at the call
}

type grantKey struct {
	addr netip.Addr
	svc  service.Service
}

// Fake is an in-memory firewall.Firewall.
type Fake struct {
	now func() time.Time

	mu     sync.Mutex
	layout *firewall.Layout // nil: not set up
	grants map[grantKey]time.Time
	calls  []Call
	fail   map[Op]error
}

var _ firewall.Firewall = (*Fake)(nil)

// New returns a Fake reading time from clock (time.Now when nil).
func New(clock func() time.Time) *Fake {
	if clock == nil {
		clock = time.Now
	}
	return &Fake{
		now:    clock,
		grants: make(map[grantKey]time.Time),
		fail:   make(map[Op]error),
	}
}

// FailNext makes the next call of op return err without changing state.
func (f *Fake) FailNext(op Op, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[op] = err
}

// record appends a call; it runs with f.mu held and returns err.
func (f *Fake) record(c Call, err error) error {
	c.Err = err
	c.Time = f.now()
	f.calls = append(f.calls, c)
	return err
}

// injected returns (and clears) the error FailNext set for op.
func (f *Fake) injected(op Op) error {
	err := f.fail[op]
	delete(f.fail, op)
	return err
}

// expire drops grants whose time has come.
func (f *Fake) expire(now time.Time) {
	for k, exp := range f.grants {
		if !now.Before(exp) {
			delete(f.grants, k)
		}
	}
}

// Setup implements firewall.Firewall.
func (f *Fake) Setup(ctx context.Context, l firewall.Layout) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := Call{Op: OpSetup, Layout: copyLayout(l)}
	if err := cmp.Or(ctx.Err(), f.injected(OpSetup), validLayout(l)); err != nil {
		return f.record(c, err)
	}
	lc := copyLayout(l)
	f.layout = &lc
	for k := range f.grants {
		if !slices.Contains(l.Protected, k.svc) {
			delete(f.grants, k)
		}
	}
	return f.record(c, nil)
}

// Grant implements firewall.Firewall.
func (f *Fake) Grant(ctx context.Context, grants []firewall.Grant) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := Call{Op: OpGrant, Grants: slices.Clone(grants)}
	if err := cmp.Or(ctx.Err(), f.injected(OpGrant), f.needSetup(len(grants))); err != nil {
		return f.record(c, err)
	}
	for i, g := range grants {
		if !g.Addr.IsValid() || !g.Service.Valid() || g.TTL <= 0 {
			return f.record(c, fmt.Errorf("%w: grant %d: %v %v TTL %v", ErrInvalid, i, g.Addr, g.Service, g.TTL))
		}
	}
	now := f.now()
	for _, g := range grants {
		f.grants[grantKey{norm(g.Addr), g.Service}] = now.Add(roundTTL(g.TTL))
	}
	return f.record(c, nil)
}

// Revoke implements firewall.Firewall.
func (f *Fake) Revoke(ctx context.Context, grants []firewall.Grant) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := Call{Op: OpRevoke, Grants: slices.Clone(grants)}
	if err := cmp.Or(ctx.Err(), f.injected(OpRevoke), f.needSetup(len(grants))); err != nil {
		return f.record(c, err)
	}
	for i, g := range grants {
		if !g.Addr.IsValid() || !g.Service.Valid() {
			return f.record(c, fmt.Errorf("%w: revoke %d: %v %v", ErrInvalid, i, g.Addr, g.Service))
		}
	}
	for _, g := range grants {
		delete(f.grants, grantKey{norm(g.Addr), g.Service})
	}
	return f.record(c, nil)
}

// List implements firewall.Firewall. Without a table it returns no grants
// and no error, like the nftables backend.
func (f *Fake) List(ctx context.Context) ([]firewall.Grant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := cmp.Or(ctx.Err(), f.injected(OpList)); err != nil {
		return nil, f.record(Call{Op: OpList}, err)
	}
	f.record(Call{Op: OpList}, nil)
	return f.live(), nil
}

// live lists the unexpired grants, sorted; f.mu must be held.
func (f *Fake) live() []firewall.Grant {
	now := f.now()
	f.expire(now)
	out := make([]firewall.Grant, 0, len(f.grants))
	for k, exp := range f.grants {
		out = append(out, firewall.Grant{Addr: k.addr, Service: k.svc, TTL: exp.Sub(now)})
	}
	slices.SortFunc(out, func(a, b firewall.Grant) int {
		return cmp.Or(a.Addr.Compare(b.Addr), cmp.Compare(a.Service.Proto, b.Service.Proto),
			cmp.Compare(a.Service.Port, b.Service.Port))
	})
	return out
}

// Teardown implements firewall.Firewall.
func (f *Fake) Teardown(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := cmp.Or(ctx.Err(), f.injected(OpTeardown)); err != nil {
		return f.record(Call{Op: OpTeardown}, err)
	}
	f.layout = nil
	clear(f.grants)
	return f.record(Call{Op: OpTeardown}, nil)
}

// needSetup fails when there is work to do and no table; f.mu held.
func (f *Fake) needSetup(n int) error {
	if n > 0 && f.layout == nil {
		return ErrNotSetUp
	}
	return nil
}

func validLayout(l firewall.Layout) error {
	for _, s := range slices.Concat(l.Protected, l.Watched) {
		if !s.Valid() {
			return fmt.Errorf("%w: layout service %v", ErrInvalid, s)
		}
	}
	for _, p := range l.AlwaysAllow {
		if !p.IsValid() {
			return fmt.Errorf("%w: layout prefix %v", ErrInvalid, p)
		}
	}
	return nil
}

func validAddrs(addrs []netip.Addr) error {
	for i, a := range addrs {
		if !a.IsValid() {
			return fmt.Errorf("%w: address %d is invalid", ErrInvalid, i)
		}
	}
	return nil
}

func copyLayout(l firewall.Layout) firewall.Layout {
	l.Protected = slices.Clone(l.Protected)
	l.Watched = slices.Clone(l.Watched)
	l.AlwaysAllow = slices.Clone(l.AlwaysAllow)
	return l
}

// norm maps IPv4-mapped IPv6 addresses to IPv4 and drops zones, as the
// nftables backend does.
func norm(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }

// roundTTL rounds up to whole milliseconds, the kernel's unit.
func roundTTL(d time.Duration) time.Duration {
	return (d + time.Millisecond - 1).Truncate(time.Millisecond)
}

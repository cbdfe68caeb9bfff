package knockd

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// localAddrs answers "is this an address of this host?", from the
// addresses of every interface, re-read when an unknown address is asked
// about (at most once a second) and every 30 s. knockd reads its
// interface's addresses once at start, so a DHCP renumbering makes it
// deaf until restarted.
type localAddrs struct {
	mu   sync.Mutex
	set  map[netip.Addr]bool
	at   time.Time
	now  func() time.Time
	list func() ([]netip.Addr, error)
}

func newLocalAddrs(now func() time.Time) *localAddrs {
	return &localAddrs{now: now, list: interfaceAddrs}
}

func (l *localAddrs) has(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	stale := now.Sub(l.at) > 30*time.Second
	if l.set[a] && !stale {
		return true
	}
	if stale || now.Sub(l.at) > time.Second {
		l.refresh(now)
	}
	return l.set[a]
}

func (l *localAddrs) refresh(now time.Time) {
	as, err := l.list()
	if err != nil {
		return
	}
	l.set = make(map[netip.Addr]bool, len(as))
	for _, a := range as {
		l.set[a.Unmap().WithZone("")] = true
	}
	l.at = now
}

func interfaceAddrs() ([]netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out, nil
}

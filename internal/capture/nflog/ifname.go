package nflog

import (
	"net"
	"time"
)

// Bounds of the interface-name cache: names are re-read after ifNameTTL
// (an index can be reused after an interface is deleted, or renamed), and
// the map is reset when it reaches maxIfNames entries.
const (
	ifNameTTL  = time.Minute
	maxIfNames = 256
)

type ifName struct {
	name string
	at   time.Time
}

// ifNames maps input interface indexes (NFULA_IFINDEX_INDEV) to names,
// caching lookups (each is an rtnetlink round trip) and failures alike.
// Used by the hook goroutine only: not safe for concurrent use.
type ifNames struct {
	lookup func(index int) (string, error)
	m      map[uint32]ifName
}

func newIfNames() *ifNames {
	return &ifNames{lookup: lookupIfName, m: make(map[uint32]ifName)}
}

func lookupIfName(index int) (string, error) {
	ifi, err := net.InterfaceByIndex(index)
	if err != nil {
		return "", err
	}
	return ifi.Name, nil
}

// name returns the name of interface index, or "" when it cannot be found.
func (c *ifNames) name(index uint32, now time.Time) string {
	if e, ok := c.m[index]; ok && now.Sub(e.at) < ifNameTTL && !now.Before(e.at) {
		return e.name
	}
	name, err := c.lookup(int(index))
	if err != nil {
		name = ""
	}
	if len(c.m) >= maxIfNames {
		clear(c.m)
	}
	c.m[index] = ifName{name: name, at: now}
	return name
}

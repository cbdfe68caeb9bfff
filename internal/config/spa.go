package config

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/sesame-gw/sesame/internal/policy"
	"github.com/sesame-gw/sesame/internal/replay"
	"github.com/sesame-gw/sesame/internal/service"
	"github.com/sesame-gw/sesame/internal/spa"
	"github.com/sesame-gw/sesame/internal/spakey"
)

// Limits of the [spa] table.
const (
	MaxSPAWindow      = time.Hour
	MaxReplayCapacity = 1 << 24
	maxAllowRange     = 4096 // ports per allow range, as for door open ranges
)

// SPA is the [spa] table: Sesame's native Single Packet Authorization
// (docs/protocol.md). Present means enabled.
type SPA struct {
	// Port is the UDP port SPA datagrams are sent to (default 62201). It is
	// watched like a knock port: logged to the daemon and dropped.
	Port int `toml:"port"`
	// Key is the gateway's private key file (sesame keygen --gateway). A
	// relative path is relative to the config file's directory.
	Key string `toml:"key"`
	// Window is how far a packet's timestamp may be from the gateway's
	// clock, either way (default 60s).
	Window Duration `toml:"window"`
	// ReplayCapacity is the most packets the replay cache remembers at once
	// (default 65536); when full, new packets are refused until entries
	// expire.
	ReplayCapacity int `toml:"replay_capacity"`
	// ReplaySync makes every accepted packet fdatasync the replay state
	// file (survives power loss; one disk flush per accepted packet).
	ReplaySync bool `toml:"replay_sync"`
}

// Client is one [[client]] table: who may send SPA packets, and what they
// may open (docs/protocol.md §7).
type Client struct {
	Name string `toml:"name"`
	// PublicKey is the client's "sesame-id1:..." text (sesame keygen).
	PublicKey string `toml:"public_key"`
	// Allow lists the services and ranges the client may open.
	Allow []Range `toml:"allow"`
	// MaxDuration is the longest grant the client may ask for (default
	// 60s); longer requests are refused.
	MaxDuration Duration `toml:"max_duration"`
	// Sources limits where packets may come from (and the other address a
	// client may ask for); empty means anywhere.
	Sources []Prefix `toml:"sources"`
	// Expires, when set, is the instant from which the client is refused.
	Expires Expiry `toml:"expires"`
	// OtherAddress lets the client ask to open for an address other than
	// the packet's source (behind NAT or a proxy).
	OtherAddress bool `toml:"other_address"`
}

// Expiry is a [[client]] expires value: a TOML date (2027-01-31, the start
// of that day, UTC), a TOML date-time (with an offset, or without one:
// UTC), or the same written as a string. Parse errors are reported by
// validation, with the line of the table they are in.
type Expiry struct {
	T   time.Time
	err error
}

// UnmarshalTOML implements toml.Unmarshaler.
func (e *Expiry) UnmarshalTOML(v any) error {
	*e = Expiry{}
	switch v := v.(type) {
	case time.Time:
		switch v.Location().String() {
		case "date-local", "datetime-local":
			e.T = time.Date(v.Year(), v.Month(), v.Day(), v.Hour(), v.Minute(), v.Second(), v.Nanosecond(), time.UTC)
		case "time-local":
			e.err = fmt.Errorf("%s is a time of day, not a date", v.Format("15:04:05"))
		default:
			e.T = v
		}
	case string:
		e.T, e.err = parseExpiry(v)
	default:
		e.err = fmt.Errorf("%v is not a date (write 2027-01-31 or 2027-01-31T18:00:00Z)", v)
	}
	return nil
}

func parseExpiry(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02T15:04:05", s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not a date (write 2027-01-31 or 2027-01-31T18:00:00Z)", s)
}

// validateSPA fills the [spa] defaults and checks [spa] and [[client]].
func (c *Config) validateSPA(v *validator) {
	if s := c.SPA; s != nil {
		if s.Port == 0 {
			s.Port = spa.DefaultPort
		}
		if s.Window == 0 {
			s.Window = Duration(spa.DefaultWindow)
		}
		if s.ReplayCapacity == 0 {
			s.ReplayCapacity = replay.DefaultCapacity
		}
		if s.Port < 1 || s.Port > 65535 {
			v.at("spa", 0, "port", "%d is not from 1 to 65535", s.Port)
		}
		if s.Key == "" {
			v.at("spa", 0, "key", "missing: the gateway key file (sesame keygen --gateway -o FILE)")
		}
		if s.Window <= 0 || s.Window.D() > MaxSPAWindow {
			v.at("spa", 0, "window", "%v is not from 1ms to %v", s.Window.D(), MaxSPAWindow)
		}
		if s.ReplayCapacity < 1 || s.ReplayCapacity > MaxReplayCapacity {
			v.at("spa", 0, "replay_capacity", "%d is not from 1 to %d", s.ReplayCapacity, MaxReplayCapacity)
		}
		c.checkSPAPort(v)
	}
	if len(c.Clients) > 0 && c.SPA == nil {
		v.at("client", 0, "", "[[client]] needs an [spa] table with the gateway key")
	}
	names, keys := map[string]int{}, map[string]int{}
	for i := range c.Clients {
		cl := &c.Clients[i]
		if cl.Name == "" {
			v.at("client", i, "name", "missing")
		} else if j, dup := names[cl.Name]; dup {
			v.at("client", i, "name", "%q is also the name of client %d", cl.Name, j)
		} else {
			names[cl.Name] = i
		}
		if cl.PublicKey == "" {
			v.at("client", i, "public_key", "missing: the client's sesame-id1: key (sesame keygen prints it)")
		} else if pub, err := spakey.ParseIdentity(cl.PublicKey); err != nil {
			v.at("client", i, "public_key", "%v", err)
		} else if j, dup := keys[string(pub)]; dup {
			v.at("client", i, "public_key", "the same key as client %d (%s)", j, c.Clients[j].Name)
		} else {
			keys[string(pub)] = i
		}
		c.validateAllow(v, i)
		if cl.MaxDuration < 0 || cl.MaxDuration.D() > MaxDuration {
			v.at("client", i, "max_duration", "%v is not from 1ms to %v", cl.MaxDuration.D(), MaxDuration)
		}
		if cl.Expires.err != nil {
			v.at("client", i, "expires", "%v", cl.Expires.err)
		}
	}
}

func (c *Config) validateAllow(v *validator, i int) {
	cl := &c.Clients[i]
	if len(cl.Allow) == 0 {
		v.at("client", i, "allow", "missing: what may the client open?")
	}
	knocks := map[service.Service]string{}
	for _, d := range c.Doors {
		for _, s := range d.Sequence {
			knocks[service.Service(s)] = d.Name
		}
	}
	for _, r := range cl.Allow {
		r := service.Range(r)
		if r.Len() > maxAllowRange {
			v.at("client", i, "allow", "range %v is too wide (at most %d ports)", r, maxAllowRange)
			continue
		}
		for _, s := range r.Services() {
			if door, ok := knocks[s]; ok {
				v.at("client", i, "allow", "%v is a knock port of door %q; a knock port must stay closed", s, door)
			}
		}
	}
}

// checkSPAPort refuses an SPA port that a door or a client opens, or that is
// a knock step: the SPA port is watched and must never be granted.
func (c *Config) checkSPAPort(v *validator) {
	p, ok := c.SPAPort()
	if !ok {
		return
	}
	for _, d := range c.Doors {
		for _, s := range d.Sequence {
			if service.Service(s) == p {
				v.at("spa", 0, "port", "%v is a knock port of door %q", p, d.Name)
			}
		}
		for _, r := range d.Open {
			if service.Range(r).Contains(p) {
				v.at("spa", 0, "port", "%v is opened by door %q; the SPA port must stay closed", p, d.Name)
			}
		}
	}
	for _, cl := range c.Clients {
		for _, r := range cl.Allow {
			if service.Range(r).Contains(p) {
				v.at("spa", 0, "port", "%v is allowed to client %q; the SPA port must stay closed", p, cl.Name)
			}
		}
	}
}

// SPAPort is the UDP service SPA datagrams are sent to, if [spa] is
// configured.
func (c *Config) SPAPort() (service.Service, bool) {
	if c.SPA == nil || c.SPA.Port < 1 || c.SPA.Port > 65535 {
		return service.Service{}, false
	}
	return service.Service{Proto: service.UDP, Port: uint16(c.SPA.Port)}, true
}

// SPAKeyPath is [spa] key, relative paths taken from the config file's
// directory; "" without [spa].
func (c *Config) SPAKeyPath() string {
	if c.SPA == nil || c.SPA.Key == "" {
		return ""
	}
	if filepath.IsAbs(c.SPA.Key) || c.File == "" {
		return c.SPA.Key
	}
	return filepath.Join(filepath.Dir(c.File), c.SPA.Key)
}

// Policies converts the [[client]] tables for policy.NewSet. The config
// must have been validated (Parse does).
func (c *Config) Policies() ([]policy.Client, error) {
	out := make([]policy.Client, len(c.Clients))
	for i, cl := range c.Clients {
		pub, err := spakey.ParseIdentity(cl.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("client %q: %w", cl.Name, err)
		}
		allow := make([]service.Range, len(cl.Allow))
		for j, r := range cl.Allow {
			allow[j] = service.Range(r)
		}
		out[i] = policy.Client{
			Name:         cl.Name,
			Key:          ed25519.PublicKey(pub),
			Allow:        allow,
			MaxDuration:  cl.MaxDuration.D(),
			Sources:      prefixes(cl.Sources),
			Expires:      cl.Expires.T,
			OtherAddress: cl.OtherAddress,
		}
	}
	return out, nil
}

// addClientServices adds every service some client may open to set.
func (c *Config) addClientServices(set map[service.Service]bool) {
	for _, cl := range c.Clients {
		for _, r := range cl.Allow {
			if r := service.Range(r); r.Len() <= maxAllowRange {
				for _, s := range r.Services() {
					set[s] = true
				}
			}
		}
	}
}

// errNothing is reported for a config that protects nothing.
var errNothing = errors.New("no [[door]] and no [[client]]: nothing to protect")

package client

import (
	"crypto/ecdh"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/sesame-gw/sesame/internal/service"
	"github.com/sesame-gw/sesame/internal/spa"
	"github.com/sesame-gw/sesame/internal/spakey"
)

// Profile defaults.
const (
	DefaultDuration = 30 * time.Second
	// DefaultIdentity is the identity key file when neither a flag nor a
	// profile names one, relative to the user's home directory.
	DefaultIdentity = ".config/sesame/id.key"
	// ProfilesFile is client.toml's path relative to the user's config
	// directory ($XDG_CONFIG_HOME or ~/.config).
	ProfilesFile = "sesame/client.toml"
)

// Profile is one [profile.NAME] table of client.toml with the file's
// top-level defaults applied: what `sesame open NAME` and `sesame proxy`
// need to reach one gateway.
type Profile struct {
	// Name is the table name.
	Name string
	// Host is the gateway's name or address; empty means Name.
	Host string
	// GatewayKey is the gateway's public key, nil if not set.
	GatewayKey *ecdh.PublicKey
	// Key is the identity key file (~ expanded; relative paths are relative
	// to client.toml's directory); empty if not set. With Cert, it is the
	// certificate's private key.
	Key string
	// Cert, when set, is a client certificate file (sesame ca issue):
	// requests carry it (certificate SPA, docs/pki.md) instead of the raw
	// public key. Expanded like Key.
	Cert string
	// Port is the gateway's SPA port (UDP).
	Port uint16
	// Services are what `sesame open NAME` asks for without arguments.
	Services []service.Range
	// Duration is how long grants should live.
	Duration time.Duration
	// ForAddress, when valid, is the address to open for instead of the
	// packet's source.
	ForAddress netip.Addr
	// IP is 4 or 6 to use only that address family, 0 for either.
	IP int
}

// Target is the host to send to: Host, or Name.
func (p *Profile) Target() string {
	if p.Host != "" {
		return p.Host
	}
	return p.Name
}

// rawProfile is a table as written; every key is optional.
type rawProfile struct {
	Host       string   `toml:"host"`
	GatewayKey string   `toml:"gateway_key"`
	Key        string   `toml:"key"`
	Cert       string   `toml:"cert"`
	Port       int      `toml:"port"`
	Services   []string `toml:"services"`
	Duration   string   `toml:"duration"`
	ForAddress string   `toml:"for_address"`
	IP         int      `toml:"ip"`
}

type rawFile struct {
	rawProfile
	Profiles map[string]rawProfile `toml:"profile"`
}

// Profiles is a parsed client.toml. The zero value (no file) has no
// profiles and the defaults. It is immutable after parsing.
type Profiles struct {
	// File is the path it was read from.
	File     string
	defaults Profile
	byName   map[string]*Profile
}

// DefaultProfilesPath is $XDG_CONFIG_HOME/sesame/client.toml, or
// ~/.config/sesame/client.toml.
func DefaultProfilesPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, ProfilesFile), nil
}

// LoadProfiles reads client.toml at path. A missing file is an error
// wrapping fs.ErrNotExist (callers using the default path ignore it).
func LoadProfiles(path string) (*Profiles, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("profiles: %w", err)
	}
	return ParseProfiles(path, b)
}

// ParseProfiles parses src as the contents of file. Unknown keys, bad
// services, durations, addresses and keys are errors naming the file and
// the key.
func ParseProfiles(file string, src []byte) (*Profiles, error) {
	var raw rawFile
	md, err := toml.Decode(string(src), &raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if u := md.Undecoded(); len(u) > 0 {
		keys := make([]string, len(u))
		for i, k := range u {
			keys[i] = k.String()
		}
		return nil, fmt.Errorf("%s: unknown key %s", file, strings.Join(keys, ", "))
	}
	ps := &Profiles{File: file, byName: map[string]*Profile{}}
	base := Profile{Port: spa.DefaultPort, Duration: DefaultDuration}
	if err := ps.apply(&base, raw.rawProfile, ""); err != nil {
		return nil, err
	}
	ps.defaults = base
	for name, r := range raw.Profiles {
		if name == "" || strings.ContainsAny(name, " \t/") {
			return nil, fmt.Errorf("%s: profile %q: not a usable name", file, name)
		}
		p := base
		p.Name = name
		p.Services = slices.Clone(base.Services)
		if err := ps.apply(&p, r, "profile."+name+"."); err != nil {
			return nil, err
		}
		ps.byName[name] = &p
	}
	return ps, nil
}

// apply overlays the keys set in r on p.
func (ps *Profiles) apply(p *Profile, r rawProfile, where string) error {
	bad := func(key string, err error) error { return fmt.Errorf("%s: %s%s: %w", ps.File, where, key, err) }
	if r.Host != "" {
		p.Host = r.Host
	}
	if r.GatewayKey != "" {
		k, err := spakey.ParseGateway(r.GatewayKey)
		if err != nil {
			return bad("gateway_key", err)
		}
		p.GatewayKey = k
	}
	if r.Key != "" {
		p.Key = ps.expand(r.Key)
	}
	if r.Cert != "" {
		p.Cert = ps.expand(r.Cert)
	}
	if r.Port != 0 {
		if r.Port < 1 || r.Port > 65535 {
			return bad("port", fmt.Errorf("%d is not from 1 to 65535", r.Port))
		}
		p.Port = uint16(r.Port)
	}
	if r.Services != nil {
		p.Services = nil
		for _, s := range r.Services {
			rg, err := service.ParseRange(s, service.TCP)
			if err != nil {
				return bad("services", err)
			}
			p.Services = append(p.Services, rg)
		}
	}
	if r.Duration != "" {
		d, err := time.ParseDuration(r.Duration)
		if err != nil || d <= 0 {
			return bad("duration", fmt.Errorf("%q is not a positive duration (write 30s or 5m)", r.Duration))
		}
		p.Duration = d
	}
	if r.ForAddress != "" {
		a, err := netip.ParseAddr(r.ForAddress)
		if err != nil {
			return bad("for_address", err)
		}
		p.ForAddress = a.Unmap()
	}
	switch r.IP {
	case 0:
	case 4, 6:
		p.IP = r.IP
	default:
		return bad("ip", fmt.Errorf("%d is not 4 or 6", r.IP))
	}
	return nil
}

// expand resolves ~/ against the home directory and relative paths against
// the file's directory.
func (ps *Profiles) expand(path string) string {
	if rest, ok := strings.CutPrefix(path, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	if !filepath.IsAbs(path) && ps.File != "" {
		return filepath.Join(filepath.Dir(ps.File), path)
	}
	return path
}

// Defaults is the profile of a host no table names: the file's top-level
// keys over the built-in defaults.
func (ps *Profiles) Defaults() Profile {
	if ps == nil {
		return Profile{Port: spa.DefaultPort, Duration: DefaultDuration}
	}
	d := ps.defaults
	d.Services = slices.Clone(d.Services)
	return d
}

// Get returns the profile called name.
func (ps *Profiles) Get(name string) (Profile, bool) {
	if ps == nil {
		return Profile{}, false
	}
	p, ok := ps.byName[name]
	if !ok {
		return Profile{}, false
	}
	out := *p
	out.Services = slices.Clone(p.Services)
	return out, true
}

// ErrAmbiguous is returned by ForHost when several profiles have the host
// and disagree on how to reach it.
var ErrAmbiguous = errors.New("several profiles match")

// ForHost finds the profile for host as ssh passes it (%h): the profile
// named host, else the profiles whose host is host (case-insensitive). Two
// matching profiles are fine if they agree on the gateway key, identity
// (key and certificate), port, address and family (they may differ in services); otherwise the
// error wraps ErrAmbiguous. No match returns false.
func (ps *Profiles) ForHost(host string) (Profile, bool, error) {
	if p, ok := ps.Get(host); ok {
		return p, true, nil
	}
	if ps == nil {
		return Profile{}, false, nil
	}
	var names []string
	for name, p := range ps.byName {
		if strings.EqualFold(p.Host, host) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return Profile{}, false, nil
	}
	slices.Sort(names)
	first := ps.byName[names[0]]
	for _, n := range names[1:] {
		p := ps.byName[n]
		if !sameGateway(first, p) {
			return Profile{}, false, fmt.Errorf("%w host %s: %s (name one with sesame open NAME)", ErrAmbiguous, host, strings.Join(names, ", "))
		}
	}
	p, _ := ps.Get(names[0])
	return p, true, nil
}

func sameGateway(a, b *Profile) bool {
	keyEq := (a.GatewayKey == nil) == (b.GatewayKey == nil) && (a.GatewayKey == nil || a.GatewayKey.Equal(b.GatewayKey))
	return keyEq && a.Key == b.Key && a.Cert == b.Cert && a.Port == b.Port && a.ForAddress == b.ForAddress && a.IP == b.IP
}

// Names lists the profile names, sorted.
func (ps *Profiles) Names() []string {
	if ps == nil {
		return nil
	}
	out := make([]string, 0, len(ps.byName))
	for n := range ps.byName {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

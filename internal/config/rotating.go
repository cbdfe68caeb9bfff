package config

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sesame-gw/sesame/internal/knock"
	"github.com/sesame-gw/sesame/internal/service"
	"github.com/sesame-gw/sesame/internal/totp"
)

// Rotating holds the keys of a rotating door (docs/configuration.md,
// "Rotating doors"): a [[door]] with secret_file derives its sequence from
// the secret and the time (internal/totp) instead of a fixed sequence.
// It is embedded in Door, so its keys sit in the [[door]] table.
type Rotating struct {
	// SecretFile is the shared secret (base32, see totp.ParseSecret); a
	// relative path is relative to the configuration file's directory.
	SecretFile string `toml:"secret_file"`
	// Period is RFC 6238's time step; default 30s.
	Period Duration `toml:"period"`
	// PortRange is where the knock ports are drawn from; default
	// 40000-49999/tcp.
	PortRange *Range `toml:"port_range"`
	// Steps is the number of knocks; default 3.
	Steps int `toml:"steps"`

	secret []byte // read by Load
}

// IsRotating reports whether the door is a rotating door.
func (d *Door) IsRotating() bool { return d.SecretFile != "" }

func (d *Door) rotatingDefaults() {
	if !d.IsRotating() {
		return
	}
	if d.Period == 0 {
		d.Period = Duration(totp.DefaultPeriod)
	}
	if d.PortRange == nil {
		r := Range(totp.DefaultPorts)
		d.PortRange = &r
	}
	if d.Steps == 0 {
		d.Steps = totp.DefaultSteps
	}
}

// TOTPDoor returns the rotating door's parameters, with the secret when
// the configuration was read with Load (nil with Parse alone).
func (d *Door) TOTPDoor() totp.Door {
	td := totp.Door{Name: d.Name, Key: d.secret, Period: d.Period.D(), Steps: d.Steps}
	if d.PortRange != nil {
		td.Ports = service.Range(*d.PortRange)
	}
	return td
}

// validateRotating checks door i when it is a rotating door; it reports
// whether it was one (then the fixed-door checks do not apply).
func (c *Config) validateRotating(v *validator, i int, protected map[service.Service]string) bool {
	d := &c.Doors[i]
	if !d.IsRotating() {
		if d.Period != 0 || d.PortRange != nil || d.Steps != 0 {
			v.at("door", i, "secret_file", "period, port_range and steps need secret_file (a rotating door)")
		}
		return false
	}
	if len(d.Sequence) > 0 {
		v.at("door", i, "sequence", "a rotating door (secret_file) derives its sequence: remove sequence")
	}
	if len(d.Open) == 0 {
		v.at("door", i, "open", "missing: what does the door open?")
	}
	if d.SeqTimeout <= 0 || time.Duration(d.SeqTimeout) > time.Hour {
		v.at("door", i, "seq_timeout", "%v is not from 1ms to 1h", time.Duration(d.SeqTimeout))
	}
	if d.Duration <= 0 || time.Duration(d.Duration) > MaxDuration {
		v.at("door", i, "duration", "%v is not from 1ms to %v", time.Duration(d.Duration), MaxDuration)
	}
	if _, err := knock.ParseFlags(d.TCPFlags); err != nil {
		v.at("door", i, "tcp_flags", "%v", err)
	}
	td := d.TOTPDoor()
	td.Key = make([]byte, totp.MinKeyLen) // the parameters, not the secret, are checked here
	if err := td.Validate(); err != nil {
		key := "port_range"
		switch {
		case d.Steps < 1 || d.Steps > totp.MaxSteps:
			key = "steps"
		case d.Period.D() < time.Second || d.Period.D() > totp.MaxPeriod || d.Period.D()%time.Second != 0:
			key = "period"
		}
		v.at("door", i, key, "%v", err)
	}
	if r := service.Range(*d.PortRange); r.Len() > maxRotatingPorts {
		v.at("door", i, "port_range", "range %v is too wide (at most %d ports)", r, maxRotatingPorts)
	} else {
		for _, s := range r.Services() {
			if owner, ok := protected[s]; ok {
				v.at("door", i, "port_range", "%v is a port door %q opens; a knock port must stay closed", s, owner)
				break
			}
		}
	}
	return true
}

// maxRotatingPorts bounds a rotating door's port range: every port of it is
// watched by the firewall.
const maxRotatingPorts = 16384

// loadSecrets reads the rotating doors' secret files. They must not be
// readable by group or others.
func (c *Config) loadSecrets(src string) error {
	for i := range c.Doors {
		d := &c.Doors[i]
		if !d.IsRotating() {
			continue
		}
		path := d.SecretFile
		if !filepath.IsAbs(path) {
			path = filepath.Join(filepath.Dir(c.File), path)
		}
		fail := func(err error) error {
			return &Error{File: c.File, Line: locate(src, "door", i, "secret_file"), Key: fmt.Sprintf("door[%d].secret_file", i), Err: err}
		}
		st, err := os.Stat(path)
		if err != nil {
			return fail(err)
		}
		if st.Mode().Perm()&0o077 != 0 {
			return fail(fmt.Errorf("%s is readable by group or others (mode %v): chmod 600 it", path, st.Mode().Perm()))
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return fail(err)
		}
		key, err := totp.ParseSecret(b)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", path, err))
		}
		d.secret = key
	}
	return nil
}

// rotatingKnockDoor is door i as the knock state machine takes it.
func (c *Config) rotatingKnockDoor(i int) knock.Door {
	d := &c.Doors[i]
	flags, _ := knock.ParseFlags(d.TCPFlags)
	return knock.Door{Name: d.Name, Rotator: d.TOTPDoor(), Timeout: d.SeqTimeout.D(), Flags: flags, Sources: prefixes(d.Sources)}
}

// addRotatingPorts adds every port a rotating door may knock on to set.
func (c *Config) addRotatingPorts(set map[service.Service]bool) {
	for i := range c.Doors {
		if d := &c.Doors[i]; d.IsRotating() && d.PortRange != nil {
			for _, s := range service.Range(*d.PortRange).Services() {
				set[s] = true
			}
		}
	}
}

package fwknopgw

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/sesame-gw/sesame/internal/fwknop/accessconf"
	"github.com/sesame-gw/sesame/internal/service"
)

// CmdCycleStateFile is the name of the Runner's state file, kept in
// fwknopd's run directory (FWKNOP_RUN_DIR) next to digest.cache.
const CmdCycleStateFile = "sesame-cmd-cycle.json"

// Files name fwknopd's configuration (fwknopd -a and -c).
type Files struct {
	// Access is access.conf (required). It overrides fwknopd.conf's
	// ACCESS_FILE and ACCESS_FOLDER, as fwknopd -a does.
	Access string
	// Server is fwknopd.conf; "" means fwknopd's defaults (Debian's
	// /run/fwknop run directory, port 62201, aging 120 s, persistent
	// digest.cache).
	Server string
	// Location interprets ACCESS_EXPIRE dates (fwknopd: local time);
	// nil means time.Local.
	Location *time.Location
}

// Config is fwknopd's configuration as Sesame serves it.
type Config struct {
	Stanzas []*accessconf.Stanza
	Server  *accessconf.ServerConfig
	// Port is the UDP port SPA packets arrive on (PCAP_FILTER's port, or
	// UDPSERV_PORT with ENABLE_UDP_SERVER Y).
	Port uint16
	// Warnings are settings ignored or adjusted where that is safe, one
	// line each, for the log.
	Warnings []string
}

// Load reads and checks the files. Every unsupported setting that would
// change what is granted is an error; the others are Warnings.
func Load(f Files) (*Config, error) {
	if f.Access == "" {
		return nil, fmt.Errorf("fwknop: no access.conf given")
	}
	loc := f.Location
	if loc == nil {
		loc = time.Local
	}
	c := &Config{}
	var src []byte
	name := "fwknopd.conf (defaults)"
	if f.Server != "" {
		var err error
		if src, err = os.ReadFile(f.Server); err != nil {
			return nil, fmt.Errorf("fwknop: %w", err)
		}
		name = f.Server
		c.Warnings = append(c.Warnings, permWarnings(f.Server, "its settings")...)
	}
	sc, err := accessconf.ParseServerConfig(name, src)
	if err != nil {
		return nil, err
	}
	c.Server = sc
	for _, w := range sc.Warnings {
		c.Warnings = append(c.Warnings, w.String())
	}
	if sc.AccessFolder != "" {
		c.Warnings = append(c.Warnings, fmt.Sprintf("%s: ACCESS_FOLDER %s ignored: --fwknop-access names the access.conf to use", name, sc.AccessFolder))
	}
	access, err := filepath.Abs(f.Access)
	if err != nil {
		return nil, fmt.Errorf("fwknop: %w", err)
	}
	ac, err := accessconf.Load(access, accessconf.Options{FS: os.DirFS("/"), Location: loc})
	if err != nil {
		return nil, err
	}
	c.Warnings = append(c.Warnings, permWarnings(access, "keys")...)
	for _, w := range ac.Warnings {
		c.Warnings = append(c.Warnings, w.String())
	}
	c.Stanzas = ac.Stanzas
	if c.Port = sc.Port(); c.Port == 0 {
		return nil, fmt.Errorf("fwknop: %s: no SPA port (PCAP_FILTER or UDPSERV_PORT)", name)
	}
	return c, nil
}

// permWarnings warns when a file others may read holds secrets (fwknopd
// warns too: "should only be user read/write (0600)").
func permWarnings(path, what string) []string {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	return []string{fmt.Sprintf("%s: mode %04o lets other users read %s; chmod 600 it", path, fi.Mode().Perm(), what)}
}

// Protected is every service some stanza may grant through Sesame's
// firewall: the OPEN_PORTS of the stanzas without CMD_CYCLE_OPEN (a
// CMD_CYCLE stanza opens with its own commands, as in fwknopd), sorted.
func (c *Config) Protected() []service.Service {
	set := map[service.Service]bool{}
	for _, s := range c.Stanzas {
		if s.CmdCycleOpen != "" {
			continue
		}
		for _, svc := range s.OpenPorts {
			set[svc] = true
		}
	}
	out := make([]service.Service, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b service.Service) int {
		if a.Proto != b.Proto {
			return int(a.Proto) - int(b.Proto)
		}
		return int(a.Port) - int(b.Port)
	})
	return out
}

// OpenAnyWarnings lists the stanzas without OPEN_PORTS and without
// CMD_CYCLE_OPEN: fwknopd lets them open any port, Sesame only the ports
// it protects (protected: every OPEN_PORTS and what sesame.toml opens).
func (c *Config) OpenAnyWarnings(protected []service.Service) []string {
	var out []string
	for _, s := range c.Stanzas {
		if s.CmdCycleOpen == "" && len(s.OpenPorts) == 0 {
			out = append(out, fmt.Sprintf("%s has no OPEN_PORTS: it may open only the %d services Sesame protects (%v), not any port as in fwknopd", s.Name(), len(protected), protected))
		}
	}
	return out
}

// NeedsRunner reports whether some stanza has CMD_CYCLE_OPEN or, with
// allowCommands, ENABLE_CMD_EXEC.
func (c *Config) NeedsRunner(allowCommands bool) bool {
	for _, s := range c.Stanzas {
		if s.CmdCycleOpen != "" || allowCommands && s.EnableCmdExec {
			return true
		}
	}
	return false
}

// Settings returns the Handler settings for this configuration.
func (c *Config) Settings(protected []service.Service, allowCommands bool) Settings {
	p := make(map[service.Service]bool, len(protected))
	for _, s := range protected {
		p[s] = true
	}
	return Settings{Stanzas: c.Stanzas, MaxPacketAge: c.Server.PacketAge(), AllowCommands: allowCommands, Protected: p, Port: c.Port}
}

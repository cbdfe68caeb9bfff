package fwknopgw

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/sesame-gw/sesame/internal/service"
)

// Server is a Handler with the state it owns: the replay digests and the
// command runner. Close it when the daemon stops.
type Server struct {
	Handler *Handler
	Digests *Digests
	Runner  *Runner // nil when no stanza needs one
}

// Options tune Start.
type Options struct {
	// Protected are the services Sesame hides (sesame.toml's and
	// Config.Protected); requests for others are refused.
	Protected []service.Service
	// AllowCommands lets ENABLE_CMD_EXEC stanzas run command messages.
	AllowCommands bool
	// Now is the start time (digest pruning); zero means time.Now().
	Now time.Time
	// Exec runs commands; nil means OSExec.
	Exec Exec
	// Logger receives the start-up lines and command outcomes.
	Logger *slog.Logger
}

// Start opens the replay digests (digest.cache in fwknopd's format when
// ENABLE_DIGEST_PERSISTENCE is Y, creating its directory with mode 0700),
// the command runner when a stanza needs one (its state next to
// digest.cache, in FWKNOP_RUN_DIR), and returns the Handler.
func Start(c *Config, o Options) (*Server, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	window := Window(c.Server.PacketAge())
	srv := &Server{}
	if c.Server.DigestPersistence {
		if err := os.MkdirAll(filepath.Dir(c.Server.DigestFile), 0o700); err != nil {
			return nil, fmt.Errorf("fwknop: DIGEST_FILE directory: %w", err)
		}
		d, skipped, err := OpenDigests(c.Server.DigestFile, window, 0, now, log)
		if err != nil {
			return nil, fmt.Errorf("fwknop: %w", err)
		}
		for _, s := range skipped {
			log.Warn("fwknop: digest.cache line skipped", "file", c.Server.DigestFile, "err", s)
		}
		log.Info("fwknop: replay digests loaded", "file", c.Server.DigestFile, "live", d.Len(), "keep", keepText(window))
		srv.Digests = d
	} else {
		log.Warn("fwknop: ENABLE_DIGEST_PERSISTENCE N: a restart forgets which packets were used")
		srv.Digests = NewDigests(window, 0)
	}
	if c.NeedsRunner(o.AllowCommands) {
		if err := os.MkdirAll(c.Server.RunDir, 0o700); err != nil {
			srv.Close()
			return nil, fmt.Errorf("fwknop: FWKNOP_RUN_DIR: %w", err)
		}
		r, err := NewRunner(RunnerOptions{State: filepath.Join(c.Server.RunDir, CmdCycleStateFile), Exec: o.Exec, Logger: log})
		if err != nil {
			srv.Close()
			return nil, fmt.Errorf("fwknop: %w", err)
		}
		srv.Runner = r
	}
	var cmds Commands
	if srv.Runner != nil {
		cmds = srv.Runner
	}
	h, err := New(c.Settings(o.Protected, o.AllowCommands), srv.Digests, cmds, log)
	if err != nil {
		srv.Close()
		return nil, err
	}
	srv.Handler = h
	return srv, nil
}

// Close stops the runner (scheduled closes stay in its state file) and
// closes digest.cache.
func (s *Server) Close() {
	if s.Runner != nil {
		s.Runner.Close()
	}
	if s.Digests != nil {
		s.Digests.Close()
	}
}

func keepText(window time.Duration) string {
	if window == 0 {
		return "forever (packet aging off)"
	}
	return window.String()
}

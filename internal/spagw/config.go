package spagw

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sesame-gw/sesame/internal/config"
	"github.com/sesame-gw/sesame/internal/policy"
	"github.com/sesame-gw/sesame/internal/replay"
	"github.com/sesame-gw/sesame/internal/spakey"
)

// ReplayFile is the name of the replay state file in the state directory.
const ReplayFile = "spa-replay"

// FromConfig builds the Settings of a validated config: it reads the
// gateway key file ([spa] key; refused if group or others may read it) and
// indexes the [[client]] tables. Call it again on a reload and pass the
// result to Handler.Update. cfg.SPA must not be nil.
func FromConfig(cfg *config.Config) (Settings, error) {
	if cfg.SPA == nil {
		return Settings{}, fmt.Errorf("spagw: no [spa] table")
	}
	k, err := spakey.ReadFile(cfg.SPAKeyPath())
	if err != nil {
		return Settings{}, fmt.Errorf("[spa] key: %w", err)
	}
	if k.Kind() != spakey.Gateway {
		return Settings{}, fmt.Errorf("[spa] key %s: an identity key, not a gateway key (sesame keygen --gateway)", cfg.SPAKeyPath())
	}
	cs, err := cfg.Policies()
	if err != nil {
		return Settings{}, err
	}
	set, err := policy.NewSet(cs)
	if err != nil {
		return Settings{}, err
	}
	return Settings{Key: k.Gateway(), Clients: set, Window: cfg.SPA.Window.D()}, nil
}

// OpenReplay opens (or creates) the persisted replay cache of a validated
// config in its state directory, creating the directory (mode 0700) if
// needed. The Store outlives reloads; close it when the daemon stops.
func OpenReplay(cfg *config.Config, now time.Time) (*replay.Store, error) {
	if cfg.SPA == nil {
		return nil, fmt.Errorf("spagw: no [spa] table")
	}
	dir := cfg.Gateway.StateDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state_dir: %w", err)
	}
	s, err := replay.OpenStore(filepath.Join(dir, ReplayFile), replay.Options{Capacity: cfg.SPA.ReplayCapacity, Sync: cfg.SPA.ReplaySync}, now)
	if err != nil {
		return nil, fmt.Errorf("spa replay state: %w", err)
	}
	return s, nil
}

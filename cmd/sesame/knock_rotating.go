package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/sesame-gw/sesame/internal/service"
	"github.com/sesame-gw/sesame/internal/totp"
)

// rotatingFlags are `sesame knock`'s options for a rotating door
// (docs/configuration.md, "Rotating doors"); the defaults are the
// gateway's.
type rotatingFlags struct {
	door, secret string
	period       time.Duration
	ports        string
	steps        int
	offset       int
}

func addRotatingFlags(fs *flag.FlagSet) *rotatingFlags {
	r := &rotatingFlags{}
	fs.StringVar(&r.door, "door", "", "knock a rotating door by name (with --secret); the ports are derived, not given")
	fs.StringVar(&r.secret, "secret", "", "the rotating door's shared secret file (base32)")
	fs.DurationVar(&r.period, "period", totp.DefaultPeriod, "with --door: the door's period")
	fs.StringVar(&r.ports, "port-range", totp.DefaultPorts.String(), "with --door: the door's port range")
	fs.IntVar(&r.steps, "steps", totp.DefaultSteps, "with --door: the door's number of knocks")
	fs.IntVar(&r.offset, "period-offset", 0, "with --door: knock the sequence this many periods away (-1: the previous one, still accepted)")
	return r
}

func (r *rotatingFlags) enabled() bool { return r.door != "" || r.secret != "" }

// sequence derives the knocks to send at now.
func (r *rotatingFlags) sequence(now time.Time) ([]service.Service, error) {
	if r.door == "" || r.secret == "" {
		return nil, &exitError{code: 2, err: errors.New("--door and --secret go together")}
	}
	b, err := os.ReadFile(r.secret)
	if err != nil {
		return nil, err
	}
	key, err := totp.ParseSecret(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.secret, err)
	}
	ports, err := service.ParseRange(r.ports, service.TCP)
	if err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	d := totp.Door{Name: r.door, Key: key, Period: r.period, Ports: ports, Steps: r.steps}
	if err := d.Validate(); err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	c := int64(d.Counter(now)) + int64(r.offset)
	if c < 0 {
		return nil, &exitError{code: 2, err: errors.New("--period-offset goes before the epoch")}
	}
	return d.Sequence(uint64(c)), nil
}

package knockd

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/sesame-gw/sesame/internal/capture/afpacket"
	"github.com/sesame-gw/sesame/internal/knock"
	"github.com/sesame-gw/sesame/internal/knockdconf"
	"github.com/sesame-gw/sesame/internal/service"
)

// door is one knockd.conf door at run time.
type door struct {
	conf knockdconf.Door
	ot   *oneTime // One_Time_Sequences, nil for a fixed sequence
	g    *group
	idx  int // index in g's machine
}

// sequence is what the door accepts now (nil: disabled).
func (d *door) sequence() []service.Service {
	if d.ot != nil {
		return d.ot.current
	}
	return d.conf.Sequence
}

// group is the doors that watch the same destination: this host's
// addresses, or one Target. Each group has its own state machine, so
// Target doors never share attempts with the others.
type group struct {
	target netip.Addr // invalid: this host
	m      *knock.Machine
	doors  []*door
}

// buildGroups turns a configuration (read from file) into groups, opening
// the one-time sequence files. A door whose file has no sequence left is
// an error, as in knockd; errors name the file and the door's line. With
// prev (a reload), a group watching the same destination as one of prev
// carries over the attempts in progress on its unchanged doors
// (knock.Machine.Replace).
func buildGroups(file string, conf *knockdconf.Config, opts knock.Options, prev []*group) ([]*group, []*door, error) {
	if len(conf.Doors) == 0 {
		return nil, nil, &knockdconf.Error{File: file, Err: errors.New("no door in the configuration")}
	}
	var groups []*group
	var doors []*door
	byTarget := map[netip.Addr]*group{}
	for _, c := range conf.Doors {
		d := &door{conf: c}
		if c.OneTimeFile != "" {
			ot, err := openOneTime(c.OneTimeFile)
			if err == nil && ot.current == nil {
				err = fmt.Errorf("no more sequences left in the one time sequences file %s", c.OneTimeFile)
			}
			if err != nil {
				return nil, nil, &knockdconf.Error{File: file, Line: c.Line, Err: fmt.Errorf("door [%s]: %w", c.Name, err)}
			}
			d.ot = ot
		}
		g := byTarget[c.Target]
		if g == nil {
			g = &group{target: c.Target}
			byTarget[c.Target] = g
			groups = append(groups, g)
		}
		d.g, d.idx = g, len(g.doors)
		g.doors = append(g.doors, d)
		doors = append(doors, d)
	}
	for _, g := range groups {
		kd := make([]knock.Door, len(g.doors))
		for i, d := range g.doors {
			kd[i] = d.conf.KnockDoor(d.sequence())
			if err := kd[i].Validate(); err != nil {
				return nil, nil, &knockdconf.Error{File: file, Line: d.conf.Line, Err: err}
			}
		}
		for _, old := range prev {
			if old.target == g.target {
				g.m = old.m.Replace(kd, opts.MaxSources)
				break
			}
		}
		if g.m == nil {
			g.m = knock.NewWithOptions(kd, opts)
		}
	}
	return groups, doors, nil
}

// filterFor is the capture filter for doors. In parity mode it is
// knockd's: the doors' ports only (TCP ones with the door's flags). In the
// default mode it also delivers every packet that could have been a knock
// (TCP with some door's flags, UDP when some door knocks over UDP), so a
// stray from a knocking source resets it; established TCP traffic (ACK
// without SYN) stays in the kernel when every door asks for SYN.
func filterFor(doors []*door, parity bool) afpacket.Filter {
	var f afpacket.Filter
	var anyTCP, anyUDP, anyFlags bool
	var conds []afpacket.FlagCond
	for _, d := range doors {
		seq := d.sequence()
		var tcp, udp []afpacket.PortRange
		for _, s := range seq {
			r := afpacket.PortRange{First: s.Port, Last: s.Port}
			if s.Proto == service.TCP {
				tcp = append(tcp, r)
			} else {
				udp = append(udp, r)
			}
		}
		var flags []afpacket.FlagCond
		if d.conf.Flags != (knock.Flags{}) {
			flags = []afpacket.FlagCond{{Set: d.conf.Flags.Set, Clear: d.conf.Flags.Clear}}
		}
		if len(tcp) > 0 {
			f.Rules = append(f.Rules, afpacket.Rule{Proto: service.TCP, Ports: tcp, Flags: flags})
			anyTCP = true
			if flags == nil {
				anyFlags = true
			} else if !containsCond(conds, flags[0]) {
				conds = append(conds, flags[0])
			}
		}
		if len(udp) > 0 {
			f.Rules = append(f.Rules, afpacket.Rule{Proto: service.UDP, Ports: udp})
			anyUDP = true
		}
	}
	if !parity {
		if anyTCP {
			r := afpacket.Rule{Proto: service.TCP}
			if !anyFlags {
				r.Flags = conds
			}
			f.Rules = append(f.Rules, r)
		}
		if anyUDP {
			f.Rules = append(f.Rules, afpacket.Rule{Proto: service.UDP})
		}
	}
	return f
}

func containsCond(list []afpacket.FlagCond, c afpacket.FlagCond) bool {
	for _, x := range list {
		if x == c {
			return true
		}
	}
	return false
}

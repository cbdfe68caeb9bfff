package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/sesame-gw/sesame/internal/config"
	"github.com/sesame-gw/sesame/internal/nftexport"
	"github.com/sesame-gw/sesame/internal/service"
)

func init() {
	register("export", command{summary: "print a daemonless ruleset for plain doors: export nft [--door NAME] -c sesame.toml", run: runExport})
}

func runExport(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "nft" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintln(stderr, "usage: sesame export nft [--door NAME] [--table NAME] -c sesame.toml")
			return nil
		}
		return &exitError{code: 2, err: errors.New("usage: sesame export nft [--door NAME] [--table NAME] -c sesame.toml")}
	}
	fs := newFlagSet("export nft", stderr)
	path := fs.String("c", "/etc/sesame/sesame.toml", "configuration file")
	fs.StringVar(path, "config", "/etc/sesame/sesame.toml", "configuration file")
	only := fs.String("door", "", "export only this door")
	table := fs.String("table", nftexport.DefaultTable, "name of the inet table")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, err: fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	var doors []nftexport.Door
	var skipped []string
	found := false
	for i := range cfg.Doors {
		d := &cfg.Doors[i]
		if *only != "" && d.Name != *only {
			continue
		}
		found = true
		if d.IsRotating() {
			if *only != "" {
				return fmt.Errorf("door %q is a rotating door: its sequence is computed from a secret, which the kernel alone cannot do", d.Name)
			}
			skipped = append(skipped, d.Name)
			continue
		}
		kd := cfg.KnockDoor(i)
		open := make([]service.Range, len(d.Open))
		for j, r := range d.Open {
			open[j] = service.Range(r)
		}
		doors = append(doors, nftexport.Door{
			Name: d.Name, Sequence: kd.Sequence, SeqTimeout: kd.Timeout, Flags: kd.Flags,
			Sources: kd.Sources, Open: open, Duration: d.Duration.D(),
		})
	}
	if *only != "" && !found {
		return fmt.Errorf("no door named %q in %s", *only, *path)
	}
	if len(doors) == 0 {
		return fmt.Errorf("no plain door to export in %s", *path)
	}
	out, err := nftexport.Ruleset(doors, nftexport.Options{Table: *table, Interfaces: cfg.Gateway.Interfaces, AlwaysAllow: cfg.AlwaysAllow()})
	if err != nil {
		return err
	}
	if len(skipped) > 0 {
		fmt.Fprintf(stderr, "sesame export: rotating doors need the daemon, not exported: %s\n", strings.Join(skipped, ", "))
		out = fmt.Sprintf("# Not exported (rotating doors need the daemon): %s\n", strings.Join(skipped, ", ")) + out
	}
	_, err = io.WriteString(stdout, out)
	return err
}

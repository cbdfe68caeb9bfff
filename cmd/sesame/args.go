package main

import (
	"flag"
	"strings"
)

// parseInterspersed parses flags wherever they appear among the positional
// arguments ("sesame knock HOST 7000 --wait tcp/22"), and returns the
// positionals in order. "--" ends flag parsing.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		// A lone "-" or a negative-looking positional is data, not a flag.
		pos = append(pos, args[0])
		args = args[1:]
		for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
			pos = append(pos, args[0])
			args = args[1:]
		}
	}
}

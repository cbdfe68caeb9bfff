package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sesame-gw/sesame/internal/config"
	"github.com/sesame-gw/sesame/internal/knockdconf"
	"github.com/sesame-gw/sesame/internal/service"
)

func init() {
	register("import", command{summary: "print the sesame.toml equivalent of another tool's config: import knockd FILE", run: runImport})
}

// importers translate a foreign configuration file to sesame.toml text.
// Other files may add theirs in init.
var importers = map[string]func(path string, stdout, stderr io.Writer) error{
	"knockd": importKnockd,
}

func runImport(args []string, stdout, stderr io.Writer) error {
	names := make([]string, 0, len(importers))
	for n := range importers {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprintf(stderr, "usage: sesame import {%s} FILE\n", strings.Join(names, "|"))
		return nil
	}
	if len(args) != 2 {
		return &exitError{code: 2, err: fmt.Errorf("usage: sesame import {%s} FILE", strings.Join(names, "|"))}
	}
	imp, ok := importers[args[0]]
	if !ok {
		return &exitError{code: 2, err: fmt.Errorf("unknown format %q (want %s)", args[0], strings.Join(names, ", "))}
	}
	return imp(args[1], stdout, stderr)
}

// closingCommand recognises a door that removes access (knockd's classic
// openSSH/closeSSH pair): Sesame's grants expire by themselves.
var closingCommand = regexp.MustCompile(`(?:\s-D\s|\bdelete\b|--remove-|\bufw\s+delete\b)`)

// importKnockd prints the sesame.toml equivalent of a knockd.conf. What
// has no equivalent is kept as comments, with the reason, and the output
// always loads (a door that would not is commented out).
func importKnockd(path string, stdout, stderr io.Writer) error {
	conf, err := readKnockdConf(path)
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Imported from %s by `sesame import knockd`. Review before use.\n", path)
	b.WriteString("# Sesame opens ports itself (an nftables set with timeouts) instead of running\n")
	b.WriteString("# knockd's commands; to keep running the commands, use\n")
	fmt.Fprintf(&b, "#   sesame serve --knockd-conf %s\n", path)
	o := conf.Options
	b.WriteString("\n[gateway]\n")
	if o.Interface != "" {
		fmt.Fprintf(&b, "interfaces = [%s]\n", tomlString(o.Interface))
	}
	if o.UseSyslog || o.LogFile != "" || o.PidFile != "" {
		b.WriteString("# knockd's UseSyslog, LogFile and PidFile have no equivalent: Sesame logs to\n# stderr (the journal under systemd) and runs in the foreground.\n")
	}
	blocks := make([]doorBlock, len(conf.Doors))
	for i := range conf.Doors {
		blocks[i] = knockdDoorBlock(&conf.Doors[i])
	}
	// Drop doors the full file would refuse, one at a time.
	for range blocks {
		var body strings.Builder
		var order []int
		for i, d := range blocks {
			if d.reason == "" {
				order = append(order, i)
				body.WriteString(d.toml)
			}
		}
		if len(order) == 0 {
			break
		}
		_, err := config.Parse("imported.toml", []byte("[gateway]\n"+body.String()))
		if err == nil {
			break
		}
		bad := doorIndex(err)
		if bad < 0 || bad >= len(order) {
			bad = 0
		}
		blocks[order[bad]].reason = firstLine(err)
	}
	imported := 0
	for _, d := range blocks {
		b.WriteString("\n")
		b.WriteString(d.comments)
		if d.reason != "" {
			fmt.Fprintf(&b, "# NOT IMPORTED: %s\n", d.reason)
			for _, l := range strings.Split(strings.TrimSuffix(d.toml, "\n"), "\n") {
				b.WriteString("# " + l + "\n")
			}
			continue
		}
		imported++
		b.WriteString(d.toml)
	}
	if imported == 0 {
		b.WriteString("\n# No door could be imported: add one before `sesame serve` (docs/configuration.md).\n")
		fmt.Fprintln(stderr, "sesame import: no door could be imported; see the comments in the output")
	}
	_, err = io.WriteString(stdout, b.String())
	return err
}

type doorBlock struct {
	comments, toml string
	reason         string // non-empty: left out, this is why
}

func knockdDoorBlock(d *knockdconf.Door) doorBlock {
	var c, t strings.Builder
	fmt.Fprintf(&c, "# [%s] from line %d\n", d.Name, d.Line)
	for _, kv := range []struct {
		key string
		cmd knockdconf.Command
	}{{"Start_Command", d.Start}, {"Start_Command_6", d.Start6}, {"Stop_Command", d.Stop}, {"Stop_Command_6", d.Stop6}} {
		if kv.cmd.Set {
			fmt.Fprintf(&c, "#   %s = %s\n", kv.key, kv.cmd.Text)
		}
	}
	fmt.Fprintf(&t, "[[door]]\nname = %s\n", tomlString(d.Name))
	if len(d.Sequence) > 0 {
		steps := make([]string, len(d.Sequence))
		for i, s := range d.Sequence {
			steps[i] = tomlString(s.String())
		}
		fmt.Fprintf(&t, "sequence = [%s]\n", strings.Join(steps, ", "))
	}
	fmt.Fprintf(&t, "seq_timeout = %s\n", tomlString(d.SeqTimeout.String()))
	if fl := d.Flags.String(); fl != "" {
		parts := strings.Split(fl, ",")
		for i := range parts {
			parts[i] = tomlString(parts[i])
		}
		fmt.Fprintf(&t, "tcp_flags = [%s]\n", strings.Join(parts, ", "))
	}
	blk := doorBlock{comments: c.String()}
	start := d.StartCommand(false)
	if start == "" {
		start = d.StartCommand(true)
	}
	g, guessed := knockdconf.GuessOpen(start)
	switch {
	case d.OneTimeFile != "":
		blk.reason = "One_Time_Sequences has no equivalent; a rotating door (secret_file, docs/configuration.md) gives each knock its own sequence without a file"
	case d.Target.IsValid():
		blk.reason = "Target (knocks to another address) has no equivalent: Sesame watches this host's own addresses"
	case start == "":
		blk.reason = "the door runs no command"
	case closingCommand.MatchString(start):
		blk.reason = "a closing door: Sesame's grants close by themselves after `duration`"
	case !guessed:
		blk.reason = "cannot tell what the start command opens: add `open` and `duration` by hand"
	}
	if guessed {
		open := make([]string, len(g.Open))
		for i, r := range g.Open {
			open[i] = tomlString(service.Range(r).String())
		}
		fmt.Fprintf(&t, "open = [%s]", strings.Join(open, ", "))
		if g.ProtoGuessed {
			t.WriteString("  # protocol not in the command: TCP assumed")
		}
		t.WriteString("\n")
		dur, why := 30*time.Second, "knockd never closed it (no stop command): Sesame's default"
		switch {
		case g.Timeout > 0:
			dur, why = g.Timeout, "the timeout in the start command"
		case d.Stop.Set || d.Stop6.Set:
			dur, why = d.CmdTimeout, "knockd ran Stop_Command after Cmd_Timeout"
		}
		if dur <= 0 {
			dur, why = time.Second, "Cmd_Timeout was 0"
		}
		fmt.Fprintf(&t, "duration = %s  # %s\n", tomlString(dur.String()), why)
	}
	blk.toml = t.String()
	return blk
}

var doorKey = regexp.MustCompile(`door\[(\d+)\]`)

// doorIndex finds which [[door]] a config error is about (-1: unknown).
func doorIndex(err error) int {
	var ce *config.Error
	if errors.As(err, &ce) {
		if m := doorKey.FindStringSubmatch(ce.Key); m != nil {
			n, _ := strconv.Atoi(m[1])
			return n
		}
	}
	if m := doorKey.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return -1
}

func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimPrefix(s, "imported.toml:")
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

var _ = os.Stdout

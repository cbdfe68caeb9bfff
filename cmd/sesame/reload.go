package main

import (
	"context"
	"fmt"
	"io"

	"github.com/sesame-gw/sesame/internal/control"
)

func init() {
	register("reload", command{summary: "make the running gateway re-read its configuration; an invalid one is refused (root)", run: runReload})
}

func runReload(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("reload", stderr)
	socket := socketFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, err: fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	ctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
	defer cancel()
	if err := control.Reload(ctx, *socket); err != nil {
		return fmt.Errorf("refused, the running configuration stays: %w", err)
	}
	fmt.Fprintln(stdout, "configuration reloaded")
	return nil
}

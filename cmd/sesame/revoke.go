package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"

	"github.com/sesame-gw/sesame/internal/control"
	"github.com/sesame-gw/sesame/internal/service"
)

func init() {
	register("revoke", command{summary: "end grants early: revoke ADDR [PORT/PROTO] (root)", run: runRevoke})
}

func runRevoke(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("revoke", stderr)
	socket := socketFlag(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 {
		return &exitError{code: 2, err: fmt.Errorf("usage: sesame revoke ADDR [PORT/PROTO]")}
	}
	addr, err := netip.ParseAddr(pos[0])
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("address %q: %w", pos[0], err)}
	}
	var svc service.Service
	if len(pos) == 2 {
		if svc, err = service.Parse(pos[1], service.TCP); err != nil {
			return &exitError{code: 2, err: err}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
	defer cancel()
	gone, err := control.Revoke(ctx, *socket, addr, svc)
	if err != nil {
		return err
	}
	if len(gone) == 0 {
		what := addr.String()
		if svc.Valid() {
			what += " " + svc.String()
		}
		fmt.Fprintf(stdout, "no live grant for %s\n", what)
		return nil
	}
	for _, g := range gone {
		fmt.Fprintf(stdout, "revoked %s for %v\n", g.Service, g.Src)
	}
	return nil
}

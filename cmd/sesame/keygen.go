package main

import (
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"

	"github.com/sesame-gw/sesame/internal/spakey"
)

func init() {
	register("keygen", command{summary: "make a key: keygen [--gateway] -o FILE (prints the public key)", run: runKeygen})
}

func runKeygen(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keygen", stderr)
	out := fs.String("o", "", "write the private key to this new file (mode 0600; never overwritten)")
	gateway := fs.Bool("gateway", false, "make a gateway key (X25519) instead of a client identity (Ed25519)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sesame keygen [--gateway] -o FILE")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return &exitError{code: 2, err: fmt.Errorf("unexpected argument %q", pos[0])}
	}
	if *out == "" {
		fs.Usage()
		return &exitError{code: 2, err: errors.New("-o FILE is required")}
	}
	kind := spakey.Identity
	if *gateway {
		kind = spakey.Gateway
	}
	k, err := spakey.Generate(kind)
	if err != nil {
		return err
	}
	// ~/.config/sesame may not exist yet: create it private.
	if dir := filepath.Dir(*out); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
	}
	if err := spakey.WriteFile(*out, k); err != nil {
		if errors.Is(err, iofs.ErrExist) {
			return fmt.Errorf("%s exists; not overwriting a key (sesame pubkey %s prints its public key)", *out, *out)
		}
		return err
	}
	fmt.Fprintln(stdout, k.Public())
	return nil
}

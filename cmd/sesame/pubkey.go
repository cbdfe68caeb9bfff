package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/sesame-gw/sesame/internal/spakey"
)

func init() {
	register("pubkey", command{summary: "print the public key of a key file: pubkey FILE", run: runPubkey})
}

// runPubkey prints the public key text of a key file, identity or gateway
// (the file says which), as keygen printed it.
func runPubkey(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("pubkey", stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, "usage: sesame pubkey FILE") }
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return &exitError{code: 2, err: errors.New("need one key file")}
	}
	k, err := spakey.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, k.Public())
	return nil
}

package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/sesame-gw/sesame/internal/firewall/nftables"
)

func init() {
	register("cleanup", command{summary: "remove everything the gateway installed in the kernel (root)", run: runCleanup})
}

func runCleanup(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("cleanup", stderr)
	table := fs.String("table", nftables.DefaultTable, "nftables table to remove")
	if err := fs.Parse(args); err != nil {
		return err
	}
	fw, err := nftables.New(nftables.WithTable(*table))
	if err != nil {
		return err
	}
	defer fw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := fw.Teardown(ctx); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "removed table inet %s\n", *table)
	return nil
}

package main

import (
	"fmt"
	"github.com/sesame-gw/sesame/internal/firewall"
	"github.com/sesame-gw/sesame/internal/spagw"
	"io"
	"log/slog"
	"os"

	"github.com/sesame-gw/sesame/internal/config"
	"github.com/sesame-gw/sesame/internal/nftlisting"
)

// runCheck is `sesame serve --check`: it validates the configuration and
// prints the nftables table `sesame serve` would install for it, without
// touching the kernel (no netlink, no NFLOG, no state files). The listing
// goes to stdout, as `nft list table inet sesame` prints it (and `nft -c
// -f` reads it); messages go to stderr.
func runCheck(path string, kd *knockdFlags, stdout, stderr io.Writer) error {
	if kd.enabled() {
		if _, err := readKnockdConf(kd.conf); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "%s: valid; the knockd mode installs no nftables rules of its own\n", kd.conf)
		return nil
	}
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	gc := engineConfig(cfg, slog.New(slog.DiscardHandler))
	if port, ok := cfg.SPAPort(); ok {
		// What the engine derives from the native SPA handler's shape.
		gc.Layout.Datagrams = firewall.DatagramFilter{Ports: []uint16{port.Port}, Shapes: []firewall.DatagramShape{spagw.DatagramShape()}}
	}
	text, err := nftlisting.Render(gc.Layout, nftlisting.Default())
	if err != nil {
		return fmt.Errorf("%s: the firewall would refuse this layout: %w", path, err)
	}
	fmt.Fprint(stdout, text)
	if w := sshLockout(os.Getenv("SSH_CONNECTION"), cfg.Protected(), cfg.AlwaysAllow()); w != "" {
		fmt.Fprintf(stderr, "WARNING: %s\n", w)
	}
	fmt.Fprintf(stderr, "%s: valid: %d doors, %d clients, %d protected and %d watched services; above is the table `sesame serve` installs (grant and watch sets start empty, or keep the live ones)\n",
		path, len(cfg.Doors), len(cfg.Clients), len(gc.Layout.Protected), len(gc.Layout.Watched))
	return nil
}

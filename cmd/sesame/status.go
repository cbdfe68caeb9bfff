package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sesame-gw/sesame/internal/config"
	"github.com/sesame-gw/sesame/internal/control"
	"github.com/sesame-gw/sesame/internal/gateway"
)

// controlTimeout bounds one control request from the command line.
const controlTimeout = 35 * time.Second

func init() {
	register("status", command{summary: "show the running gateway: doors, clients, live grants, recent decisions, counters (root)", run: runStatus})
}

func socketFlag(fs *flag.FlagSet) *string {
	return fs.String("socket", config.DefaultControlSocket, "the daemon's control socket ([gateway] control_socket)")
}

func runStatus(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("status", stderr)
	socket := socketFlag(fs)
	asJSON := fs.Bool("json", false, "print the daemon's status as JSON")
	recent := fs.Int("n", 20, "how many recent decisions to show (at most 100 are kept)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, err: fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	ctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
	defer cancel()
	st, err := control.Status(ctx, *socket)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	printStatus(stdout, st, *recent, time.Now())
	return nil
}

// printStatus writes st for a human.
func printStatus(w io.Writer, st gateway.Status, recent int, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	if !st.Started.IsZero() {
		fmt.Fprintf(tw, "sesame gateway up %v (since %s)\n", now.Sub(st.Started).Round(time.Second), st.Started.Local().Format(time.DateTime))
	}
	fmt.Fprintf(tw, "\ndoors (%d):\n", len(st.Doors))
	for _, d := range st.Doors {
		fmt.Fprintf(tw, "  %s\t%s\t→ %s\tfor %s\n", d.Name, strings.Join(d.Sequence, " "), strings.Join(d.Open, " "), d.Duration)
	}
	if len(st.Clients) > 0 {
		// One per line: an SPA client's line has spaces and commas.
		fmt.Fprintf(tw, "\nclients (%d):\n", len(st.Clients))
		for _, c := range st.Clients {
			fmt.Fprintf(tw, "  %s\n", c)
		}
	}
	fmt.Fprintf(tw, "\ngrants live (%d):\n", len(st.Grants))
	for _, g := range st.Grants {
		fmt.Fprintf(tw, "  %v\t%s\t%s left\n", g.Src, g.Service, g.Remaining)
	}
	fmt.Fprintf(tw, "\nsources mid-sequence: %d\n", st.Tracking)
	rec := st.Recent
	if recent >= 0 && len(rec) > recent {
		rec = rec[len(rec)-recent:]
	}
	fmt.Fprintf(tw, "\nrecent decisions (%d of %d kept, oldest first):\n", len(rec), len(st.Recent))
	for _, d := range rec {
		fmt.Fprintf(tw, "  %s\t%s\t%v\t%s\n", d.Time.Local().Format(time.TimeOnly), d.Kind, d.Src, decisionDetail(d))
	}
	printCRL(tw, st.Counters)
	names := make([]string, 0, len(st.Counters))
	for k := range st.Counters {
		if !strings.HasPrefix(k, "crl_") {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	fmt.Fprintf(tw, "\ncounters:\n")
	for _, k := range names {
		fmt.Fprintf(tw, "  %s\t%d\n", k, st.Counters[k])
	}
}

func decisionDetail(d gateway.Decision) string {
	var parts []string
	if d.Door != "" {
		parts = append(parts, "door="+d.Door)
	}
	if d.Proto != "" {
		parts = append(parts, "proto="+d.Proto)
	}
	if d.Client != "" {
		parts = append(parts, "client="+d.Client)
	}
	if len(d.Services) > 0 {
		parts = append(parts, strings.Join(d.Services, ","))
	}
	if d.Reason != "" {
		parts = append(parts, "reason="+d.Reason)
	}
	if d.Latency > 0 {
		parts = append(parts, "latency="+d.Latency.Round(time.Microsecond).String())
	}
	return strings.Join(parts, " ")
}

// printCRL writes the certificate CRL line from the crl_ counters
// (serve_pki.go), if the gateway has [pki].
func printCRL(w io.Writer, c map[string]uint64) {
	loaded, ok := c[crlLoaded]
	if !ok {
		return
	}
	if loaded == 0 {
		fmt.Fprintf(w, "\ncertificates: NO CRL LOADED: every certificate client is refused (no-crl)\n")
		return
	}
	date := func(k string) string { return time.Unix(int64(c[k]), 0).UTC().Format(time.RFC3339) }
	fresh := "fresh"
	if c[crlFresh] == 0 {
		fresh = "STALE (crl_required refuses every certificate client; otherwise still used)"
	}
	fmt.Fprintf(w, "\ncertificates: CRL %d, %d revoked, this update %s, next update %s, %s\n",
		c[crlNumber], c[crlRevoked], date(crlThisUpdate), date(crlNextUpdate), fresh)
}

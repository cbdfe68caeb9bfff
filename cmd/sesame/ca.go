package main

import (
	"crypto"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sesame-gw/sesame/internal/pki"
	"github.com/sesame-gw/sesame/internal/pki/cadir"
	"github.com/sesame-gw/sesame/internal/pki/certfile"
	"github.com/sesame-gw/sesame/internal/service"
	"github.com/sesame-gw/sesame/internal/spakey"
)

func init() {
	register("ca", command{summary: "certificate authority for certificate SPA: ca init|issue|revoke|crl|list", run: runCA})
}

const caDefaultDir = "/etc/sesame/ca"

// caNow is the clock of `sesame ca` (tests replace it).
var caNow = time.Now

var caCommands = map[string]struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}{
	"init":   {"create a CA: ca.crt, ca.key, crl.pem, index.json", runCAInit},
	"issue":  {"issue a client certificate: NAME.crt and NAME.key", runCAIssue},
	"revoke": {"revoke a certificate and rewrite the signed CRL", runCARevoke},
	"crl":    {"re-sign the CRL (run from cron well before its next update)", runCACRL},
	"list":   {"list issued certificates and their status", runCAList},
}

func runCA(args []string, stdout, stderr io.Writer) error {
	usage := func() {
		fmt.Fprintln(stderr, "usage: sesame ca COMMAND --dir DIR [options]\n\ncommands:")
		for _, n := range []string{"init", "issue", "revoke", "crl", "list"} {
			fmt.Fprintf(stderr, "  %-7s %s\n", n, caCommands[n].summary)
		}
		fmt.Fprintln(stderr, "\nsee docs/pki.md; sesame ca COMMAND -h for options")
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage()
		if len(args) == 0 {
			return &exitError{code: 2}
		}
		return nil
	}
	c, ok := caCommands[args[0]]
	if !ok {
		usage()
		return &exitError{code: 2, err: fmt.Errorf("unknown command %q", args[0])}
	}
	return c.run(args[1:], stdout, stderr)
}

// caParseFlags parses a `sesame ca` subcommand's flags; positionals are
// an error. Usage errors exit 2.
func caParseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &exitError{code: 2} // the flag package printed why
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return &exitError{code: 2, err: fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

// caDuration is a flag.Value for lifetimes: Go durations ("10m",
// "2160h") plus whole days, weeks and years ("90d", "2w", "10y"; a year
// is 365 days).
type caDuration struct{ d time.Duration }

func (l *caDuration) String() string { return caFormatDuration(l.d) }

func (l *caDuration) Set(s string) error {
	d, err := caParseDuration(s)
	if err != nil {
		return err
	}
	l.d = d
	return nil
}

func caParseDuration(s string) (time.Duration, error) {
	units := map[byte]time.Duration{'d': 24 * time.Hour, 'w': 7 * 24 * time.Hour, 'y': 365 * 24 * time.Hour}
	if n := len(s); n > 1 {
		if unit, ok := units[s[n-1]]; ok {
			v, err := strconv.ParseUint(s[:n-1], 10, 32)
			if err != nil || v == 0 || v > 100*365 {
				return 0, fmt.Errorf("invalid duration %q", s)
			}
			return time.Duration(v) * unit, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("invalid duration %q (write 10m, 12h, 90d, 2w or 1y)", s)
	}
	return d, nil
}

func caFormatDuration(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// caList collects a repeatable flag whose values may also be
// comma-separated.
type caList []string

func (l *caList) String() string { return strings.Join(*l, ",") }

func (l *caList) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

func caFingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return fmt.Sprintf("SHA256:%x", sum)
}

func caTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func runCAInit(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ca init", stderr)
	dir := fs.String("dir", caDefaultDir, "CA directory (created 0700)")
	name := fs.String("name", cadir.DefaultName, "CA certificate common name")
	keyType := fs.String("key-type", string(certfile.Ed25519), "CA key: ed25519 or p256")
	validFor := &caDuration{cadir.DefaultCAValidity}
	fs.Var(validFor, "valid-for", "CA certificate lifetime")
	crlFor := &caDuration{cadir.DefaultCRLValidFor}
	fs.Var(crlFor, "crl-valid-for", "CRL lifetime: its next update is this long after every signing")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sesame ca init [--dir DIR] [--name NAME] [--key-type ed25519|p256] [--valid-for 10y] [--crl-valid-for 30d]")
		fs.PrintDefaults()
	}
	if err := caParseFlags(fs, args); err != nil {
		return err
	}
	kt, err := certfile.ParseKeyType(*keyType)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	now := caNow()
	c, err := cadir.Init(*dir, cadir.InitOptions{Name: *name, KeyType: kt, ValidFor: validFor.d, CRLValidFor: crlFor.d}, now)
	if err != nil {
		return err
	}
	defer c.Close()
	cert := c.Cert()
	fmt.Fprintf(stdout, "created CA %q in %s (%s key)\n", cert.Subject.CommonName, *dir, kt)
	fmt.Fprintf(stdout, "  certificate %s, valid until %s\n", filepath.Join(*dir, cadir.CertFile), caTime(cert.NotAfter))
	fmt.Fprintf(stdout, "  fingerprint %s\n", caFingerprint(cert.Raw))
	fmt.Fprintf(stdout, "  CRL %s, next update %s: re-sign it before then (sesame ca crl --dir %s)\n",
		filepath.Join(*dir, cadir.CRLFile), caTime(now.Add(crlFor.d)), *dir)
	fmt.Fprintf(stdout, "gateways: [pki] ca = %q  crl = %q\n", filepath.Join(*dir, cadir.CertFile), filepath.Join(*dir, cadir.CRLFile))
	return nil
}

func runCAIssue(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ca issue", stderr)
	dir := fs.String("dir", caDefaultDir, "CA directory")
	name := fs.String("name", "", "client name: the certificate's common name, the name in gateway logs (required)")
	var allow, gateways caList
	fs.Var(&allow, "allow", "service or range the holder may open, e.g. 22/tcp or 60000-61000/udp (repeat or comma-separate; required)")
	maxDur := fs.Duration("max-duration", time.Minute, "longest grant the holder may ask for")
	validFor := &caDuration{90 * 24 * time.Hour}
	fs.Var(validFor, "valid-for", "certificate lifetime, e.g. 90d")
	out := fs.String("out", "", "write OUT.crt and OUT.key (default: the name)")
	keyType := fs.String("key-type", string(certfile.Ed25519), "client key: ed25519 (smallest packets) or p256")
	pubText := fs.String("public-key", "", "certify this existing client key (sesame-id1:...) instead of making one: only OUT.crt is written")
	fs.Var(&gateways, "gateway", "limit the certificate to this gateway: its public key (sesame-gw1:...) or its [pki] name (repeat; default: every gateway)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sesame ca issue [--dir DIR] --name NAME --allow 22/tcp [--allow ...] [--max-duration 1m] [--valid-for 90d] [--out NAME] [--key-type ed25519|p256] [--public-key sesame-id1:...] [--gateway KEY|NAME ...]")
		fs.PrintDefaults()
	}
	if err := caParseFlags(fs, args); err != nil {
		return err
	}
	usageErr := func(err error) error { return &exitError{code: 2, err: err} }
	if *name == "" {
		return usageErr(errors.New("--name is required"))
	}
	if len(allow) == 0 {
		return usageErr(errors.New("--allow is required (e.g. --allow 22/tcp)"))
	}
	a := pki.Authorization{MaxDuration: *maxDur}
	for _, s := range allow {
		r, err := service.ParseRange(s, 0)
		if err != nil {
			return usageErr(err)
		}
		a.Services = append(a.Services, r)
	}
	if *maxDur < time.Second || *maxDur%time.Second != 0 {
		return usageErr(fmt.Errorf("--max-duration %v: whole seconds, at least 1s", *maxDur))
	}
	for _, g := range gateways {
		if strings.HasPrefix(g, spakey.GatewayPrefix) {
			k, err := spakey.ParseGateway(g)
			if err != nil {
				return usageErr(err)
			}
			a.GatewayKeys = append(a.GatewayKeys, k.Bytes())
		} else {
			a.GatewayNames = append(a.GatewayNames, g)
		}
	}
	if *out == "" {
		*out = *name
	}
	crtPath, keyPath := *out+".crt", *out+".key"

	var key crypto.Signer
	var pub crypto.PublicKey
	if *pubText != "" {
		p, err := spakey.ParseIdentity(*pubText)
		if err != nil {
			return usageErr(err)
		}
		pub = p
	} else {
		kt, err := certfile.ParseKeyType(*keyType)
		if err != nil {
			return usageErr(err)
		}
		if key, err = certfile.GenerateKey(kt); err != nil {
			return err
		}
		pub = key.Public()
	}
	// Refuse existing outputs before the CA signs anything.
	for _, p := range []string{crtPath, keyPath} {
		if p == keyPath && key == nil {
			continue
		}
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s already exists", p)
		}
	}
	c, err := cadir.Open(*dir)
	if err != nil {
		return err
	}
	defer c.Close()
	cert, err := c.Issue(cadir.IssueRequest{Name: *name, PublicKey: pub, Authorization: a, ValidFor: validFor.d}, caNow())
	if err != nil {
		return err
	}
	serial := pki.SerialText(cert.SerialNumber)
	if key != nil {
		if err := certfile.WriteKey(keyPath, key); err != nil {
			return fmt.Errorf("certificate %s issued but not saved (revoke it: sesame ca revoke --dir %s --serial %s): %w", serial, *dir, serial, err)
		}
	}
	if err := certfile.WriteCert(crtPath, cert.Raw); err != nil {
		return fmt.Errorf("certificate %s issued but not saved (revoke it: sesame ca revoke --dir %s --serial %s): %w", serial, *dir, serial, err)
	}
	files := crtPath
	if key != nil {
		files += " and " + keyPath
	}
	fmt.Fprintf(stdout, "issued %s: serial %s, valid until %s, allow %s, max duration %v, %s\n",
		*name, serial, caTime(cert.NotAfter), allow.String(), *maxDur, caScope(gateways))
	fmt.Fprintf(stdout, "wrote %s (%d-byte certificate)\n", files, len(cert.Raw))
	return nil
}

func caScope(gateways []string) string {
	if len(gateways) == 0 {
		return "every gateway"
	}
	return "gateways " + strings.Join(gateways, ",")
}

func runCARevoke(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ca revoke", stderr)
	dir := fs.String("dir", caDefaultDir, "CA directory")
	certPath := fs.String("cert", "", "certificate file to revoke")
	serial := fs.String("serial", "", "or: serial (hex, as sesame ca list prints it) of a certificate in the index")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sesame ca revoke [--dir DIR] --cert FILE | --serial HEX")
		fs.PrintDefaults()
	}
	if err := caParseFlags(fs, args); err != nil {
		return err
	}
	if (*certPath == "") == (*serial == "") {
		return &exitError{code: 2, err: errors.New("give --cert FILE or --serial HEX")}
	}
	c, err := cadir.Open(*dir)
	if err != nil {
		return err
	}
	defer c.Close()
	var already bool
	var info pki.CRLInfo
	var who string
	if *certPath != "" {
		cert, err := certfile.ReadCert(*certPath)
		if err != nil {
			return err
		}
		who = fmt.Sprintf("%s (serial %s)", cert.Subject.CommonName, pki.SerialText(cert.SerialNumber))
		already, info, err = c.Revoke(cert, caNow())
		if err != nil {
			return err
		}
	} else {
		n, ok := new(big.Int).SetString(strings.TrimPrefix(strings.ToLower(*serial), "0x"), 16)
		if !ok {
			return &exitError{code: 2, err: fmt.Errorf("--serial %q is not hex", *serial)}
		}
		var e cadir.Entry
		e, already, info, err = c.RevokeSerial(pki.SerialText(n), caNow())
		if err != nil {
			return err
		}
		who = fmt.Sprintf("%s (serial %s)", e.Name, e.Serial)
	}
	if already {
		fmt.Fprintf(stdout, "%s was already revoked\n", who)
	} else {
		fmt.Fprintf(stdout, "revoked %s\n", who)
	}
	printSignedCRL(stdout, *dir, info)
	return nil
}

func runCACRL(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ca crl", stderr)
	dir := fs.String("dir", caDefaultDir, "CA directory")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sesame ca crl [--dir DIR]")
		fs.PrintDefaults()
	}
	if err := caParseFlags(fs, args); err != nil {
		return err
	}
	c, err := cadir.Open(*dir)
	if err != nil {
		return err
	}
	defer c.Close()
	info, err := c.SignCRL(caNow())
	if err != nil {
		return err
	}
	printSignedCRL(stdout, *dir, info)
	return nil
}

func runCAList(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ca list", stderr)
	dir := fs.String("dir", caDefaultDir, "CA directory")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sesame ca list [--dir DIR]")
		fs.PrintDefaults()
	}
	if err := caParseFlags(fs, args); err != nil {
		return err
	}
	c, err := cadir.Open(*dir)
	if err != nil {
		return err
	}
	defer c.Close()
	now := caNow()
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERIAL\tNAME\tSTATUS\tNOT AFTER\tALLOW\tMAX\tGATEWAYS")
	for _, e := range c.List() {
		gw := "*"
		if len(e.Gateways) > 0 {
			gw = strings.Join(e.Gateways, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Serial, e.Name, e.Status(now), caTime(e.NotAfter), strings.Join(e.Allow, ","), e.MaxDuration, gw)
	}
	return tw.Flush()
}

// printSignedCRL reports a freshly signed CRL.
func printSignedCRL(w io.Writer, dir string, info pki.CRLInfo) {
	fmt.Fprintf(w, "wrote CRL %v to %s (%d revoked), next update %s\n", info.Number, filepath.Join(dir, cadir.CRLFile), info.Revoked, caTime(info.NextUpdate))
}

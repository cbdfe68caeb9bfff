package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"time"

	"github.com/sesame-gw/sesame/internal/client"
	"github.com/sesame-gw/sesame/internal/fwknop"
	"github.com/sesame-gw/sesame/internal/fwknop/rcfile"
)

func init() {
	register("fwknop", command{
		summary: "fwknop SPA client: fwknop -A tcp/22 -a IP|-s -D HOST --key-... ; fwknop decode ... ; fwknop --key-gen",
		run:     runFwknop,
	})
}

// fwknopOpts are the stock client's options `sesame fwknop` accepts
// (fwknop 2.6.10 client/cmd_opts.h). Each field is bound to the short
// and the long name.
type fwknopOpts struct {
	access, allowIP, dest, rcFile, named, user             string
	key, keyB64, hmacKey, hmacB64, hmacType, digest, mode  string
	natAccess, offsetPlus, offsetMinus, savePacket, wait   string
	port, srcPort, fwTimeout, natPort                      uint
	source, useHMAC, keyGen, test, verbose, noRC, randPort bool
	natLocal, natRandPort, noSaveArgs, resolveIPv4         bool
	waitEvery, resend                                      time.Duration
}

func (o *fwknopOpts) flags(fs *flag.FlagSet) {
	str := func(p *string, usage string, names ...string) {
		for _, n := range names {
			fs.StringVar(p, n, "", usage)
		}
	}
	num := func(p *uint, usage string, names ...string) {
		for _, n := range names {
			fs.UintVar(p, n, 0, usage)
		}
	}
	boolean := func(p *bool, usage string, names ...string) {
		for _, n := range names {
			fs.BoolVar(p, n, false, usage)
		}
	}
	str(&o.access, "services to open: tcp/22[,udp/53...]", "A", "access")
	str(&o.allowIP, "IPv4 address to open for", "a", "allow-ip")
	boolean(&o.source, "open for the packet's source address (allow IP 0.0.0.0)", "s", "source-ip")
	str(&o.dest, "SPA server host name or address", "D", "destination")
	num(&o.port, "SPA server UDP port (default 62201)", "p", "server-port")
	num(&o.srcPort, "UDP source port", "S", "source-port")
	boolean(&o.randPort, "send to a random port 10000..65534 (fwknopd must capture it)", "r", "rand-port")
	num(&o.fwTimeout, "ask for this many seconds of access (client timeout)", "f", "fw-timeout")
	str(&o.named, "use the [NAME] stanza of ~/.fwknoprc (after [default])", "n", "named-config")
	str(&o.rcFile, "rc file instead of ~/.fwknoprc", "rc-file")
	boolean(&o.noRC, "read no rc file", "no-rc-file")
	str(&o.key, "Rijndael key", "key-rijndael")
	str(&o.keyB64, "Rijndael key, base64", "key-base64-rijndael")
	str(&o.hmacKey, "HMAC key (implies --use-hmac)", "key-hmac")
	str(&o.hmacB64, "HMAC key, base64 (implies --use-hmac)", "key-base64-hmac")
	str(&o.hmacType, "HMAC digest: md5, sha1, sha256 (default), sha384, sha512, sha3_256, sha3_512", "hmac-digest-type")
	boolean(&o.useHMAC, "add an HMAC", "use-hmac")
	str(&o.digest, "SPA digest: md5, sha1, sha256 (default), sha384, sha512, sha3_256, sha3_512", "m", "digest-type")
	str(&o.mode, "encryption mode: cbc (default) or legacy", "M", "encryption-mode")
	str(&o.user, "user name to send", "U", "spoof-user")
	str(&o.offsetPlus, "add to the timestamp: N[m|h|d]", "time-offset-plus")
	str(&o.offsetMinus, "subtract from the timestamp: N[m|h|d]", "time-offset-minus")
	str(&o.natAccess, "NAT access: host:port", "N", "nat-access")
	boolean(&o.natLocal, "local NAT access", "nat-local")
	num(&o.natPort, "NAT port", "nat-port")
	boolean(&o.natRandPort, "random NAT port", "nat-rand-port")
	boolean(&o.keyGen, "print a new KEY_BASE64 and HMAC_KEY_BASE64 (with --hmac-digest-type)", "k", "key-gen")
	boolean(&o.test, "build the packet and print it; do not send", "T", "test")
	str(&o.savePacket, "also write the packet to this file", "B", "save-packet")
	boolean(&o.verbose, "print what is sent", "v", "verbose")
	boolean(&o.noSaveArgs, "accepted for compatibility (Sesame never saves arguments)", "no-save-args")
	boolean(&o.resolveIPv4, "accepted for compatibility (Sesame always resolves IPv4)", "server-resolve-ipv4")
	str(&o.wait, "after sending, poll tcp/PORT[=TIMEOUT] on the server until it answers, resending a fresh packet every --resend; exit 1 if it never does", "wait")
	fs.DurationVar(&o.waitEvery, "wait-interval", 5*time.Millisecond, "with --wait, start a fresh connection attempt this often")
	fs.DurationVar(&o.resend, "resend", time.Second, "with --wait, send a fresh packet after this long without an answer")
}

func runFwknop(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "decode" {
		return runFwknopDecode(args[1:], stdout, stderr)
	}
	fs := newFlagSet("fwknop", stderr)
	var o fwknopOpts
	o.flags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sesame fwknop -A tcp/PORT[,...] (-a IP | -s) -D HOST [--key-rijndael K | --key-base64-rijndael K]\n"+
			"                     [--key-hmac H | --key-base64-hmac H] [--hmac-digest-type T] [-n NAME] [-f SECONDS] [--wait tcp/PORT]\n"+
			"       sesame fwknop --key-gen [--hmac-digest-type T]\n"+
			"       sesame fwknop decode --help\n"+
			"Options as fwknop 2.6.10's; ~/.fwknoprc is read as fwknop reads it. Each option also has its long --name.")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return &exitError{code: 2, err: fmt.Errorf("unexpected argument %q", pos[0])}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.keyGen {
		return fwknopKeyGen(o.hmacType, stdout)
	}
	p, err := o.profile(set, stderr)
	if err != nil {
		return err
	}
	keys, err := p.EncodeKeys()
	if err != nil {
		return err
	}
	if p.SPAServer == "" {
		return &exitError{code: 2, err: errors.New("no SPA server: give -D HOST (or SPA_SERVER in the rc file)")}
	}
	build := func() (string, error) {
		m, err := p.Message(time.Now(), loginName(), rand.Reader)
		if err != nil {
			return "", err
		}
		return fwknop.Encode(m, keys, fwknop.EncodeOptions{})
	}
	pkt, err := build()
	if err != nil {
		return err
	}
	if o.savePacket != "" {
		if err := os.WriteFile(o.savePacket, []byte(pkt+"\n"), 0o600); err != nil {
			return err
		}
	}
	if o.test {
		fmt.Fprintln(stdout, pkt)
		return nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	addr, err := client.Resolve(ctx, p.SPAServer, "ip4")
	if err != nil {
		return err
	}
	port, err := p.ServerPort(rand.Reader)
	if err != nil {
		return err
	}
	dst := netip.AddrPortFrom(addr, port)
	send := func(pkt string) error {
		if err := sendFrom(p.SPASourcePort, dst, []byte(pkt)); err != nil {
			return fmt.Errorf("sending SPA packet to %v: %w", dst, err)
		}
		if o.verbose {
			fmt.Fprintf(stdout, "sent %d-byte SPA packet to %v\n", len(pkt), dst)
		}
		return nil
	}
	if err := send(pkt); err != nil {
		return err
	}
	if o.wait == "" {
		return nil
	}
	return o.waitOpen(ctx, addr, build, send, stdout)
}

// waitOpen polls the --wait service, sending a fresh packet (a new random
// value and salt, so never a replay) each time --resend passes without an
// answer, until the --wait timeout.
func (o *fwknopOpts) waitOpen(ctx context.Context, addr netip.Addr, build func() (string, error), send func(string) error, stdout io.Writer) error {
	svc, timeout, err := client.ParseWait(o.wait)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if o.waitEvery <= 0 || o.resend <= 0 {
		return &exitError{code: 2, err: errors.New("--wait-interval and --resend must be positive")}
	}
	dst := netip.AddrPortFrom(addr, svc.Port)
	deadline := time.Now().Add(timeout)
	sent := time.Now()
	for n := 1; ; n++ {
		wait := min(o.resend, time.Until(deadline))
		err := client.WaitTCP(ctx, dst, o.waitEvery, wait)
		if err == nil {
			if o.verbose {
				fmt.Fprintf(stdout, "%v open after %dus (%d packets)\n", dst, time.Since(sent).Microseconds(), n)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%w: %v after %v and %d packets (the server's log says why)", client.ErrNoAnswer, dst, timeout, n)
		}
		pkt, err := build()
		if err != nil {
			return err
		}
		if err := send(pkt); err != nil {
			return err
		}
		sent = time.Now()
	}
}

// profile reads ~/.fwknoprc (or --rc-file) as fwknop does — [default],
// then the -n stanza — and applies the command line over it.
func (o *fwknopOpts) profile(set map[string]bool, stderr io.Writer) (*rcfile.Profile, error) {
	has := func(names ...string) bool {
		for _, n := range names {
			if set[n] {
				return true
			}
		}
		return false
	}
	rc := &rcfile.File{}
	if !o.noRC {
		path := o.rcFile
		if path == "" {
			if home, err := os.UserHomeDir(); err == nil {
				path = filepath.Join(home, ".fwknoprc")
			}
		}
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			rc = rcfile.Parse(path, b)
		case errors.Is(err, iofs.ErrNotExist) && o.named == "" && o.rcFile == "":
		case path == "":
			return nil, errors.New("-n needs an rc file, and there is no home directory")
		default:
			return nil, err
		}
	} else if o.named != "" {
		return nil, errors.New("-n needs an rc file (--no-rc-file given)")
	}
	p, warns, err := rc.Profile(o.named)
	for _, w := range warns {
		fmt.Fprintf(stderr, "sesame fwknop: warning: %s\n", w)
	}
	if err != nil {
		return nil, err
	}
	if p.KeyFile != "" || p.HMACKeyFile != "" {
		return nil, errors.New("KEY_FILE / HMAC_KEY_FILE are not supported: put KEY_BASE64 / HMAC_KEY_BASE64 in the rc file, or give --key-base64-rijndael / --key-base64-hmac")
	}
	bad := func(opt string, err error) error { return &exitError{code: 2, err: fmt.Errorf("%s: %w", opt, err)} }
	if has("D", "destination") {
		p.SPAServer = o.dest
	}
	if has("p", "server-port") {
		if o.port < 1 || o.port > 65535 {
			return nil, bad("-p", fmt.Errorf("%d is not a port", o.port))
		}
		p.SPAServerPort, p.RandPort = uint16(o.port), false
	}
	if has("S", "source-port") {
		if o.srcPort > 65535 {
			return nil, bad("-S", fmt.Errorf("%d is not a port", o.srcPort))
		}
		p.SPASourcePort = uint16(o.srcPort)
	}
	p.RandPort = p.RandPort || o.randPort
	if has("a", "allow-ip") {
		ip, err := fwknop.ParseAllowIP(o.allowIP)
		if err != nil {
			return nil, bad("-a", err)
		}
		p.AllowIP, p.AllowSource = ip, false
	}
	if o.source {
		p.AllowSource = true
	}
	if has("A", "access") {
		p.Access = o.access
	}
	if has("f", "fw-timeout") {
		if o.fwTimeout > 65536 {
			return nil, bad("-f", fmt.Errorf("%d is not 0..65536 seconds", o.fwTimeout))
		}
		p.FWTimeout = uint32(o.fwTimeout)
	}
	var err2 error
	switch {
	case has("key-rijndael"):
		p.Keys.Key = []byte(o.key)
	case has("key-base64-rijndael"):
		if p.Keys.Key, err2 = fwknop.DecodeKeyBase64(o.keyB64); err2 != nil {
			return nil, bad("--key-base64-rijndael", err2)
		}
	}
	switch {
	case has("key-hmac"):
		p.Keys.HMACKey, p.UseHMAC = []byte(o.hmacKey), true
	case has("key-base64-hmac"):
		if p.Keys.HMACKey, err2 = fwknop.DecodeKeyBase64(o.hmacB64); err2 != nil {
			return nil, bad("--key-base64-hmac", err2)
		}
		p.UseHMAC = true
	}
	if has("hmac-digest-type") {
		if p.Keys.HMACHash, err2 = fwknop.ParseHash(o.hmacType); err2 != nil {
			return nil, bad("--hmac-digest-type", err2)
		}
	}
	p.UseHMAC = p.UseHMAC || o.useHMAC
	if has("m", "digest-type") {
		if p.Digest, err2 = fwknop.ParseHash(o.digest); err2 != nil {
			return nil, bad("-m", err2)
		}
	}
	if has("M", "encryption-mode") {
		if p.Keys.Mode, err2 = fwknop.ParseMode(o.mode); err2 != nil {
			return nil, bad("-M", err2)
		}
	}
	if has("U", "spoof-user") {
		if err2 = fwknop.ValidateUser(o.user); err2 != nil {
			return nil, bad("-U", err2)
		}
		p.SpoofUser = o.user
	}
	for _, off := range []struct {
		name, v string
		sign    time.Duration
	}{{"time-offset-plus", o.offsetPlus, 1}, {"time-offset-minus", o.offsetMinus, -1}} {
		if has(off.name) {
			d, err := rcfile.ParseTimeOffset(off.v)
			if err != nil || d < 0 {
				return nil, bad("--"+off.name, fmt.Errorf("%q is not N[m|h|d]", off.v))
			}
			p.TimeOffset = off.sign * d
		}
	}
	if has("N", "nat-access") {
		p.NATAccess = o.natAccess
	}
	p.NATLocal = p.NATLocal || o.natLocal
	p.NATRandPort = p.NATRandPort || o.natRandPort
	if has("nat-port") {
		if o.natPort < 1 || o.natPort > 65535 {
			return nil, bad("--nat-port", fmt.Errorf("%d is not a port", o.natPort))
		}
		p.NATPort = uint16(o.natPort)
	}
	return p, nil
}

// fwknopKeyGen prints fresh keys as fwknop --key-gen does.
func fwknopKeyGen(hmacType string, stdout io.Writer) error {
	h := fwknop.SHA256
	if hmacType != "" {
		var err error
		if h, err = fwknop.ParseHash(hmacType); err != nil {
			return &exitError{code: 2, err: fmt.Errorf("--hmac-digest-type: %w", err)}
		}
	}
	k, err := fwknop.GenerateKeys(rand.Reader, h)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "KEY_BASE64: %s\nHMAC_KEY_BASE64: %s\n", fwknop.EncodeKeyBase64(k.Key), fwknop.EncodeKeyBase64(k.HMACKey))
	return err
}

// loginName is the user name fwknop sends without -U: LOGNAME, the
// account name, USER (client/fwknop.c get_user).
func loginName() string {
	if n := os.Getenv("LOGNAME"); n != "" && fwknop.ValidateUser(n) == nil {
		return n
	}
	if u, err := user.Current(); err == nil && fwknop.ValidateUser(u.Username) == nil {
		return u.Username
	}
	if n := os.Getenv("USER"); fwknop.ValidateUser(n) == nil {
		return n
	}
	return ""
}

// sendFrom sends one datagram to dst from UDP source port src (0: any).
func sendFrom(src uint16, dst netip.AddrPort, payload []byte) error {
	var laddr *net.UDPAddr
	if src != 0 {
		laddr = &net.UDPAddr{Port: int(src)}
	}
	c, err := net.DialUDP("udp4", laddr, net.UDPAddrFromAddrPort(dst))
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write(payload)
	return err
}

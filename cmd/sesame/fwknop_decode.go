package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/sesame-gw/sesame/internal/fwknop"
)

// runFwknopDecode is `sesame fwknop decode`: verify and decrypt one wire
// packet and print its fields as one JSON object (fwknop.Message's JSON
// form: rand, user, timestamp, version, msg_type, access, nat_access,
// server_auth, client_timeout, digest_type). Scripts depend on it: on any
// failure it exits 1 with the reason on stderr and nothing on stdout.
func runFwknopDecode(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("fwknop decode", stderr)
	key := fs.String("key", "", "Rijndael key (KEY)")
	keyB64 := fs.String("key-base64", "", "Rijndael key, base64 (KEY_BASE64)")
	hmacKey := fs.String("hmac-key", "", "HMAC key (HMAC_KEY)")
	hmacB64 := fs.String("hmac-key-base64", "", "HMAC key, base64 (HMAC_KEY_BASE64)")
	hmacType := fs.String("hmac-digest-type", "", "HMAC digest: md5, sha1, sha256 (default), sha384, sha512, sha3_256, sha3_512")
	legacy := fs.Bool("legacy", false, "legacy IV mode (ENCRYPTION_MODE legacy, clients before 2.5)")
	noAge := fs.Bool("no-age-check", false, "accept any timestamp (default: within 120 s of now, as fwknopd)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sesame fwknop decode [--key K | --key-base64 K] [--hmac-key H | --hmac-key-base64 H]\n"+
			"                            [--hmac-digest-type sha256] [--legacy] [--no-age-check] PACKET\n"+
			"PACKET is the wire text; - reads it from stdin. Prints one JSON object.")
		fs.PrintDefaults()
	}
	fail := func(format string, a ...any) error { return &exitError{code: 1, err: fmt.Errorf(format, a...)} }
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	if err != nil {
		return &exitError{code: 1, err: errors.New("")} // the flag package has said why
	}
	if len(pos) != 1 {
		return fail("need exactly one PACKET argument, got %d", len(pos))
	}
	var k fwknop.Keys
	switch {
	case *key != "" && *keyB64 != "":
		return fail("--key and --key-base64 exclude each other")
	case *key != "":
		k.Key = []byte(*key)
	case *keyB64 != "":
		if k.Key, err = fwknop.DecodeKeyBase64(*keyB64); err != nil {
			return fail("--key-base64: %v", err)
		}
	default:
		return fail("a key is required (--key or --key-base64)")
	}
	switch {
	case *hmacKey != "" && *hmacB64 != "":
		return fail("--hmac-key and --hmac-key-base64 exclude each other")
	case *hmacKey != "":
		k.HMACKey = []byte(*hmacKey)
	case *hmacB64 != "":
		if k.HMACKey, err = fwknop.DecodeKeyBase64(*hmacB64); err != nil {
			return fail("--hmac-key-base64: %v", err)
		}
	}
	if *hmacType != "" {
		if len(k.HMACKey) == 0 {
			return fail("--hmac-digest-type needs --hmac-key or --hmac-key-base64")
		}
		if k.HMACHash, err = fwknop.ParseHash(*hmacType); err != nil {
			return fail("--hmac-digest-type: %v", err)
		}
	}
	if *legacy {
		k.Mode = fwknop.ModeLegacy
	}
	pkt := pos[0]
	if pkt == "-" {
		b, err := io.ReadAll(io.LimitReader(os.Stdin, 1<<16))
		if err != nil {
			return fail("reading stdin: %v", err)
		}
		pkt = string(b)
	}
	opts := fwknop.DecodeOptions{}
	if !*noAge {
		opts = fwknop.DecodeOptions{MaxAge: fwknop.DefaultMaxAge, Now: time.Now()}
	}
	m, err := fwknop.DecodeString(strings.TrimSpace(pkt), k, opts)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	out, err := json.Marshal(m)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	_, err = stdout.Write(append(out, '\n'))
	return err
}

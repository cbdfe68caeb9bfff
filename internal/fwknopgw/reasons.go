package fwknopgw

import (
	"errors"

	"github.com/sesame-gw/sesame/internal/fwknop"
	"github.com/sesame-gw/sesame/internal/fwknop/accessconf"
)

// Reasons are the stable tokens of Verdict.Reason (log key "reason").
// The first group is decided before any stanza authenticated the packet
// and is logged at debug level only (Verdict.Quiet).
const (
	ReasonFormat  = "format"  // not a Rijndael fwknop packet (fwknop.ErrFormat)
	ReasonGPG     = "gpg"     // 400 characters or more: GPG mode, not supported (logged)
	ReasonSource  = "source"  // no stanza's SOURCE/DESTINATION matches (or an IPv6 source)
	ReasonExpired = "expired" // the only matching stanzas have expired (ACCESS_EXPIRE)
	ReasonHMAC    = "hmac"    // HMAC mismatch: wrong HMAC key or HMAC_DIGEST_TYPE
	ReasonDecrypt = "decrypt" // no fwknop plaintext: wrong KEY or ENCRYPTION_MODE
	ReasonDigest  = "digest"  // inner SPA digest mismatch
	ReasonMessage = "message" // fields fwknop refuses (user, type, access text, ...)

	ReasonReplay     = "replay"          // digest already stored (also after a restart)
	ReasonReplayFull = "replay-full"     // the replay cache is full of live digests
	ReasonPersist    = "replay-persist"  // digest.cache could not be written: fail closed
	ReasonStale      = "stale"           // |now − timestamp| > MAX_SPA_PACKET_AGE
	ReasonAllowIP    = "source-required" // allow IP 0.0.0.0 with REQUIRE_SOURCE_ADDRESS
	ReasonUser       = "username"        // REQUIRE_USERNAME differs
	ReasonNAT        = "nat"             // NAT message types 2, 4, 5, 6: no NAT forwarding
	ReasonCommand    = "command"         // command message not enabled (ENABLE_CMD_EXEC + --fwknop-allow-commands)
	ReasonPorts      = "ports"           // OPEN_PORTS/RESTRICT_PORTS, or a port Sesame does not protect
	ReasonRefused    = "refused"         // another stanza check (e.g. a CMD_CYCLE command that does not expand)
)

// stages rank the per-stanza errors of accessconf.Authorize: when every
// matching stanza refused, the reason reported is the one of the stanza
// that got furthest (a packet that decrypted under stanza 2 but asked for
// a refused port is "ports", not stanza 1's "hmac").
// HMAC and decryption failures share a rank, so that with stanzas
// with and without HMAC keys the first stanza in file order speaks.
var stages = []struct {
	err    error
	reason string
	rank   int
}{
	{accessconf.ErrNoStanza, ReasonSource, 0},
	{fwknop.ErrFormat, ReasonFormat, 1},
	{accessconf.ErrExpired, ReasonExpired, 2},
	{fwknop.ErrKeys, ReasonRefused, 3},
	{fwknop.ErrHMAC, ReasonHMAC, 4},
	{fwknop.ErrDecrypt, ReasonDecrypt, 4},
	{fwknop.ErrDigest, ReasonDigest, 5},
	{fwknop.ErrMessage, ReasonMessage, 6},
	{fwknop.ErrStale, ReasonStale, 7},
	{accessconf.ErrSourceRequired, ReasonAllowIP, 8},
	{accessconf.ErrUsername, ReasonUser, 9},
	{accessconf.ErrNAT, ReasonNAT, 10},
	{accessconf.ErrCommand, ReasonCommand, 11},
	{accessconf.ErrPorts, ReasonPorts, 12},
}

// rankUnknown ranks an error classify does not know: a check after
// decryption.
const rankUnknown = 13

// classify returns the reason and the message of the furthest stage in
// err (an accessconf.Result.Err, possibly an errors.Join of one error per
// stanza), and how many stanza errors it held.
func classify(err error) (reason, detail string, n int) {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	best := -1
	reason = ReasonRefused
	for _, e := range errs {
		rank, r := rankUnknown, ReasonRefused
		for _, s := range stages {
			if errors.Is(e, s.err) {
				rank, r = s.rank, s.reason
				break
			}
		}
		if rank > best {
			best, reason, detail = rank, r, e.Error()
		}
	}
	return reason, detail, len(errs)
}

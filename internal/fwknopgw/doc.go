// Package fwknopgw is the gateway side of fwknop compatibility
// (docs/fwknop.md): a gateway.DatagramHandler that serves stock fwknop
// clients from fwknopd's own access.conf and fwknopd.conf, with Sesame's
// nftables grant sets doing what fwknopd's iptables rules did.
//
// Per datagram, cheap checks first, as fwknopd 2.6.10 orders them
// (server/incoming_spa.c):
//
//  1. the engine's Match: fwknop.LooksLikeFwknop (length, alphabet, the
//     first character of "Salted__"), no key;
//  2. fwknop.CheckFormat (140..399 characters: no GPG) and an IPv4
//     source that some stanza's SOURCE contains;
//  3. the replay digest (SHA-256 of the payload) looked up in Digests;
//  4. accessconf.Authorize: stanzas in file order, HMAC before
//     decryption, first full match wins;
//  5. once any stanza decrypted the packet, its digest is stored (and
//     appended to digest.cache) even if a later check refuses it — a
//     stale or refused packet can never be retried;
//  6. the grant: one nftables grant per requested service, for the allow
//     IP (or the packet source for 0.0.0.0); or, for a CMD_CYCLE stanza,
//     CMD_CYCLE_OPEN now and CMD_CYCLE_CLOSE after the timer (Runner).
//
// The Handler never logs a decision itself: it returns a gateway.Verdict
// whose Reason is one of the stable tokens in reasons.go, and the engine
// writes one line per decision. Rejects of packets no stanza could
// authenticate (format, source, hmac, decrypt, digest, message) are Quiet
// (debug level); from a successful decryption on (replay, stale, ports,
// nat, command, ...) they are logged at info. Details never carry key
// material or packet bodies.
//
// Handler, Digests and Runner are safe for concurrent use: the engine
// calls Handle from its bounded worker pool.
package fwknopgw

// Package spagw is the gateway side of Sesame's native SPA
// (docs/protocol.md §6): a gateway.DatagramHandler that runs the cheap
// pre-filter, opens and authenticates the datagram (spa.Opener), records
// it in the replay cache (replay.Store, persisted in the state directory),
// asks the client's policy (policy.Decide) and turns the decision into
// firewall grants.
//
// The engine calls the Handler from its bounded worker pool after the
// per-source rate limit. The Handler never logs a decision itself: it
// returns a gateway.Verdict whose Reason is the stable token of the step
// that refused (spa.Reason, replay.Reason or policy.Reason), and the engine
// writes one log line per decision. Rejects of unauthenticated garbage
// (length, magic, version, pre-filter, decryption, malformed plaintext) are
// Quiet; from the credential lookup on, rejects are logged, and from the
// signature on they name the client.
//
// Time comes in with each datagram, so tests drive the Handler with an
// injected clock. The configuration part (keys, clients, window) can be
// swapped at run time with Update while the replay cache lives on.
package spagw

package gateway

import (
	"net/netip"
	"time"

	"github.com/sesame-gw/sesame/internal/firewall"
)

// DatagramHandler decides on one SPA datagram (native SPA, fwknop, ...).
// Handlers run on the engine's bounded worker pool, several at once: they
// must be safe for concurrent use.
type DatagramHandler interface {
	// Name is the protocol name used in logs ("spa", "fwknop").
	Name() string
	// Match reports, cheaply and without cryptography, whether payload is
	// in this handler's format. The first handler that matches gets it.
	Match(payload []byte) bool
	// Handle verifies and decides. payload is only valid during the call.
	Handle(now time.Time, src, dst netip.Addr, payload []byte) Verdict
}

// Verdict is a handler's decision on one datagram.
type Verdict struct {
	// Client names the authenticated client ("" before authentication).
	Client string
	// Grants are installed when Reason is empty.
	Grants []firewall.Grant
	// Reason is why the datagram was rejected ("" = granted).
	Reason string
	// Detail adds context to a reject for the log (never key material).
	Detail string
	// Quiet marks rejects of unauthenticated garbage: logged at debug only,
	// counted always, so a flood does not flood the log.
	Quiet bool
	// After runs after the grants were committed (e.g. fwknop's
	// CMD_CYCLE_OPEN); nil for none. It runs on the firewall writer.
	After func(err error)
}

// Prechecker is implemented by handlers with a cheap, stateless check
// (length, magic, a keyed pre-filter MAC) that runs before the per-source
// rate limit: garbage that fails it costs no tokens, so a flood of it from
// a neighbour (the same IPv6 /64) cannot starve a legitimate client of its
// rate. It returns the reject reason, or "" when the datagram may go on.
type Prechecker interface {
	Precheck(payload []byte) (reason string)
}

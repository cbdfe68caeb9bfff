package spa

import (
	"fmt"
	"time"
)

// StaleError is Open's error for a packet that is authentic (decrypted,
// its credential resolved, its signature verified) but whose timestamp is
// outside the window (docs/protocol.md §6 step 10). It wraps ErrStale and
// carries the resolved client, so the refusal can name it.
//
// Freshness is checked after the signature on purpose. Before it, the
// timestamp and the credential are the claims of anyone who can encrypt to
// the gateway's public key, so a name could not be trusted; and checking
// earlier would save nothing against a flood: whoever can make a stale
// packet can make a fresh one with a bad signature, which costs the
// gateway the same (the mac1 pre-filter and the per-source rate limit come
// before any public-key work either way).
type StaleError[C any] struct {
	// Client is what the Resolver returned for the packet's credential.
	Client C
	// Skew is the gateway's clock minus the packet's timestamp (positive:
	// from the past).
	Skew time.Duration
	// Window is the window the packet is outside of.
	Window time.Duration
}

func (e *StaleError[C]) Error() string {
	if e.Skew > 0 {
		return fmt.Sprintf("%s: timestamp %v in the past (window ±%v)", ErrStale, e.Skew, e.Window)
	}
	return fmt.Sprintf("%s: timestamp %v in the future (window ±%v)", ErrStale, -e.Skew, e.Window)
}

// Unwrap returns ErrStale.
func (e *StaleError[C]) Unwrap() error { return ErrStale }

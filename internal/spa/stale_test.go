package spa

import (
	"crypto/ed25519"
	"errors"
	"testing"
	"time"
)

// A stale packet's error names the client its signature proved, with the
// skew, and still reads as ErrStale. An unauthenticated stale packet (an
// unknown key, a signature that does not verify) is refused for that, not
// as stale: freshness is judged only on authentic packets.
func TestStaleErrorNamesClient(t *testing.T) {
	gw := gatewayKey(t, 1)
	alice, mallory := clientKey(10), clientKey(11)
	o := newOpener(t, gw, clients{"alice": alice.Public().(ed25519.PublicKey)})
	pkt := seal(t, alice, gw, req22(), t0)

	for _, c := range []struct {
		at   time.Time
		skew time.Duration
		msg  string
	}{
		{t0.Add(DefaultWindow + time.Second), DefaultWindow + time.Second, "stale: timestamp 1m1s in the past (window ±1m0s)"},
		{t0.Add(-DefaultWindow - time.Second), -DefaultWindow - time.Second, "stale: timestamp 1m1s in the future (window ±1m0s)"},
	} {
		_, err := o.Open(pkt, c.at)
		var se *StaleError[string]
		if !errors.As(err, &se) || se.Client != "alice" || se.Skew != c.skew || se.Window != DefaultWindow {
			t.Fatalf("Open at %v: %#v (%v), want alice's StaleError", c.at.Sub(t0), se, err)
		}
		if !errors.Is(err, ErrStale) || ReasonOf(err) != ErrStale || err.Error() != c.msg {
			t.Fatalf("Open at %v: %q, reason %q; want %q", c.at.Sub(t0), err, ReasonOf(err), c.msg)
		}
	}

	late := t0.Add(time.Hour)
	if _, err := o.Open(seal(t, mallory, gw, req22(), t0), late); ReasonOf(err) != ErrUnknownKey {
		t.Errorf("stale packet of an unknown key: %v, want unknown-key", err)
	}
	pt := decrypt(t, gw, pkt)
	pt[len(pt)-1] ^= 1 // the signature's last byte
	forged, _ := reseal(t, gw.PublicKey(), pt)
	if _, err := o.Open(forged, late); ReasonOf(err) != ErrSignature {
		t.Errorf("stale packet with a bad signature: %v, want signature", err)
	}
}

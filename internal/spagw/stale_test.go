package spagw

import (
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/pki"
	"github.com/sesame-gw/sesame/internal/replay"
)

// A stale packet of a certificate client is logged with the client's
// certificate name, as a raw-key client's is with its [[client]] name
// (TestRejectReasons).
func TestStaleCertificateClientNamed(t *testing.T) {
	f := newFixture(t)
	c := newCertCA(t, "")
	s := f.settings()
	s.Certs = &Certificates{Verifier: c.v, Local: pki.Local{}}
	h, err := New(s, replay.New(0), nil)
	if err != nil {
		t.Fatal(err)
	}
	dave, _ := c.issue(t, "dave", idKey(41), pki.Authorization{Services: ranges(t, "22/tcp"), MaxDuration: time.Minute})
	pkt := sealID(t, dave, f, req(t, 30*time.Second, "22/tcp"), t0.Add(-2*time.Minute))
	v := h.Handle(t0, src4, gwIP, pkt)
	if v.Reason != "stale" || v.Client != "dave" || v.Quiet || v.Grants != nil {
		t.Fatalf("stale certificate packet: %+v, want stale, client dave, logged", v)
	}
}

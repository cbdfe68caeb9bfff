package fwknopgw

import (
	"strings"
	"testing"
)

// status lists every stanza in file order with what it allows, and never
// a key.
func TestClientsListsStanzas(t *testing.T) {
	const conf = `
SOURCE ANY
KEY secret-rijndael-one
HMAC_KEY secret-hmac-one
HMAC_DIGEST_TYPE sha512
OPEN_PORTS tcp/22, udp/53
FW_ACCESS_TIMEOUT 45
REQUIRE_USERNAME alice
ACCESS_EXPIRE_EPOCH 1798761600

SOURCE 10.99.0.0/24
KEY secret-rijndael-two
`
	h := newHandler(t, settings(t, conf), nil)
	got := h.Clients()
	want := []string{
		"stanza #1 (access.conf:2) (fwknop, hmac sha512) from ANY → 22/tcp 53/udp for 45s, up to 5m0s, user alice, expires 2027-01-01 00:00 UTC",
		"stanza #2 (access.conf:11) (fwknop, no hmac) from 10.99.0.0/24 → any protected service for 30s, up to 5m0s",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("Clients() =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, l := range got {
		if strings.Contains(l, "secret") {
			t.Errorf("key material in %q", l)
		}
	}
	// Update swaps what status shows.
	if err := h.Update(settings(t, "SOURCE 192.0.2.1\nKEY k\n")); err != nil {
		t.Fatal(err)
	}
	if got := h.Clients(); len(got) != 1 || !strings.HasPrefix(got[0], "stanza #1 (access.conf:1) (fwknop, no hmac) from 192.0.2.1 →") {
		t.Errorf("after Update: %q", got)
	}
}

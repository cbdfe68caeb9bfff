package pki

import (
	"bytes"
	"errors"
	"testing"

	"github.com/sesame-gw/sesame/internal/spa"
)

// FuzzCredential feeds arbitrary kind-2 credentials (the decrypted cred
// field, which anyone with the gateway's public key controls) to the
// certificate resolver: no panic, every error carries a reason, and only
// the original valid certificates are accepted (every byte of a
// certificate is under the CA's signature or framing).
func FuzzCredential(f *testing.F) {
	ca := defaultCA(f)
	v := newVerifier(f, ca, true, ca.crl(f, crlOpts{revoked: []int64{666}}))
	res := v.Resolver(Scope{Names: []string{"gw-2"}}, Local{}) // fullAuthz is scoped
	var valid [][]byte
	for _, o := range []leafOpts{{}, {key: p256Key(f, 0x20).Public(), serial: 5}, {authz: func() *Authorization { a := fullAuthz(); return &a }(), serial: 6}} {
		data, err := spa.EncodeChain([][]byte{ca.issue(f, o)})
		if err != nil {
			f.Fatal(err)
		}
		if _, _, err := res(spa.Credential{Kind: spa.CredX509, Data: data}, t0); err != nil {
			f.Fatalf("seed refused: %v", err)
		}
		valid = append(valid, data)
		f.Add(data)
	}
	for _, o := range []leafOpts{{serial: 666}, {isCA: true}, {nonCrit: true}} {
		data, _ := spa.EncodeChain([][]byte{ca.issue(f, o)})
		f.Add(data)
	}
	f.Add([]byte{})
	f.Add([]byte{0, 1, 0x30})
	f.Fuzz(func(t *testing.T, data []byte) {
		_, c, err := res(spa.Credential{Kind: spa.CredX509, Data: data}, t0)
		if err != nil {
			if r := spa.ReasonOf(err); !IsReason(r) {
				t.Fatalf("error %v has reason %q", err, r)
			}
			return
		}
		for _, v := range valid {
			if bytes.Equal(v, data) {
				return
			}
		}
		t.Fatalf("a mutated credential was accepted: %x -> %+v", data, c)
	})
}

// FuzzSetCRL: a CRL from a file or a URL is attacker-controlled when the
// transport is: no panic, and nothing but the CA's own CRL is accepted.
func FuzzSetCRL(f *testing.F) {
	ca := defaultCA(f)
	good := ca.crl(f, crlOpts{number: 3, revoked: []int64{1, 2, 3}})
	goodDER := mustPEM(f, good)
	f.Add(good)
	f.Add(goodDER)
	f.Add(ca.crl(f, crlOpts{number: 3, signer: edKey(0xD0)}))
	f.Add([]byte("-----BEGIN X509 CRL-----\n-----END X509 CRL-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		v := newVerifier(t, ca, true, nil)
		info, err := v.SetCRL(data)
		if err != nil {
			if !errors.Is(err, ErrCRL) {
				t.Fatalf("error %v is not ErrCRL", err)
			}
			if _, ok := v.CRL(); ok {
				t.Fatal("a refused CRL is in use")
			}
			return
		}
		if !bytes.Equal(v.crl.Load().raw, goodDER) {
			t.Fatalf("accepted a CRL that is not the CA's: %x (%+v)", data, info)
		}
	})
}

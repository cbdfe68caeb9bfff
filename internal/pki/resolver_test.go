package pki

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/policy"
	"github.com/sesame-gw/sesame/internal/service"
	"github.com/sesame-gw/sesame/internal/spa"
)

var src4 = netip.MustParseAddr("192.0.2.10")

// gatewayFixture is one gateway accepting raw-key clients and certificate
// clients through one spa.Opener, as the daemon wires it.
type gatewayFixture struct {
	ca  *testCA
	v   *Verifier
	o   *spa.Opener[*policy.Client]
	bob ed25519.PrivateKey // a raw-key client
}

func newGateway(t testing.TB, local Local, names ...string) (*gatewayFixture, *spa.Opener[*policy.Client]) {
	t.Helper()
	ca := defaultCA(t)
	gwKey := gatewayKey(t, 1)
	v := newVerifier(t, ca, true, ca.crl(t, crlOpts{}))
	bob := edKey(30)
	set, err := policy.NewSet([]policy.Client{{Name: "bob", Key: bob.Public().(ed25519.PublicKey), Allow: []service.Range{{Proto: service.TCP, First: 22, Last: 22}}}})
	if err != nil {
		t.Fatal(err)
	}
	scope := Scope{Key: gwKey.PublicKey().Bytes(), Names: names}
	o, err := spa.NewOpener(gwKey, spa.ByKind(map[spa.CredentialKind]spa.Resolver[*policy.Client]{
		spa.CredEd25519: spa.KeyResolver(set.ByKey),
		spa.CredX509:    v.Resolver(scope, local),
	}), 0)
	if err != nil {
		t.Fatal(err)
	}
	return &gatewayFixture{ca: ca, v: v, o: o, bob: bob}, o
}

// TestEndToEnd seals kind-2 packets with spa.Seal and opens them with
// spa.Opener and the certificate resolver, then decides with
// policy.Decide: the gateway grants the intersection of the certificate
// and its local policy, and nothing else.
func TestEndToEnd(t *testing.T) {
	local := Local{
		Allow:       []service.Range{{Proto: service.TCP, First: 1, Last: 1024}, {Proto: service.UDP, First: 60000, Last: 60100}},
		MaxDuration: 5 * time.Minute,
	}
	f, o := newGateway(t, local, "gw1")
	gwKey := gatewayKey(t, 1)
	alice := edKey(10)
	carol := p256Key(t, 0x20)
	authz := Authorization{
		Services:    []service.Range{{Proto: service.TCP, First: 22, Last: 22}, {Proto: service.TCP, First: 8443, Last: 8443}, {Proto: service.UDP, First: 60000, Last: 61000}},
		MaxDuration: 10 * time.Minute,
	}
	aliceCert := f.ca.issue(t, leafOpts{name: "alice", serial: 1, key: alice.Public(), authz: &authz})
	carolCert := f.ca.issue(t, leafOpts{name: "carol", serial: 2, key: carol.Public(), authz: &authz})

	type outcome struct {
		open   spa.Reason
		decide policy.Reason
	}
	cases := []struct {
		name string
		leaf []byte
		key  crypto.Signer
		req  policy.Request
		want outcome
	}{
		{"ed25519 cert, allowed", aliceCert, alice, req("22/tcp", time.Minute), outcome{}},
		{"p256 cert, allowed", carolCert, carol, req("22/tcp", time.Minute), outcome{}},
		{"range inside both", aliceCert, alice, req("60010-60020/udp", time.Minute), outcome{}},
		{"range beyond local policy", aliceCert, alice, req("60000-60200/udp", time.Minute), outcome{decide: policy.ErrServiceNotAllowed}},
		{"in the cert, not in local policy", aliceCert, alice, req("8443/tcp", time.Minute), outcome{decide: policy.ErrServiceNotAllowed}},
		{"in local policy, not in the cert", aliceCert, alice, req("80/tcp", time.Minute), outcome{decide: policy.ErrServiceNotAllowed}},
		{"within the cert's duration, beyond local", aliceCert, alice, req("22/tcp", 6*time.Minute), outcome{decide: policy.ErrDurationTooLong}},
		{"packet signed by another key", aliceCert, edKey(11), req("22/tcp", time.Minute), outcome{open: spa.ErrSignature}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pkt := sealCert(t, tc.leaf, tc.key, gwKey, tc.req, t0)
			op, err := o.Open(pkt, t0)
			if spa.ReasonOf(err) != tc.want.open {
				t.Fatalf("Open: %v, want %q", err, tc.want.open)
			}
			if err != nil {
				return
			}
			d, err := policy.Decide(op.Client, op.Request, src4, t0)
			if policy.ReasonOf(err) != tc.want.decide {
				t.Fatalf("Decide: %v, want %q", err, tc.want.decide)
			}
			if err == nil && (d.Client != op.Client.Name || d.Addr != src4 || !slices.Equal(d.Services, tc.req.Services)) {
				t.Errorf("Decision = %+v", d)
			}
		})
	}

	// The raw-key client still works through the same Opener.
	id := spa.KeyIdentity(f.bob)
	pkt, err := spa.Seal(id, gwKey.PublicKey(), req("22/tcp", time.Minute), t0)
	if err != nil {
		t.Fatal(err)
	}
	if op, err := o.Open(pkt, t0); err != nil || op.Client.Name != "bob" {
		t.Fatalf("raw-key client: %v, %v", op, err)
	}

	// Revocation reaches the next packet, and its reason comes out of Open.
	before := sealCert(t, aliceCert, alice, gwKey, req("22/tcp", time.Minute), t0)
	if _, err := f.v.SetCRL(f.ca.crl(t, crlOpts{number: 2, revoked: []int64{1}})); err != nil {
		t.Fatal(err)
	}
	_, err = o.Open(before, t0)
	wantReason(t, "revoked alice", err, ErrRevoked)
	if _, err := o.Open(sealCert(t, carolCert, carol, gwKey, req("22/tcp", time.Minute), t0), t0); err != nil {
		t.Errorf("carol after alice's revocation: %v", err)
	}
}

func TestResolverRefusals(t *testing.T) {
	gwKey := gatewayKey(t, 1)
	alice := edKey(10)
	f, o := newGateway(t, Local{Allow: []service.Range{{Proto: service.TCP, First: 22, Last: 22}}}, "gw1")
	open := func(leaf []byte, now time.Time) error {
		_, err := o.Open(sealCert(t, leaf, alice, gwKey, req("22/tcp", time.Minute), now), now)
		return err
	}
	other := newCA(t, "Other CA", edKey(0xD0))
	scoped := func(keys [][]byte, names ...string) []byte {
		a := ssh10m()
		a.GatewayKeys, a.GatewayNames = keys, names
		return f.ca.issue(t, leafOpts{key: alice.Public(), authz: &a})
	}
	web := Authorization{Services: []service.Range{{Proto: service.TCP, First: 443, Last: 443}}, MaxDuration: time.Minute}
	for name, tc := range map[string]struct {
		leaf []byte
		now  time.Time
		want spa.Reason
	}{
		"expired":                  {f.ca.issue(t, leafOpts{key: alice.Public(), notAfter: t0.Add(-time.Minute)}), t0, ErrExpired},
		"not yet valid":            {f.ca.issue(t, leafOpts{key: alice.Public(), notBefore: t0.Add(time.Hour)}), t0, ErrNotYetValid},
		"another CA":               {other.issue(t, leafOpts{key: alice.Public()}), t0, ErrUnknownCA},
		"scoped to another key":    {scoped([][]byte{fill(9, 32)}), t0, ErrNotAuthorized},
		"scoped to another name":   {scoped(nil, "gw2"), t0, ErrNotAuthorized},
		"nothing in common":        {f.ca.issue(t, leafOpts{key: alice.Public(), authz: &web}), t0, ErrNotAuthorized},
		"stale CRL (crl_required)": {f.ca.issue(t, leafOpts{key: alice.Public()}), t0.AddDate(0, 1, 0), ErrStaleCRL},
	} {
		err := open(tc.leaf, tc.now)
		wantReason(t, name, err, tc.want)
	}
	for name, leaf := range map[string][]byte{
		"scoped to this key":  scoped([][]byte{gwKey.PublicKey().Bytes()}),
		"scoped to this name": scoped([][]byte{fill(9, 32)}, "gw1"),
	} {
		if err := open(leaf, t0); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Kind-2 framing errors are bad-certificate; the resolver refuses other
	// kinds itself.
	res := f.v.Resolver(Scope{}, Local{})
	_, _, err := res(spa.Credential{Kind: spa.CredX509, Data: []byte{0, 9, 1}}, t0)
	wantReason(t, "bad framing", err, ErrBadCertificate)
	_, _, err = res(spa.Credential{Kind: spa.CredEd25519, Data: alice.Public().(ed25519.PublicKey)}, t0)
	wantReason(t, "kind 1", err, spa.ErrCredential)
}

func TestLocalClient(t *testing.T) {
	ca := defaultCA(t)
	v := newVerifier(t, ca, true, ca.crl(t, crlOpts{}))
	a := Authorization{Services: []service.Range{{Proto: service.TCP, First: 20, Last: 30}, {Proto: service.UDP, First: 53, Last: 53}}, MaxDuration: time.Hour}
	c, err := v.Check([][]byte{ca.issue(t, leafOpts{authz: &a})}, t0)
	if err != nil {
		t.Fatal(err)
	}
	src := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	pc, err := Local{
		Allow:        []service.Range{{Proto: service.TCP, First: 25, Last: 100}, {Proto: service.TCP, First: 1, Last: 21}, {Proto: service.UDP, First: 1, Last: 52}},
		MaxDuration:  10 * time.Minute,
		Sources:      src,
		OtherAddress: true,
	}.Client(c)
	if err != nil {
		t.Fatal(err)
	}
	want := []service.Range{{Proto: service.TCP, First: 25, Last: 30}, {Proto: service.TCP, First: 20, Last: 21}}
	if !slices.Equal(pc.Allow, want) || pc.MaxDuration != 10*time.Minute || pc.Name != "alice" ||
		!slices.Equal(pc.Sources, src) || !pc.OtherAddress || !pc.Expires.After(c.Leaf.NotAfter) || !bytes.Equal(pc.Key, edKey(10).Public().(ed25519.PublicKey)) {
		t.Errorf("Client = %+v", pc)
	}
	// The zero Local is the certificate's own authorization.
	pc, err = Local{}.Client(c)
	if err != nil || !slices.Equal(pc.Allow, a.Services) || pc.MaxDuration != time.Hour || pc.Sources != nil || pc.OtherAddress {
		t.Errorf("zero Local: %+v, %v", pc, err)
	}
	// Expires: valid through NotAfter, refused just after.
	if _, err := policy.Decide(pc, req("22/tcp", time.Minute), src4, c.Leaf.NotAfter); err != nil {
		t.Errorf("at NotAfter: %v", err)
	}
	if _, err := policy.Decide(pc, req("22/tcp", time.Minute), src4, c.Leaf.NotAfter.Add(time.Second)); policy.ReasonOf(err) != policy.ErrClientExpired {
		t.Errorf("after NotAfter: %v", err)
	}
}

package policy

import (
	"crypto/ed25519"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/service"
)

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func rng(t *testing.T, s string) service.Range {
	t.Helper()
	r, err := service.ParseRange(s, 0)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func ranges(t *testing.T, ss ...string) []service.Range {
	var out []service.Range
	for _, s := range ss {
		out = append(out, rng(t, s))
	}
	return out
}

func laptop(t *testing.T) Client {
	return Client{
		Name:        "laptop",
		Key:         ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey),
		Allow:       ranges(t, "22/tcp", "60000-61000/udp", "61001-61010/udp", "443/tcp"),
		MaxDuration: 5 * time.Minute,
	}
}

func TestDecide(t *testing.T) {
	src4 := netip.MustParseAddr("198.51.100.7")
	src6 := netip.MustParseAddr("2001:db8::7")
	type tc struct {
		name   string
		edit   func(*Client)
		req    Request
		src    netip.Addr
		at     time.Time
		want   Reason // "" = granted
		wantTo netip.Addr
	}
	ok := func(ss ...string) Request { return Request{Services: ranges(t, ss...), Duration: time.Minute} }
	with := func(r Request, f func(*Request)) Request { f(&r); return r }
	cases := []tc{
		{name: "granted v4", req: ok("22/tcp"), src: src4, wantTo: src4},
		{name: "granted v6", req: ok("22/tcp", "443/tcp"), src: src6, wantTo: src6},
		{name: "mapped source unmapped", req: ok("22/tcp"), src: netip.MustParseAddr("::ffff:198.51.100.7"), wantTo: src4},
		{name: "range inside allow", req: ok("60010-60020/udp"), src: src4, wantTo: src4},
		{name: "range across two adjacent allows", req: ok("60999-61005/udp"), src: src4, wantTo: src4},
		{name: "range past allow", req: ok("61005-61011/udp"), src: src4, want: ErrServiceNotAllowed},
		{name: "service outside allow", req: ok("22/tcp", "8080/tcp"), src: src4, want: ErrServiceNotAllowed},
		{name: "wrong protocol", req: ok("22/udp"), src: src4, want: ErrServiceNotAllowed},
		{name: "invalid service", req: Request{Services: []service.Range{{Proto: service.TCP, First: 0, Last: 22}}, Duration: time.Minute}, src: src4, want: ErrServiceNotAllowed},
		{name: "no services", req: Request{Duration: time.Minute}, src: src4, want: ErrNoServices},
		{name: "duration at max", req: with(ok("22/tcp"), func(r *Request) { r.Duration = 5 * time.Minute }), src: src4, wantTo: src4},
		{name: "duration too long rejected", req: with(ok("22/tcp"), func(r *Request) { r.Duration = 5*time.Minute + time.Second }), src: src4, want: ErrDurationTooLong},
		{name: "default max duration", edit: func(c *Client) { c.MaxDuration = 0 }, req: with(ok("22/tcp"), func(r *Request) { r.Duration = 61 * time.Second }), src: src4, want: ErrDurationTooLong},
		{name: "zero duration", req: with(ok("22/tcp"), func(r *Request) { r.Duration = 0 }), src: src4, want: ErrBadDuration},
		{name: "source allowed", edit: func(c *Client) { c.Sources = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")} }, req: ok("22/tcp"), src: src4, wantTo: src4},
		{name: "source not allowed", edit: func(c *Client) { c.Sources = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")} }, req: ok("22/tcp"), src: src4, want: ErrSourceNotAllowed},
		{name: "v6 source vs v4 prefixes", edit: func(c *Client) { c.Sources = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")} }, req: ok("22/tcp"), src: src6, want: ErrSourceNotAllowed},
		{name: "mapped prefix matches v4", edit: func(c *Client) { c.Sources = []netip.Prefix{netip.MustParsePrefix("::ffff:198.51.100.0/120")} }, req: ok("22/tcp"), src: src4, wantTo: src4},
		{name: "bad source loopback", req: ok("22/tcp"), src: netip.MustParseAddr("127.0.0.1"), want: ErrBadSource},
		{name: "bad source invalid", req: ok("22/tcp"), src: netip.Addr{}, want: ErrBadSource},
		{name: "expired client", edit: func(c *Client) { c.Expires = now }, req: ok("22/tcp"), src: src4, want: ErrClientExpired},
		{name: "not yet expired", edit: func(c *Client) { c.Expires = now.Add(time.Second) }, req: ok("22/tcp"), src: src4, wantTo: src4},
		{name: "other address not permitted", req: with(ok("22/tcp"), func(r *Request) { r.Addr = netip.MustParseAddr("203.0.113.9") }), src: src4, want: ErrOtherAddress},
		{name: "same address explicit", req: with(ok("22/tcp"), func(r *Request) { r.Addr = src4 }), src: src4, wantTo: src4},
		{name: "other address permitted", edit: func(c *Client) { c.OtherAddress = true }, req: with(ok("22/tcp"), func(r *Request) { r.Addr = netip.MustParseAddr("2001:db8::99") }), src: src4, wantTo: netip.MustParseAddr("2001:db8::99")},
		{name: "other address multicast", edit: func(c *Client) { c.OtherAddress = true }, req: with(ok("22/tcp"), func(r *Request) { r.Addr = netip.MustParseAddr("ff02::1") }), src: src4, want: ErrBadAddress},
		{name: "other address broadcast", edit: func(c *Client) { c.OtherAddress = true }, req: with(ok("22/tcp"), func(r *Request) { r.Addr = netip.MustParseAddr("255.255.255.255") }), src: src4, want: ErrBadAddress},
		{name: "other address outside sources", edit: func(c *Client) {
			c.OtherAddress = true
			c.Sources = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}
		}, req: with(ok("22/tcp"), func(r *Request) { r.Addr = netip.MustParseAddr("203.0.113.9") }), src: src4, want: ErrAddressNotAllowed},
		{name: "nil client", edit: nil, req: ok("22/tcp"), src: src4, want: ErrUnknownClient},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl := laptop(t)
			if c.edit != nil {
				c.edit(&cl)
			}
			p := &cl
			if c.want == ErrUnknownClient {
				p = nil
			}
			at := c.at
			if at.IsZero() {
				at = now
			}
			svcBefore := slices.Clone(c.req.Services)
			d, err := Decide(p, c.req, c.src, at)
			if c.want != "" {
				if !errors.Is(err, c.want) || ReasonOf(err) != c.want {
					t.Fatalf("Decide = %+v, %v; want reason %q", d, err, c.want)
				}
				if d.Addr.IsValid() || d.Services != nil {
					t.Errorf("refusal carries a decision: %+v", d)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if d.Addr != c.wantTo || d.Client != "laptop" || d.Duration != c.req.Duration || !slices.Equal(d.Services, c.req.Services) {
				t.Errorf("Decide = %+v; want addr %v, services %v, duration %v", d, c.wantTo, c.req.Services, c.req.Duration)
			}
			if len(d.Services) > 0 && &d.Services[0] == &c.req.Services[0] {
				t.Error("Decision aliases the request's services")
			}
			if !slices.Equal(svcBefore, c.req.Services) {
				t.Error("Decide modified the request")
			}
		})
	}
}

func TestReasonOfWrapped(t *testing.T) {
	_, err := Decide(&Client{Name: "x", Allow: ranges(t, "22/tcp")}, Request{Services: ranges(t, "23/tcp"), Duration: time.Second}, netip.MustParseAddr("192.0.2.1"), now)
	if ReasonOf(err) != ErrServiceNotAllowed || err.Error() != "service-not-allowed: 23/tcp" {
		t.Fatalf("err = %q, reason %q", err, ReasonOf(err))
	}
	if ReasonOf(errors.New("other")) != "" || ReasonOf(nil) != "" {
		t.Error("ReasonOf invents a reason")
	}
}

func key(b byte) ed25519.PublicKey {
	seed := make([]byte, ed25519.SeedSize)
	seed[0] = b
	return ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
}

func TestSet(t *testing.T) {
	a := laptop(t)
	a.Key = key(1)
	b := laptop(t)
	b.Name, b.Key = "phone", key(2)
	b.Expires = now
	s, err := NewSet([]Client{a, b})
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 2 {
		t.Errorf("Len = %d", s.Len())
	}
	if c, ok := s.ByKey(key(2)); !ok || c.Name != "phone" {
		t.Errorf("ByKey(phone) = %v, %v", c, ok)
	}
	if _, ok := s.ByKey(key(3)); ok {
		t.Error("ByKey found an unknown key")
	}
	if _, ok := s.ByKey(key(1)[:31]); ok {
		t.Error("ByKey accepted a short key")
	}
	if c, ok := s.ByName("laptop"); !ok || !c.Key.Equal(key(1)) {
		t.Errorf("ByName(laptop) = %v, %v", c, ok)
	}
	if got := s.Expired(now); !slices.Equal(got, []string{"phone"}) {
		t.Errorf("Expired = %v", got)
	}
	var names []string
	for _, c := range s.All() {
		names = append(names, c.Name)
	}
	if !slices.Equal(names, []string{"laptop", "phone"}) {
		t.Errorf("All = %v, want sorted by name", names)
	}
	a.Key[0] ^= 1 // the Set keeps its own copy
	if _, ok := s.ByKey(key(1)); !ok {
		t.Error("Set aliases the caller's key")
	}
	var nilSet *Set
	if _, ok := nilSet.ByKey(key(1)); ok || nilSet.Len() != 0 || nilSet.All() != nil {
		t.Error("nil Set is not empty")
	}
}

func TestNewSetRejects(t *testing.T) {
	good := laptop(t)
	dupName := laptop(t)
	dupName.Key = key(9)
	cases := map[string][]Client{
		"no name":        {{Key: key(1)}},
		"short key":      {{Name: "x", Key: key(1)[:16]}},
		"bad service":    {{Name: "x", Key: key(1), Allow: []service.Range{{Proto: 1, First: 1, Last: 1}}}},
		"reversed range": {{Name: "x", Key: key(1), Allow: []service.Range{{Proto: service.TCP, First: 9, Last: 1}}}},
		"bad prefix":     {{Name: "x", Key: key(1), Sources: []netip.Prefix{{}}}},
		"negative max":   {{Name: "x", Key: key(1), MaxDuration: -time.Second}},
		"duplicate key":  {good, func() Client { c := good; c.Name = "other"; return c }()},
		"duplicate name": {good, dupName},
	}
	for name, cs := range cases {
		if _, err := NewSet(cs); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: NewSet err = %v, want ErrConfig", name, err)
		}
	}
}

package accessconf

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/fwknop"
)

// captured is a packet of ../testdata/captured (Debian's fwknop 2.6.10
// client, 10.99.0.2 -> 10.99.0.1).
type captured struct {
	packet, key, hmacKey, hmacType string
	ts                             int64
}

func loadCaptured(t *testing.T, name string) captured {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "captured", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Keys struct {
			K string `json:"rijndael_key_base64"`
			H string `json:"hmac_key_base64"`
			D string `json:"hmac_digest"`
		} `json:"keys"`
		Wire struct {
			Packet string `json:"spa_packet"`
		} `json:"wire"`
		Decoded struct {
			Timestamp int64 `json:"timestamp"`
		} `json:"decoded"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return captured{r.Wire.Packet, r.Keys.K, r.Keys.H, r.Keys.D, r.Decoded.Timestamp}
}

// stanza returns access.conf lines with the packet's keys.
func (c captured) stanza(source string, extra ...string) string {
	s := fmt.Sprintf("SOURCE %s\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nHMAC_DIGEST_TYPE %s\n", source, c.key, c.hmacKey, c.hmacType)
	for _, e := range extra {
		s += e + "\n"
	}
	return s
}

var (
	client = netip.MustParseAddr("10.99.0.2")
	server = netip.MustParseAddr("10.99.0.1")
)

func mustParse(t *testing.T, text string) []*Stanza {
	t.Helper()
	cfg, err := Parse("access.conf", []byte(text), Options{})
	if err != nil {
		t.Fatalf("Parse:\n%s\n%v", text, err)
	}
	return cfg.Stanzas
}

func TestAuthorizeCaptured(t *testing.T) {
	base := loadCaptured(t, "01-access-tcp2222-hmac-sha256")
	multi := loadCaptured(t, "02-multiport-hmac-sha512")
	src := loadCaptured(t, "03-source-ip-timeout-digest-sha512")
	named := loadCaptured(t, "04-named-config-hmac-sha384")
	nat := loadCaptured(t, "05-nat-local-55000")
	age := 120 * time.Second
	at := func(c captured, d time.Duration) AuthOptions {
		return AuthOptions{Now: time.Unix(c.ts, 0).Add(d), MaxPacketAge: age}
	}
	type want struct {
		err      error
		addr     string
		services string
		timeout  time.Duration
		stanza   int
	}
	for _, tc := range []struct {
		name string
		c    captured
		conf string
		opts AuthOptions
		pkt  *Packet
		want want
	}{
		{"baseline", base, base.stanza("ANY"), at(base, 0), nil, want{nil, "10.99.0.2", "[2222/tcp]", 30 * time.Second, 0}},
		{"stale", base, base.stanza("ANY"), at(base, 121*time.Second), nil, want{err: fwknop.ErrStale}},
		{"future", base, base.stanza("ANY"), at(base, -121*time.Second), nil, want{err: fwknop.ErrStale}},
		{"aging off", base, base.stanza("ANY"), AuthOptions{Now: time.Unix(base.ts, 0).Add(time.Hour)}, nil, want{nil, "10.99.0.2", "[2222/tcp]", 30 * time.Second, 0}},
		{"source list", base, base.stanza("192.0.2.0/24, 10.99.0.0/255.255.255.0"), at(base, 0), nil, want{nil, "10.99.0.2", "[2222/tcp]", 30 * time.Second, 0}},
		{"source mismatch", base, base.stanza("192.0.2.0/24"), at(base, 0), nil, want{err: ErrNoStanza}},
		{"destination match", base, base.stanza("ANY", "DESTINATION 10.99.0.1"), at(base, 0), nil, want{nil, "10.99.0.2", "[2222/tcp]", 30 * time.Second, 0}},
		{"destination mismatch", base, base.stanza("ANY", "DESTINATION 10.99.0.9"), at(base, 0), nil, want{err: ErrNoStanza}},
		{"expired", base, base.stanza("ANY", "ACCESS_EXPIRE_EPOCH 1795311000"), at(base, 0), nil, want{err: ErrExpired}},
		{"not yet expired", base, base.stanza("ANY", "ACCESS_EXPIRE 12/31/2037"), at(base, 0), nil, want{nil, "10.99.0.2", "[2222/tcp]", 30 * time.Second, 0}},
		{"wrong hmac type", base, strings.Replace(base.stanza("ANY"), "sha256", "sha512", 1), at(base, 0), nil, want{err: fwknop.ErrHMAC}},
		{"wrong key", base, strings.Replace(base.stanza("ANY"), base.key, "c2Vzc2FtZSBvcGVu", 1), at(base, 0), nil, want{err: fwknop.ErrDecrypt}},
		{"FW_ACCESS_TIMEOUT", base, base.stanza("ANY", "FW_ACCESS_TIMEOUT 90"), at(base, 0), nil, want{nil, "10.99.0.2", "[2222/tcp]", 90 * time.Second, 0}},
		{"FW_ACCESS_TIMEOUT capped", base, base.stanza("ANY", "FW_ACCESS_TIMEOUT 900", "MAX_FW_TIMEOUT 60"), at(base, 0), nil, want{nil, "10.99.0.2", "[2222/tcp]", 60 * time.Second, 0}},
		{"user", base, base.stanza("ANY", "REQUIRE_USERNAME root"), at(base, 0), nil, want{nil, "10.99.0.2", "[2222/tcp]", 30 * time.Second, 0}},
		{"wrong user", base, base.stanza("ANY", "REQUIRE_USERNAME alice"), at(base, 0), nil, want{err: ErrUsername}},
		{"open ports", multi, multi.stanza("ANY", "OPEN_PORTS tcp/2222, udp/5353, tcp/22"), at(multi, 0), nil, want{nil, "10.99.0.2", "[2222/tcp 5353/udp]", 30 * time.Second, 0}},
		{"open ports partial", multi, multi.stanza("ANY", "OPEN_PORTS tcp/2222"), at(multi, 0), nil, want{err: ErrPorts}},
		{"restricted", multi, multi.stanza("ANY", "RESTRICT_PORTS udp/5353"), at(multi, 0), nil, want{err: ErrPorts}},
		{"restricted other", multi, multi.stanza("ANY", "RESTRICT_PORTS tcp/5353"), at(multi, 0), nil, want{nil, "10.99.0.2", "[2222/tcp 5353/udp]", 30 * time.Second, 0}},
		{"-s uses packet source", src, src.stanza("ANY"), at(src, 0), nil, want{nil, "10.99.0.2", "[2222/tcp]", 45 * time.Second, 0}},
		{"-s other source", src, src.stanza("ANY"), at(src, 0), &Packet{Src: netip.MustParseAddr("10.99.0.7"), Dst: server}, want{nil, "10.99.0.7", "[2222/tcp]", 45 * time.Second, 0}},
		{"-s from a dual-stack socket", src, src.stanza("10.99.0.0/24"), at(src, 0), &Packet{Src: netip.MustParseAddr("::ffff:10.99.0.2"), Dst: netip.MustParseAddr("::ffff:10.99.0.1")}, want{nil, "10.99.0.2", "[2222/tcp]", 45 * time.Second, 0}},
		{"IPv6 source", src, src.stanza("ANY"), at(src, 0), &Packet{Src: netip.MustParseAddr("2001:db8::2"), Dst: netip.MustParseAddr("2001:db8::1")}, want{err: ErrNoStanza}},
		{"-s refused", src, src.stanza("ANY", "REQUIRE_SOURCE_ADDRESS Y"), at(src, 0), nil, want{err: ErrSourceRequired}},
		{"-f capped", src, src.stanza("ANY", "MAX_FW_TIMEOUT 20"), at(src, 0), nil, want{nil, "10.99.0.2", "[2222/tcp]", 20 * time.Second, 0}},
		{"sha384", named, named.stanza("ANY"), at(named, 0), nil, want{nil, "10.99.0.2", "[2222/tcp]", 30 * time.Second, 0}},
		{"NAT refused", nat, nat.stanza("ANY"), at(nat, 0), nil, want{err: ErrNAT}},
		{"first full match wins", base,
			base.stanza("10.99.0.0/16", "REQUIRE_USERNAME alice") + multi.stanza("ANY") + base.stanza("ANY", "FW_ACCESS_TIMEOUT 5") + base.stanza("ANY", "FW_ACCESS_TIMEOUT 6"),
			at(base, 0), nil, want{nil, "10.99.0.2", "[2222/tcp]", 5 * time.Second, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stanzas := mustParse(t, tc.conf)
			pkt := Packet{Src: client, Dst: server}
			if tc.pkt != nil {
				pkt = *tc.pkt
			}
			pkt.Payload = []byte(tc.c.packet)
			res := Authorize(stanzas, pkt, tc.opts)
			if tc.want.err != nil {
				if res.Grant != nil || !errors.Is(res.Err, tc.want.err) {
					t.Fatalf("grant %+v, err %v; want %v", res.Grant, res.Err, tc.want.err)
				}
				decrypts := !errors.Is(tc.want.err, fwknop.ErrHMAC) && !errors.Is(tc.want.err, fwknop.ErrDecrypt) &&
					tc.want.err != ErrNoStanza && tc.want.err != ErrExpired
				if res.Decrypted != decrypts {
					t.Errorf("Decrypted = %v, want %v", res.Decrypted, decrypts)
				}
				return
			}
			g := res.Grant
			if g == nil {
				t.Fatalf("refused: %v", res.Err)
			}
			if g.Addr.String() != tc.want.addr || fmt.Sprint(g.Services) != tc.want.services || g.Timeout != tc.want.timeout || g.Stanza.Index != tc.want.stanza || !res.Decrypted {
				t.Errorf("grant %v %v %v stanza #%d; want %s %s %v #%d", g.Addr, g.Services, g.Timeout, g.Stanza.Index, tc.want.addr, tc.want.services, tc.want.timeout, tc.want.stanza)
			}
		})
	}
}

func TestAuthorizeErrorsName(t *testing.T) {
	base := loadCaptured(t, "01-access-tcp2222-hmac-sha256")
	stanzas := mustParse(t, base.stanza("ANY", "REQUIRE_USERNAME alice")+base.stanza("ANY", "OPEN_PORTS tcp/22"))
	res := Authorize(stanzas, Packet{Src: client, Dst: server, Payload: []byte(base.packet)}, AuthOptions{Now: time.Unix(base.ts, 0)})
	if res.Grant != nil || !errors.Is(res.Err, ErrUsername) || !errors.Is(res.Err, ErrPorts) ||
		!strings.Contains(res.Err.Error(), "stanza #1 (access.conf:1)") || !strings.Contains(res.Err.Error(), "stanza #2 (access.conf:6)") {
		t.Errorf("err = %v", res.Err)
	}
	res = Authorize(stanzas, Packet{Src: client, Dst: server, Payload: []byte("not fwknop")}, AuthOptions{})
	if !errors.Is(res.Err, fwknop.ErrFormat) || res.Decrypted {
		t.Errorf("garbage: %v", res.Err)
	}
	if !MatchesSource(stanzas, client) || MatchesSource(mustParse(t, base.stanza("192.0.2.1")), client) {
		t.Error("MatchesSource")
	}
}

// TestAuthorizeCommands encodes command messages with the Sesame encoder.
func TestAuthorizeCommands(t *testing.T) {
	keys := fwknop.Keys{Key: []byte("enc key"), HMACKey: []byte("mac key")}
	now := time.Unix(1_800_000_000, 0)
	wire, err := fwknop.Encode(fwknop.Message{User: "root", Timestamp: now.Unix(), Type: fwknop.CommandMsg, Access: "10.99.0.2,uptime"},
		keys, fwknop.EncodeOptions{Command: true})
	if err != nil {
		t.Fatal(err)
	}
	conf := "SOURCE ANY\nKEY enc key\nHMAC_KEY mac key\n"
	pkt := Packet{Src: client, Dst: server, Payload: []byte(wire)}
	if res := Authorize(mustParse(t, conf), pkt, AuthOptions{Now: now, AllowCommands: true}); !errors.Is(res.Err, ErrCommand) {
		t.Errorf("without ENABLE_CMD_EXEC: %v", res.Err)
	}
	stanzas := mustParse(t, conf+"ENABLE_CMD_EXEC Y\n")
	if res := Authorize(stanzas, pkt, AuthOptions{Now: now}); !errors.Is(res.Err, ErrCommand) {
		t.Errorf("without AllowCommands: %v", res.Err)
	}
	res := Authorize(stanzas, pkt, AuthOptions{Now: now, AllowCommands: true})
	if res.Grant == nil || res.Grant.Command != "uptime" || len(res.Grant.Services) != 0 {
		t.Errorf("command grant: %+v, %v", res.Grant, res.Err)
	}
}

func TestAuthorizeCmdCycle(t *testing.T) {
	src := loadCaptured(t, "03-source-ip-timeout-digest-sha512") // -s, -f 45
	base := loadCaptured(t, "01-access-tcp2222-hmac-sha256")
	open := "CMD_CYCLE_OPEN /usr/sbin/ipset add fwknop $IP,$PROTO:$PORT timeout $CLIENT_TIMEOUT -exist"
	for _, tc := range []struct {
		c         captured
		extra     []string
		open      string
		close     string
		closeWait time.Duration
	}{
		{src, []string{open, "CMD_CYCLE_CLOSE NONE"}, "/usr/sbin/ipset add fwknop 10.99.0.2,6:2222 timeout 45 -exist", "", 45 * time.Second},
		{base, []string{open, "CMD_CYCLE_CLOSE /usr/sbin/ipset del fwknop $SRC,$PROTO:$PORT # at $TIMEOUT from $PKT_SRC to $DST", "CMD_CYCLE_TIMER 20"},
			"/usr/sbin/ipset add fwknop 10.99.0.2,6:2222 timeout 20 -exist",
			fmt.Sprintf("/usr/sbin/ipset del fwknop 10.99.0.2,6:2222 # at %d from 10.99.0.2 to 10.99.0.1", base.ts+20), 20 * time.Second},
		{src, []string{open, "CMD_CYCLE_CLOSE /bin/true", "CMD_CYCLE_TIMER 5", "MAX_FW_TIMEOUT 30"}, "/usr/sbin/ipset add fwknop 10.99.0.2,6:2222 timeout 30 -exist", "/bin/true", 30 * time.Second},
	} {
		res := Authorize(mustParse(t, tc.c.stanza("ANY", tc.extra...)), Packet{Src: client, Dst: server, Payload: []byte(tc.c.packet)}, AuthOptions{Now: time.Unix(tc.c.ts, 0)})
		if res.Grant == nil || res.Grant.CmdCycle == nil {
			t.Fatalf("%v: %+v %v", tc.extra, res.Grant, res.Err)
		}
		cc := res.Grant.CmdCycle
		if strings.Join(cc.Open, " ") != tc.open || strings.Join(cc.Close, " ") != tc.close || cc.CloseAfter != tc.closeWait {
			t.Errorf("cycle\n open  %q\n close %q after %v\nwant\n open  %q\n close %q after %v", cc.Open, cc.Close, cc.CloseAfter, tc.open, tc.close, tc.closeWait)
		}
	}
	// Ports bind CMD_CYCLE stanzas too (fwknopd would run the command).
	res := Authorize(mustParse(t, base.stanza("ANY", open, "CMD_CYCLE_CLOSE NONE", "OPEN_PORTS tcp/22")),
		Packet{Src: client, Dst: server, Payload: []byte(base.packet)}, AuthOptions{Now: time.Unix(base.ts, 0)})
	if !errors.Is(res.Err, ErrPorts) {
		t.Errorf("CMD_CYCLE with OPEN_PORTS: %v", res.Err)
	}
}

func TestExpandCmd(t *testing.T) {
	v := CmdVars{IP: client, PktSrc: netip.MustParseAddr("192.0.2.1"), Dst: server,
		Timestamp: 1000, Delay: 30 * time.Second}
	v.Service.Proto, v.Service.Port = 17, 53
	for tmpl, want := range map[string]string{
		"/bin/touch /tmp/$IP_$IP":            "/bin/touch /tmp/10.99.0.2_10.99.0.2",
		"cmd $SRC $PKT_SRC $DST":             "cmd 10.99.0.2 192.0.2.1 10.99.0.1",
		"cmd $PROTO/$PORT until $TIMEOUT":    "cmd 17/53 until 1030",
		"cmd $CLIENT_TIMEOUT $NOPE $":        "cmd 30 NOPE",
		"  spaced\targs  ":                   "spaced args",
		"cmd ${IP}":                          "cmd {IP}",
		"cmd $IPADDR":                        "cmd 10.99.0.2ADDR",
		"cmd $TIMEOUTX $CLIENT_TIMEOUT_SECS": "cmd 1030X 30_SECS",
	} {
		got, err := ExpandCmd(tmpl, v)
		if err != nil || strings.Join(got, " ") != want {
			t.Errorf("ExpandCmd(%q) = %q, %v; want %q", tmpl, got, err, want)
		}
	}
	for _, bad := range []string{"", "   ", strings.Repeat("a ", 29), strings.Repeat("x", 250) + " $IP"} {
		if _, err := ExpandCmd(bad, v); err == nil {
			t.Errorf("ExpandCmd(%.20q...) succeeded", bad)
		}
	}
	if got, _ := ExpandCmd(strings.Repeat("a ", 28), v); len(got) != 28 || !slices.Equal(got[:2], []string{"a", "a"}) {
		t.Errorf("28 arguments: %d", len(got))
	}
}

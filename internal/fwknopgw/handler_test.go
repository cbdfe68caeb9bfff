package fwknopgw

import (
	"errors"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/firewall"
	"github.com/sesame-gw/sesame/internal/fwknop"
	"github.com/sesame-gw/sesame/internal/service"
)

func TestGrantAndReplay(t *testing.T) {
	h := newHandler(t, settings(t, baseConf), nil)
	p := packet(t, keyA, "10.99.0.2,tcp/2222,udp/5353,tcp/2222", t0)
	if !h.Match(p) {
		t.Fatal("Match refused a packet")
	}
	v := h.Handle(t0.Add(3*time.Second), cli, gwIP, p)
	want := []firewall.Grant{{Addr: cli, Service: ssh, TTL: 30 * time.Second}, {Addr: cli, Service: dns, TTL: 30 * time.Second}}
	if v.Reason != "" || v.Client != "alice@access.conf:1" || len(v.Grants) != 2 || v.Grants[0] != want[0] || v.Grants[1] != want[1] || v.After != nil {
		t.Fatalf("verdict %+v", v)
	}
	v = h.Handle(t0.Add(4*time.Second), cli, gwIP, p)
	if v.Reason != ReasonReplay || v.Quiet || !strings.Contains(v.Detail, "10.99.0.2") || v.Grants != nil {
		t.Fatalf("replay verdict %+v", v)
	}
	// The digest stays until 2 × MAX_SPA_PACKET_AGE after it was stored,
	// longer than the packet itself stays acceptable.
	if _, ok := h.digests.Seen(fwknop.ReplayDigest(p), t0.Add(243*time.Second)); !ok {
		t.Fatal("digest forgotten too early")
	}
	if _, ok := h.digests.Seen(fwknop.ReplayDigest(p), t0.Add(244*time.Second)); ok {
		t.Fatal("digest kept past its window")
	}
}

func TestAllowIPAndTimeouts(t *testing.T) {
	h := newHandler(t, settings(t, baseConf), nil)
	// -s: 0.0.0.0 means the packet source.
	v := h.Handle(t0, cli, gwIP, packet(t, keyA, "0.0.0.0,tcp/2222", t0))
	if v.Reason != "" || v.Grants[0].Addr != cli {
		t.Fatalf("-s: %+v", v)
	}
	// -a another address: granted for it, as fwknopd does.
	v = h.Handle(t0, cli, gwIP, packet(t, keyA, "10.99.0.77,tcp/2222", t0))
	if v.Reason != "" || v.Grants[0].Addr != netip.MustParseAddr("10.99.0.77") {
		t.Fatalf("-a: %+v", v)
	}
	// -f 5: the client timeout; -f 600: capped by MAX_FW_TIMEOUT 60.
	for _, c := range []struct {
		f    uint32
		want time.Duration
	}{{5, 5 * time.Second}, {600, 60 * time.Second}} {
		v = h.Handle(t0, cli, gwIP, packet(t, keyA, "10.99.0.2,tcp/2222", t0, func(m *fwknop.Message) { m.ClientTimeout = c.f }))
		if v.Reason != "" || v.Grants[0].TTL != c.want {
			t.Fatalf("-f %d: %+v", c.f, v)
		}
	}
	// The stanza without HMAC, and the SHA-512 one from another source.
	if v = h.Handle(t0, cli2, gwIP, packet(t, plain, "10.99.0.3,tcp/2222", t0)); v.Reason != "" {
		t.Fatalf("no HMAC: %+v", v)
	}
	if v = h.Handle(t0, netip.MustParseAddr("192.0.2.9"), gwIP, packet(t, keyB, "0.0.0.0,tcp/2222", t0)); v.Reason != "" || v.Client != "alice@access.conf:8" {
		t.Fatalf("sha512 stanza: %+v", v)
	}
	// An IPv4-mapped source (dual-stack socket) is IPv4.
	if v = h.Handle(t0, netip.MustParseAddr("::ffff:10.99.0.2"), gwIP, packet(t, keyA, "0.0.0.0,tcp/2222", t0)); v.Reason != "" || v.Grants[0].Addr != cli {
		t.Fatalf("mapped: %+v", v)
	}
}

func TestRejects(t *testing.T) {
	wrongHMACKey := keyA
	wrongHMACKey.HMACKey = []byte("not the hmac key")
	wrongKey := keyA
	wrongKey.Key = []byte("not the key")
	wrongType := keyA
	wrongType.HMACHash = fwknop.SHA384
	garbage := []byte("+" + strings.Repeat("A", 199))
	const extra = `
SOURCE 10.99.1.1
KEY k1
REQUIRE_USERNAME bob
REQUIRE_SOURCE_ADDRESS Y
OPEN_PORTS tcp/2222

SOURCE 10.99.1.2
KEY k2
ACCESS_EXPIRE_EPOCH 1000

SOURCE 10.99.1.3
KEY k3
`
	k1, k2, k3 := fwknop.Keys{Key: []byte("k1")}, fwknop.Keys{Key: []byte("k2")}, fwknop.Keys{Key: []byte("k3")}
	s := settings(t, baseConf+extra)
	for _, c := range []struct {
		name   string
		src    netip.Addr
		pkt    []byte
		reason string
		quiet  bool
		detail string
	}{
		{"garbage", cli, garbage, ReasonHMAC, true, ""},
		{"format", cli, []byte("+" + strings.Repeat("A", 100)), ReasonFormat, true, ""},
		{"gpg size", cli, []byte("+" + strings.Repeat("A", 500)), ReasonGPG, false, "GPG"},
		{"wrong hmac key", cli, packet(t, wrongHMACKey, "10.99.0.2,tcp/2222", t0), ReasonHMAC, true, "HMAC"},
		{"wrong key", cli, packet(t, wrongKey, "10.99.0.2,tcp/2222", t0), ReasonDecrypt, true, ""},
		{"wrong hmac type", cli, packet(t, wrongType, "10.99.0.2,tcp/2222", t0), ReasonHMAC, true, ""},
		{"unknown source", netip.MustParseAddr("10.98.0.1"), packet(t, plain, "0.0.0.0,tcp/2222", t0), ReasonSource, true, ""},
		{"ipv6 source", netip.MustParseAddr("fd00::2"), packet(t, keyB, "0.0.0.0,tcp/2222", t0), ReasonSource, true, "IPv4"},
		{"stale", cli, packet(t, keyA, "10.99.0.2,tcp/2222", t0.Add(-121*time.Second)), ReasonStale, false, "MAX_SPA_PACKET_AGE"},
		{"future", cli, packet(t, keyA, "10.99.0.2,tcp/2222", t0.Add(5*time.Minute)), ReasonStale, false, ""},
		{"port not open", cli, packet(t, keyA, "10.99.0.2,tcp/22", t0), ReasonPorts, false, "OPEN_PORTS"},
		{"nat local", cli, packet(t, keyA, "10.99.0.2,tcp/2222", t0, func(m *fwknop.Message) { m.Type = fwknop.LocalNATAccessMsg; m.NATAccess = "10.99.0.1,22" }), ReasonNAT, false, "NAT"},
		{"command", cli, packet(t, keyA, "10.99.0.2,touch /tmp/x", t0, func(m *fwknop.Message) { m.Type = fwknop.CommandMsg }), ReasonCommand, false, ""},
		{"username", netip.MustParseAddr("10.99.1.1"), packet(t, k1, "10.99.1.1,tcp/2222", t0), ReasonUser, false, "REQUIRE_USERNAME"},
		{"source required", netip.MustParseAddr("10.99.1.1"), packet(t, k1, "0.0.0.0,tcp/2222", t0, func(m *fwknop.Message) { m.User = "bob" }), ReasonAllowIP, false, ""},
		{"expired", netip.MustParseAddr("10.99.1.2"), packet(t, k2, "0.0.0.0,tcp/2222", t0), ReasonExpired, true, ""},
		// A stanza without OPEN_PORTS may open only what Sesame protects.
		{"unprotected", netip.MustParseAddr("10.99.1.3"), packet(t, k3, "0.0.0.0,tcp/80", t0), ReasonPorts, false, "not a port Sesame protects"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHandler(t, s, nil)
			v := h.Handle(t0, c.src, gwIP, c.pkt)
			if v.Reason != c.reason || v.Quiet != c.quiet || v.Grants != nil || v.After != nil || !strings.Contains(v.Detail, c.detail) {
				t.Fatalf("got %+v, want reason %q quiet %v detail ~%q", v, c.reason, c.quiet, c.detail)
			}
			// A packet that decrypted is burned, whatever refused it.
			if !c.quiet && c.reason != ReasonGPG {
				if v := h.Handle(t0, c.src, gwIP, c.pkt); v.Reason != ReasonReplay {
					t.Fatalf("resent: %+v", v)
				}
			} else if h.digests.Len() != 0 {
				t.Fatalf("digest stored for a packet nobody decrypted")
			}
		})
	}
}

// The reason is the one of the stanza that got furthest.
func TestFurthestStanzaReason(t *testing.T) {
	conf := `SOURCE ANY
KEY some other key
HMAC_KEY another hmac key

SOURCE ANY
KEY rijndael key A
HMAC_KEY hmac key A, at least not short
OPEN_PORTS udp/5353
`
	h := newHandler(t, settings(t, conf), nil)
	v := h.Handle(t0, cli, gwIP, packet(t, keyA, "10.99.0.2,tcp/2222", t0))
	if v.Reason != ReasonPorts || !strings.Contains(v.Detail, "stanza #2") || !strings.Contains(v.Detail, "1 more") {
		t.Fatalf("%+v", v)
	}
}

func TestCmdCycle(t *testing.T) {
	conf := `SOURCE ANY
KEY rijndael key A
HMAC_KEY hmac key A, at least not short
CMD_CYCLE_OPEN /usr/sbin/nft add element inet t allowed { $IP . $PORT timeout $CLIENT_TIMEOUTs }
CMD_CYCLE_CLOSE /usr/sbin/nft delete element inet t allowed { $IP . $PORT }
CMD_CYCLE_TIMER 20
`
	s := settings(t, conf)
	if _, err := New(s, NewDigests(0, 0), nil, nil); err == nil {
		t.Fatal("CMD_CYCLE without a runner accepted")
	}
	cmds := &fakeCmds{}
	h := newHandler(t, s, cmds)
	v := h.Handle(t0, cli, gwIP, packet(t, keyA, "0.0.0.0,tcp/2222", t0))
	if v.Reason != "" || v.Grants != nil || v.After == nil {
		t.Fatalf("%+v", v)
	}
	v.After(errors.New("batch failed"))
	if len(cmds.cycles) != 0 {
		t.Fatal("command run after a failed commit")
	}
	v.After(nil)
	cc := cmds.cycles[0]
	open := []string{"/usr/sbin/nft", "add", "element", "inet", "t", "allowed", "{", "10.99.0.2", ".", "2222", "timeout", "20s", "}"}
	if !eqArgv(cc.Open, open) || cc.CloseAfter != 20*time.Second || cc.Close[7] != "10.99.0.2" || cmds.addrs[0] != cli {
		t.Fatalf("cycle %+v", cc)
	}
}

func TestCommandMessages(t *testing.T) {
	conf := `SOURCE ANY
KEY rijndael key A
HMAC_KEY hmac key A, at least not short
ENABLE_CMD_EXEC Y
CMD_EXEC_USER nobody
`
	cmdPkt := func() []byte {
		return packet(t, keyA, "10.99.0.2,/usr/bin/logger -t sesame hello", t0, func(m *fwknop.Message) { m.Type = fwknop.CommandMsg })
	}
	s := settings(t, conf)
	// Not allowed by the daemon: refused even with ENABLE_CMD_EXEC.
	if v := newHandler(t, s, nil).Handle(t0, cli, gwIP, cmdPkt()); v.Reason != ReasonCommand {
		t.Fatalf("%+v", v)
	}
	s.AllowCommands = true
	if _, err := New(s, NewDigests(0, 0), nil, nil); err == nil {
		t.Fatal("commands allowed without a runner")
	}
	cmds := &fakeCmds{}
	v := newHandler(t, s, cmds).Handle(t0, cli, gwIP, cmdPkt())
	if v.Reason != "" || v.After == nil || v.Grants != nil {
		t.Fatalf("%+v", v)
	}
	v.After(nil)
	if len(cmds.execs) != 1 || !eqArgv(cmds.execs[0].Argv, []string{"/usr/bin/logger", "-t", "sesame", "hello"}) || cmds.execs[0].User != "nobody" {
		t.Fatalf("%+v", cmds.execs)
	}
}

// Two workers handling copies of one packet at once: one grant, with
// digests in memory or in digest.cache (whose fsync is a group commit
// after the check-and-insert).
func TestConcurrentCopies(t *testing.T) {
	t.Run("memory", func(t *testing.T) { testConcurrentCopies(t, newHandler(t, settings(t, baseConf), nil)) })
	t.Run("digest.cache", func(t *testing.T) {
		s := settings(t, baseConf)
		d, _, err := OpenDigests(t.TempDir()+"/digest.cache", Window(s.MaxPacketAge), 0, t0, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		h, err := New(s, d, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		testConcurrentCopies(t, h)
	})
}

func testConcurrentCopies(t *testing.T, h *Handler) {
	p := packet(t, keyA, "10.99.0.2,tcp/2222", t0)
	var granted, replays atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			switch v := h.Handle(t0, cli, gwIP, p); v.Reason {
			case "":
				granted.Add(1)
			case ReasonReplay:
				replays.Add(1)
			default:
				t.Errorf("%+v", v)
			}
		})
	}
	wg.Wait()
	if granted.Load() != 1 || replays.Load() != 15 {
		t.Fatalf("granted %d, replays %d", granted.Load(), replays.Load())
	}
}

// A restart keeps replays out: the digest is in digest.cache.
func TestReplayAcrossRestart(t *testing.T) {
	path := t.TempDir() + "/digest.cache"
	s := settings(t, baseConf)
	p := packet(t, keyA, "10.99.0.2,tcp/2222", t0)
	for i, want := range []string{"", ReasonReplay} {
		d, _, err := OpenDigests(path, Window(s.MaxPacketAge), 0, t0, nil)
		if err != nil {
			t.Fatal(err)
		}
		h, err := New(s, d, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if v := h.Handle(t0.Add(time.Duration(i)*time.Second), cli, gwIP, p); v.Reason != want {
			t.Fatalf("run %d: %+v", i, v)
		}
		d.Close()
	}
}

// A daemon killed right after a grant (no Close: its last fsync may not
// have run) does not forget the digest: it was written before the grant
// (digestcache's TestFileAppendSurvivesCrash holds back the fsync).
func TestReplayAfterCrash(t *testing.T) {
	path := t.TempDir() + "/digest.cache"
	s := settings(t, baseConf)
	p := packet(t, keyA, "10.99.0.2,tcp/2222", t0)
	for i, want := range []string{"", ReasonReplay} {
		d, _, err := OpenDigests(path, Window(s.MaxPacketAge), 0, t0, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() }) // after both runs: the "crash" leaves it open
		h, err := New(s, d, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if v := h.Handle(t0.Add(time.Duration(i)*time.Second), cli, gwIP, p); v.Reason != want {
			t.Fatalf("run %d: %+v", i, v)
		}
	}
}

func TestPersistFailureFailsClosed(t *testing.T) {
	d, _, err := OpenDigests(t.TempDir()+"/digest.cache", time.Minute, 0, t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.file.Close() // the next append fails
	h, _ := New(settings(t, baseConf), d, nil, nil)
	if v := h.Handle(t0, cli, gwIP, packet(t, keyA, "10.99.0.2,tcp/2222", t0)); v.Reason != ReasonPersist {
		t.Fatalf("%+v", v)
	}
}

func TestReplayCacheFull(t *testing.T) {
	s := settings(t, baseConf)
	h, _ := New(s, NewDigests(time.Minute, 1), nil, nil)
	if v := h.Handle(t0, cli, gwIP, packet(t, keyA, "10.99.0.2,tcp/2222", t0)); v.Reason != "" {
		t.Fatalf("%+v", v)
	}
	if v := h.Handle(t0, cli, gwIP, packet(t, keyA, "10.99.0.2,tcp/2222", t0)); v.Reason != ReasonReplayFull {
		t.Fatalf("%+v", v)
	}
	// Once the first digest is out of its window, there is room again.
	if v := h.Handle(t0.Add(61*time.Second), cli, gwIP, packet(t, keyA, "10.99.0.2,tcp/2222", t0.Add(61*time.Second))); v.Reason != "" {
		t.Fatalf("%+v", v)
	}
}

func TestMatchAndUpdate(t *testing.T) {
	h := newHandler(t, settings(t, baseConf), nil)
	for _, p := range [][]byte{{0xD3, 1, 2, 3}, make([]byte, 200), []byte("U2FsdGVkX1" + strings.Repeat("A", 190))} {
		if h.Match(p) {
			t.Errorf("Match(%q)", p[:4])
		}
	}
	if h.Name() != "fwknop" {
		t.Fatal(h.Name())
	}
	if r := h.Precheck([]byte("+" + strings.Repeat("A", 100))); r != ReasonFormat {
		t.Fatalf("short packet precheck %q", r)
	}
	if r := h.Precheck([]byte("+" + strings.Repeat("A", 500))); r != "" {
		t.Fatalf("GPG-size precheck %q", r)
	}
	if r := h.Precheck(packet(t, keyA, "10.99.0.2,tcp/2222", t0)); r != "" {
		t.Fatalf("valid packet precheck %q", r)
	}
	p := packet(t, keyA, "10.99.0.2,tcp/2222", t0)
	s := settings(t, baseConf)
	s.Protected = map[service.Service]bool{dns: true}
	if err := h.Update(s); err != nil {
		t.Fatal(err)
	}
	if v := h.Handle(t0, cli, gwIP, p); v.Reason != ReasonPorts {
		t.Fatalf("after update: %+v", v)
	}
}

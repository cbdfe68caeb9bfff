package fwknopgw

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/fwknop"
	"github.com/sesame-gw/sesame/internal/fwknop/accessconf"
	"github.com/sesame-gw/sesame/internal/service"
)

var (
	t0    = time.Unix(1795311684, 0)
	cli   = netip.MustParseAddr("10.99.0.2")
	cli2  = netip.MustParseAddr("10.99.0.3")
	gwIP  = netip.MustParseAddr("10.99.0.1")
	ssh   = service.Service{Proto: service.TCP, Port: 2222}
	dns   = service.Service{Proto: service.UDP, Port: 5353}
	other = service.Service{Proto: service.TCP, Port: 80}

	keyA  = fwknop.Keys{Key: []byte("rijndael key A"), HMACKey: []byte("hmac key A, at least not short"), HMACHash: fwknop.SHA256}
	keyB  = fwknop.Keys{Key: []byte("rijndael key B"), HMACKey: []byte("hmac key B, another one"), HMACHash: fwknop.SHA512}
	plain = fwknop.Keys{Key: []byte("no hmac here")}
)

// baseConf is an access.conf with three stanzas: alice's keys for
// 10.99.0.2 only (ssh and dns), bob's keys (HMAC-SHA512) for
// 192.0.2.0/24 (ssh), and a stanza without HMAC for 10.99.0.0/24.
const baseConf = `SOURCE 10.99.0.2
KEY rijndael key A
HMAC_KEY hmac key A, at least not short
OPEN_PORTS tcp/2222, udp/5353
FW_ACCESS_TIMEOUT 30
MAX_FW_TIMEOUT 60

SOURCE 192.0.2.0/24
KEY rijndael key B
HMAC_KEY hmac key B, another one
HMAC_DIGEST_TYPE sha512
OPEN_PORTS tcp/2222

SOURCE 10.99.0.0/24
KEY no hmac here
OPEN_PORTS tcp/2222
`

func stanzas(tb testing.TB, conf string) []*accessconf.Stanza {
	tb.Helper()
	c, err := accessconf.Parse("access.conf", []byte(conf), accessconf.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return c.Stanzas
}

func settings(tb testing.TB, conf string) Settings {
	return Settings{Stanzas: stanzas(tb, conf), MaxPacketAge: 120 * time.Second, Port: 62201,
		Protected: map[service.Service]bool{ssh: true, dns: true}}
}

// counter is a deterministic io.Reader: distinct packets, reproducible.
type counter struct{ n uint64 }

func (c *counter) Read(p []byte) (int, error) {
	for i := range p {
		if i%8 == 0 {
			c.n++
		}
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], c.n)
		s := sha256.Sum256(b[:])
		p[i] = s[i%8]
	}
	return len(p), nil
}

var seq = &counter{}
var seqMu sync.Mutex

// packet encodes an access request; msg edits the message first.
func packet(tb testing.TB, k fwknop.Keys, access string, ts time.Time, msg ...func(*fwknop.Message)) []byte {
	tb.Helper()
	m := fwknop.Message{Type: fwknop.AccessMsg, User: "alice", Timestamp: ts.Unix(), Access: access}
	for _, f := range msg {
		f(&m)
	}
	seqMu.Lock()
	defer seqMu.Unlock()
	w, err := fwknop.Encode(m, k, fwknop.EncodeOptions{Rand: seq, Command: m.Type == fwknop.CommandMsg})
	if err != nil {
		tb.Fatal(err)
	}
	return []byte(w)
}

func newHandler(tb testing.TB, s Settings, cmds Commands) *Handler {
	tb.Helper()
	h, err := New(s, NewDigests(Window(s.MaxPacketAge), 0), cmds, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// fakeCmds records what the Handler asks to run.
type fakeCmds struct {
	mu     sync.Mutex
	cycles []*accessconf.CmdCycle
	execs  []Cmd
	addrs  []netip.Addr
}

func (f *fakeCmds) Cycle(src netip.Addr, who string, cc *accessconf.CmdCycle) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cycles = append(f.cycles, cc)
	f.addrs = append(f.addrs, src)
	return true
}

func (f *fakeCmds) Exec(src netip.Addr, who string, c Cmd) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.execs = append(f.execs, c)
	f.addrs = append(f.addrs, src)
	return true
}

// fakeExec records commands and fails those whose argv[0] is "false".
type fakeExec struct {
	mu   sync.Mutex
	ran  [][]string
	at   []time.Time
	done chan struct{} // when non-nil, receives one value per command run
}

func (f *fakeExec) exec(ctx context.Context, c Cmd) ([]byte, error) {
	f.mu.Lock()
	f.ran = append(f.ran, c.Argv)
	f.at = append(f.at, time.Now())
	f.mu.Unlock()
	if f.done != nil {
		f.done <- struct{}{}
	}
	if c.Argv[0] == "false" {
		return []byte("it failed"), errFake
	}
	return nil, nil
}

func (f *fakeExec) runs() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]string(nil), f.ran...)
}

type fakeError string

func (e fakeError) Error() string { return string(e) }

const errFake = fakeError("exit status 1")

func eqArgv(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

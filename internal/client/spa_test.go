package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sesame-gw/sesame/internal/policy"
	"github.com/sesame-gw/sesame/internal/service"
	"github.com/sesame-gw/sesame/internal/spa"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func testKeys(t *testing.T) (*ecdh.PrivateKey, ed25519.PrivateKey) {
	t.Helper()
	gw, err := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return gw, ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
}

type sent struct {
	mu   sync.Mutex
	dst  []netip.AddrPort
	pkts [][]byte
}

func (s *sent) send(dst netip.AddrPort, b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dst = append(s.dst, dst)
	s.pkts = append(s.pkts, bytes.Clone(b))
	return nil
}

func (s *sent) n() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.pkts) }

var req22 = policy.Request{Services: []service.Range{{Proto: service.TCP, First: 22, Last: 22}}, Duration: 30 * time.Second}

// The packet Open sends is what the gateway's Opener accepts, with the
// injected clock's timestamp.
func TestOpenSendsSealedPacket(t *testing.T) {
	gw, id := testKeys(t)
	var out sent
	dst := netip.MustParseAddrPort("192.0.2.1:62201")
	s := &SPA{Identity: spa.KeyIdentity(id), Gateway: gw.PublicKey(), Dst: dst, Now: func() time.Time { return t0 }, Send: out.send}
	r := req22
	r.Addr = netip.MustParseAddr("2001:db8::5")
	if err := s.Open(r); err != nil {
		t.Fatal(err)
	}
	if out.n() != 1 || out.dst[0] != dst {
		t.Fatalf("sent %v", out.dst)
	}
	o, err := spa.NewOpener(gw, spa.KeyResolver(func(k ed25519.PublicKey) (string, bool) { return "me", k.Equal(id.Public()) }), 0)
	if err != nil {
		t.Fatal(err)
	}
	op, err := o.Open(out.pkts[0], t0)
	if err != nil {
		t.Fatal(err)
	}
	if op.Client != "me" || !op.Timestamp.Equal(t0) || op.Request.Addr != r.Addr || op.Request.Duration != 30*time.Second {
		t.Fatalf("opened %+v", op)
	}
	// Every packet is new.
	s.Open(r)
	if bytes.Equal(out.pkts[0], out.pkts[1]) {
		t.Fatal("two sends produced the same packet")
	}
	// Errors name the gateway.
	s.Send = func(netip.AddrPort, []byte) error { return errors.New("no route") }
	if err := s.Open(r); err == nil || !strings.Contains(err.Error(), "192.0.2.1:62201") {
		t.Fatalf("err = %v", err)
	}
	s.Gateway = nil
	if err := s.Open(r); err == nil {
		t.Fatal("sealed without a gateway key")
	}
}

// OpenAndWait resends after each Resend period without an answer, stops
// at the first answer, and gives up after Timeout. Fake time (synctest).
func TestOpenAndWaitResends(t *testing.T) {
	gw, id := testKeys(t)
	svc := netip.MustParseAddrPort("192.0.2.1:22")
	for _, tc := range []struct {
		name      string
		answerOn  int // the packet after which the service answers; 0 never
		wantSent  int
		wantError error
	}{
		{"first packet", 1, 1, nil},
		{"third packet", 3, 3, nil},
		{"never", 0, 5, ErrNoAnswer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var out sent
				s := &SPA{Identity: spa.KeyIdentity(id), Gateway: gw.PublicKey(), Dst: netip.MustParseAddrPort("192.0.2.1:62201"), Send: out.send}
				wait := func(ctx context.Context, dst netip.AddrPort, interval, timeout time.Duration) error {
					if dst != svc || interval != time.Millisecond {
						t.Errorf("wait(%v, %v)", dst, interval)
					}
					if out.n() == tc.answerOn {
						return nil
					}
					<-ctx.Done() // the packet was lost: nothing answers
					return ctx.Err()
				}
				start := time.Now()
				n, err := s.OpenAndWait(t.Context(), req22, svc, WaitOptions{Interval: time.Millisecond, Resend: time.Second, Timeout: 5 * time.Second, Wait: wait})
				if n != tc.wantSent || !errors.Is(err, tc.wantError) {
					t.Fatalf("sent %d, err %v; want %d, %v", n, err, tc.wantSent, tc.wantError)
				}
				if tc.wantError != nil && time.Since(start) != 5*time.Second {
					t.Fatalf("gave up after %v", time.Since(start))
				}
			})
		})
	}
}

func TestOpenAndWaitErrors(t *testing.T) {
	gw, id := testKeys(t)
	svc := netip.MustParseAddrPort("192.0.2.1:22")
	s := &SPA{Identity: spa.KeyIdentity(id), Gateway: gw.PublicKey(), Dst: netip.MustParseAddrPort("192.0.2.1:62201"), Send: (&sent{}).send}
	// A wait that fails at once (not a timeout) is not retried in a loop.
	boom := errors.New("socket: too many open files")
	n, err := s.OpenAndWait(t.Context(), req22, svc, WaitOptions{Wait: func(context.Context, netip.AddrPort, time.Duration, time.Duration) error { return boom }})
	if n != 1 || !errors.Is(err, boom) {
		t.Fatalf("sent %d, err %v", n, err)
	}
	// Cancellation is reported as such.
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		go func() { time.Sleep(1500 * time.Millisecond); cancel() }()
		_, err := s.OpenAndWait(ctx, req22, svc, WaitOptions{Wait: func(ctx context.Context, _ netip.AddrPort, _, _ time.Duration) error {
			<-ctx.Done()
			return ctx.Err()
		}})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
	})
	// A failing send stops at once.
	s.Send = func(netip.AddrPort, []byte) error { return errors.New("unreachable") }
	if n, err := s.OpenAndWait(t.Context(), req22, svc, WaitOptions{}); n != 0 || err == nil {
		t.Fatalf("sent %d, err %v", n, err)
	}
}

// Splice carries a session both ways over a real loopback TCP connection,
// half-closes on end of input, and returns when the remote closes.
func TestSplice(t *testing.T) {
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// The remote echoes lines until EOF, then says goodbye and closes.
	go func() {
		c, err := l.AcceptTCP()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				break
			}
			c.Write([]byte("echo " + line))
		}
		c.Write([]byte("bye\n"))
	}()
	conn, err := DialTCP(t.Context(), l.Addr().(*net.TCPAddr).AddrPort(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Splice(conn, strings.NewReader("one\ntwo\n"), &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != "echo one\necho two\nbye\n" {
		t.Fatalf("got %q", out.String())
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("stdin broke") }

// A failing input ends the session with its error.
func TestSpliceInputError(t *testing.T) {
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.AcceptTCP()
		if err == nil {
			io.Copy(io.Discard, c) // never closes first
			c.Close()
		}
	}()
	conn, err := DialTCP(t.Context(), l.Addr().(*net.TCPAddr).AddrPort(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := Splice(conn, failingReader{}, io.Discard); err == nil || !strings.Contains(err.Error(), "stdin broke") {
		t.Fatalf("err = %v", err)
	}
}

func TestDialUntil(t *testing.T) {
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().(*net.TCPAddr).AddrPort()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hi"))
			c.Close()
		}
	}()
	c, err := DialUntil(t.Context(), addr, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	c.Close()
	if string(b) != "hi" {
		t.Fatalf("read %q", b)
	}
	// Nothing listens any more: attempts fail until the context ends.
	l.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if c, err := DialUntil(ctx, addr, 5*time.Millisecond); c != nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("DialUntil = %v, %v", c, err)
	}
}

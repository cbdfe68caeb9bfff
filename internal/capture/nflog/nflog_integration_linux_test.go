package nflog_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sesame-gw/sesame/internal/capture"
	"github.com/sesame-gw/sesame/internal/capture/nflog"
	"github.com/sesame-gw/sesame/internal/netns"
	"github.com/sesame-gw/sesame/internal/netns/netnstest"
	"github.com/sesame-gw/sesame/internal/packet"
	"github.com/sesame-gw/sesame/internal/service"
)

// The integration test runs the receiving side as a helper process: this
// test binary re-executed inside the gateway namespace with `ip netns exec`
// (as the daemon runs), selected by helperEnv. It prints one line per event,
// prefixed by linePrefix, which the parent reads from the captured output.
const (
	helperEnv  = "SESAME_NFLOG_HELPER_GROUP"
	linePrefix = "NFLOGTEST "
	group      = 77
	udpPort    = 7777
	tcpPort    = 7000

	latencyPackets = 200
	burstPackets   = 20000
)

// ruleset is the tiny table of the brief: log to group 77 and drop.
const ruleset = `table inet captest {
	chain input {
		type filter hook input priority -10;
		udp dport 7777 log group 77 queue-threshold 1 drop
		tcp dport 7000 log group 77 queue-threshold 1 drop
	}
}
`

// event is one helper output line.
type event struct {
	Kind    string        `json:"kind"` // ready, pkt, lat, burst, closed
	Busy    string        `json:"busy,omitempty"`
	BusyOK  bool          `json:"busy_ok,omitempty"`
	Src     netip.Addr    `json:"src,omitzero"`
	Dst     netip.Addr    `json:"dst,omitzero"`
	Proto   string        `json:"proto,omitempty"`
	SPort   uint16        `json:"sport,omitempty"`
	DPort   uint16        `json:"dport,omitempty"`
	Flags   uint8         `json:"flags,omitempty"`
	Payload []byte        `json:"payload,omitempty"`
	Iface   string        `json:"iface,omitempty"`
	Time    time.Time     `json:"time,omitzero"`
	LatNs   int64         `json:"lat_ns,omitempty"`
	Count   int           `json:"count,omitempty"`
	SpanNs  int64         `json:"span_ns,omitempty"`
	Stats   capture.Stats `json:"stats,omitzero"`
	Dropped uint64        `json:"dropped,omitempty"` // burst: Stats.Dropped growth
	Err     string        `json:"err,omitempty"`
}

func monoNow() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err)
	}
	return ts.Nano()
}

// TestNFLOGHelperProcess is the receiving side; it does nothing unless
// started by TestNFLOGNamespaces.
func TestNFLOGHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		t.Skip("helper process of TestNFLOGNamespaces")
	}
	out := bufio.NewWriter(os.Stdout)
	emit := func(e event) {
		b, _ := json.Marshal(e)
		out.WriteString(linePrefix)
		out.Write(b)
		out.WriteByte('\n')
		out.Flush()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	baseline := runtime.NumGoroutine()
	src, err := nflog.Open(ctx, nflog.Config{Group: group})
	if err != nil {
		emit(event{Kind: "ready", Err: err.Error()})
		t.Fatal(err)
	}
	second, err := nflog.Open(ctx, nflog.Config{Group: group})
	if err == nil {
		second.Close()
	}
	emit(event{Kind: "ready", Busy: fmt.Sprint(err), BusyOK: errors.Is(err, nflog.ErrGroupBusy)})

	var burst int
	var first, last int64
	var before capture.Stats // at the last latency packet, before the burst
	for {
		p, err := src.ReadPacket(ctx)
		now := monoNow()
		if err != nil {
			cerr := src.Close()
			// go-nflog's goroutines end once the socket is closed; give
			// them a bounded moment to notice.
			leaked := runtime.NumGoroutine() - baseline
			for i := 0; i < 200 && leaked > 0; i++ {
				time.Sleep(10 * time.Millisecond)
				leaked = runtime.NumGoroutine() - baseline
			}
			emit(event{Kind: "closed", Stats: src.Stats(), Count: leaked, Err: fmt.Sprint(err, " / close: ", cerr)})
			return
		}
		switch {
		case len(p.Payload) > 0 && p.Payload[0] == 'B':
			if burst == 0 {
				first = now
			}
			burst++
			last = now
		case len(p.Payload) > 0 && p.Payload[0] == 'E':
			st := src.Stats()
			emit(event{Kind: "burst", Count: burst, SpanNs: last - first, Stats: st,
				Dropped: st.Dropped - before.Dropped})
		case len(p.Payload) == 13 && p.Payload[0] == 'L':
			seq := int(binary.BigEndian.Uint32(p.Payload[9:13]))
			emit(event{Kind: "lat", LatNs: now - int64(binary.BigEndian.Uint64(p.Payload[1:9])), Count: seq})
			if seq == latencyPackets-1 {
				before = src.Stats()
			}
		default:
			emit(event{Kind: "pkt", Src: p.Src, Dst: p.Dst, Proto: p.Proto.String(),
				SPort: p.SrcPort, DPort: p.DstPort, Flags: uint8(p.Flags),
				Payload: p.Payload, Iface: p.Iface, Time: p.Time})
		}
	}
}

// events parses the helper's lines so far.
func events(t *testing.T, p *netns.Proc) []event {
	t.Helper()
	var evs []event
	for line := range strings.Lines(string(p.Output())) {
		rest, ok := strings.CutPrefix(line, linePrefix)
		if !ok {
			continue
		}
		var e event
		if err := json.Unmarshal([]byte(rest), &e); err != nil {
			t.Fatalf("helper line %q: %v", line, err)
		}
		evs = append(evs, e)
	}
	return evs
}

// waitEvents polls the helper's output until pred holds for the events so
// far, the helper exits, or ctx ends (a failure, not a measurement).
func waitEvents(ctx context.Context, t *testing.T, p *netns.Proc, what string, pred func([]event) bool) []event {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		evs := events(t, p)
		if pred(evs) {
			return evs
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-p.Done():
			t.Fatalf("waiting for %s: helper exited: %v", what, p.Err())
		case <-tick.C:
		}
	}
}

func count(evs []event, kind string) int {
	n := 0
	for _, e := range evs {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

// TestNFLOGNamespaces installs a log-and-drop table in a fresh gateway
// namespace, opens a Source there (in a helper process) and sends UDP and
// TCP SYNs over IPv4 and IPv6 from the client namespace. It also measures
// packet → ReadPacket latency and burst throughput, which it only logs.
func TestNFLOGNamespaces(t *testing.T) {
	if os.Getenv(helperEnv) != "" {
		t.Skip("running as the helper")
	}
	b := netnstest.New(t, netns.Options{Name: "capnf"})
	netnstest.RequireBinary(t, "nft")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	nft := b.Command(ctx, b.GW, "nft", "-f", "-")
	nft.Stdin = strings.NewReader(ruleset)
	if out, err := nft.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v\n%s", err, out)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(helperEnv, fmt.Sprint(group))
	helper, err := b.Start(b.GW, exe, "-test.run=^TestNFLOGHelperProcess$", "-test.timeout=90s")
	if err != nil {
		t.Fatal(err)
	}
	ready := waitEvents(ctx, t, helper, "ready", func(evs []event) bool { return count(evs, "ready") > 0 })[0]
	if ready.Err != "" {
		t.Fatalf("Open in the gateway namespace: %s", ready.Err)
	}
	if !ready.BusyOK {
		t.Errorf("second Open of group %d: %q, want ErrGroupBusy", group, ready.Busy)
	}
	t.Logf("second Open of the same group: %s", ready.Busy)

	t.Run("headers", func(t *testing.T) {
		type want struct {
			src, dst netip.Addr
			proto    service.Proto
			payload  string
		}
		var wants []want
		for _, fam := range []struct{ cl, gw netip.Addr }{{b.Client4, b.GW4}, {b.Client6, b.GW6}} {
			payload := "knock over " + fam.gw.String()
			if err := b.SendUDP(b.Client, fam.cl, netip.AddrPortFrom(fam.gw, udpPort), []byte(payload)); err != nil {
				t.Fatal(err)
			}
			wants = append(wants, want{fam.cl, fam.gw, service.UDP, payload})
			// Nothing answers: a RST would fail the dial at once.
			dctx, dcancel := context.WithTimeout(ctx, 700*time.Millisecond)
			c, err := b.DialTCP(dctx, b.Client, fam.cl, netip.AddrPortFrom(fam.gw, tcpPort))
			dcancel()
			if err == nil {
				c.Close()
				t.Errorf("TCP connect to %v:%d succeeded", fam.gw, tcpPort)
			} else if errors.Is(err, syscall.ECONNREFUSED) || !isTimeout(err) {
				t.Errorf("TCP connect to %v:%d: %v, want a timeout (the SYN is dropped, not refused)", fam.gw, tcpPort, err)
			}
			wants = append(wants, want{fam.cl, fam.gw, service.TCP, ""})
		}
		evs := waitEvents(ctx, t, helper, "4 packets", func(evs []event) bool { return count(evs, "pkt") >= 4 })
		for _, w := range wants {
			i := slices.IndexFunc(evs, func(e event) bool {
				return e.Kind == "pkt" && e.Src == w.src && e.Dst == w.dst && e.Proto == w.proto.String()
			})
			if i < 0 {
				t.Errorf("no %v packet %v → %v in %+v", w.proto, w.src, w.dst, evs)
				continue
			}
			e := evs[i]
			if w.src.Is4() && (e.Src.BitLen() != 32 || e.Dst.BitLen() != 32) {
				t.Errorf("IPv4 packet with addresses %v, %v: want 4-byte addresses", e.Src, e.Dst)
			}
			if e.Iface != netns.GWIf || e.SPort == 0 || e.Time.IsZero() {
				t.Errorf("packet %+v: want iface %s, a source port and a time", e, netns.GWIf)
			}
			switch w.proto {
			case service.UDP:
				if e.DPort != udpPort || string(e.Payload) != w.payload || e.Flags != 0 {
					t.Errorf("UDP packet %+v: want dport %d payload %q", e, udpPort, w.payload)
				}
			case service.TCP:
				f := packet.TCPFlags(e.Flags)
				if e.DPort != tcpPort || f&(packet.SYN|packet.ACK|packet.RST|packet.FIN) != packet.SYN || len(e.Payload) != 0 {
					t.Errorf("TCP packet %+v (flags %v): want a bare SYN to %d", e, f, tcpPort)
				}
			}
		}
	})

	conn4, err := b.DialUDP(b.Client, b.Client4, netip.AddrPortFrom(b.GW4, udpPort))
	if err != nil {
		t.Fatal(err)
	}
	defer conn4.Close()

	t.Run("latency", func(t *testing.T) {
		msg := make([]byte, 13)
		msg[0] = 'L'
		for i := range latencyPackets {
			binary.BigEndian.PutUint32(msg[9:13], uint32(i))
			binary.BigEndian.PutUint64(msg[1:9], uint64(monoNow()))
			if _, err := conn4.Write(msg); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Millisecond) // pacing, not a measurement
		}
		evs := waitEvents(ctx, t, helper, "latency packets", func(evs []event) bool { return count(evs, "lat") >= latencyPackets })
		var lat []time.Duration
		for _, e := range evs {
			if e.Kind == "lat" {
				lat = append(lat, time.Duration(e.LatNs))
			}
		}
		slices.Sort(lat)
		if len(lat) != latencyPackets {
			t.Errorf("%d latency packets received, want %d (paced sends must not be lost)", len(lat), latencyPackets)
		}
		q := func(f float64) time.Duration { return lat[int(f*float64(len(lat)-1))] }
		t.Logf("send → ReadPacket latency over %d packets: p50 %v, p90 %v, p99 %v, max %v",
			len(lat), q(0.5), q(0.9), q(0.99), lat[len(lat)-1])
	})

	t.Run("burst", func(t *testing.T) {
		before := events(t, helper)
		softnetBefore := softnetDrops(t)
		msg := make([]byte, 64)
		msg[0] = 'B'
		start := monoNow()
		for i := range burstPackets {
			binary.BigEndian.PutUint32(msg[1:5], uint32(i))
			if _, err := conn4.Write(msg); err != nil {
				t.Fatal(err)
			}
		}
		sendNs := monoNow() - start
		// End marker, repeated (it can be lost in an overflow) until the
		// helper reports; at most 40 of them.
		var rep event
		markers := 0
		for ; markers < 40 && rep.Kind == ""; markers++ {
			if _, err := conn4.Write([]byte("E")); err != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
			for _, e := range events(t, helper)[len(before):] {
				if e.Kind == "burst" {
					rep = e
					break
				}
			}
		}
		if rep.Kind == "" {
			t.Fatal("the helper never reported the burst")
		}
		if rep.Count == 0 {
			t.Fatal("no burst packet received")
		}
		t.Logf("burst: sent %d × 64 B in %v (%.0f pps offered); received %d (%.1f%%) over %v = %.0f pps; "+
			"dropped and counted %d; source stats %+v",
			burstPackets, time.Duration(sendNs), float64(burstPackets)/time.Duration(sendNs).Seconds(),
			rep.Count, 100*float64(rep.Count)/burstPackets, time.Duration(rep.SpanNs),
			float64(rep.Count)/max(time.Duration(rep.SpanNs).Seconds(), 1e-9), rep.Dropped, rep.Stats)
		// No silent loss: every burst packet was read or counted as dropped,
		// except what the kernel dropped before netfilter (the backlog,
		// counted host-wide in softnet_stat; other tests only widen this).
		accounted := uint64(rep.Count) + rep.Dropped
		early := softnetDrops(t) - softnetBefore
		if accounted+early < burstPackets || accounted > burstPackets+uint64(markers) {
			t.Errorf("read %d + dropped %d = %d (backlog drops %d), want %d (plus up to %d markers)",
				rep.Count, rep.Dropped, accounted, early, burstPackets, markers)
		}
	})

	if err := b.Stop(helper); err != nil {
		t.Errorf("stop helper: %v", err)
	}
	evs := events(t, helper)
	i := slices.IndexFunc(evs, func(e event) bool { return e.Kind == "closed" })
	if i < 0 {
		t.Fatalf("helper did not close its source on SIGTERM; output:\n%s", helper.Output())
	}
	if !strings.Contains(evs[i].Err, context.Canceled.Error()) || !strings.HasSuffix(evs[i].Err, "close: <nil>") {
		t.Errorf("helper shutdown: %s", evs[i].Err)
	}
	if evs[i].Count > 0 {
		t.Errorf("%d goroutines left running after Close", evs[i].Count)
	}
	if helper.Err() != nil {
		t.Errorf("helper exit: %v\n%s", helper.Err(), helper.Output())
	}
}

// softnetDrops sums the "dropped" column of /proc/net/softnet_stat: packets
// the kernel dropped because a CPU's input backlog was full.
func softnetDrops(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/net/softnet_stat")
	if err != nil {
		t.Fatal(err)
	}
	var sum uint64
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, err := strconv.ParseUint(f[1], 16, 32)
		if err != nil {
			t.Fatalf("softnet_stat %q: %v", line, err)
		}
		sum += n
	}
	return sum
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

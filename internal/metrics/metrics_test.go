package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/capture"
	"github.com/sesame-gw/sesame/internal/gateway"
)

func fixture() (*Metrics, *gateway.Stats, *error) {
	var st gateway.Stats
	st.Packets.Store(100)
	st.Knocks.Store(30)
	st.Grants.Store(4)
	st.Dropped.Store(2)
	st.Rejected.Store(7)
	listErr := new(error)
	m := New(Sources{
		Stats:   func() *gateway.Stats { return &st },
		Capture: func() capture.Stats { return capture.Stats{Received: 120, Malformed: 1, Dropped: 5} },
		LiveGrants: func(context.Context) (int, error) {
			return 3, *listErr
		},
		Audit:            func() (uint64, uint64) { return 6, 1 },
		DigestSyncErrors: func() uint64 { return 2 },
	}, "v1.2.3")
	return m, &st, listErr
}

func TestCollects(t *testing.T) {
	m, st, _ := fixture()
	src := netip.MustParseAddr("192.0.2.7")
	m.Observe(gateway.Decision{Kind: "grant", Src: src, Door: "ssh", Latency: 3 * time.Millisecond})
	m.Observe(gateway.Decision{Kind: "grant", Src: src, Proto: "spa", Latency: 400 * time.Microsecond})
	m.Observe(gateway.Decision{Kind: "reject", Src: src, Reason: "replay"})
	m.Observe(gateway.Decision{Kind: "reject", Src: src, Reason: "replay"})
	m.Observe(gateway.Decision{Kind: "reset", Src: src, Reason: "wrong-port"})
	m.Observe(gateway.Decision{Kind: "grant-failed", Src: src, Reason: "nftables: netlink: no such file", Latency: time.Millisecond})
	m.Observe(gateway.Decision{Kind: "revoke", Src: src, Reason: "revoked by admin"})
	st.Packets.Add(1)
	got, err := m.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]float64{
		"sesame_decisions_total,kind=grant,reason=":                            2,
		"sesame_decisions_total,kind=reject,reason=replay":                     2,
		"sesame_decisions_total,kind=reset,reason=wrong-port":                  1,
		"sesame_decisions_total,kind=grant-failed,reason=firewall-error":       1,
		"sesame_decisions_total,kind=revoke,reason=admin":                      1,
		"sesame_decision_latency_seconds,kind=grant,count":                     2,
		"sesame_decision_latency_seconds,kind=grant-failed,count":              1,
		"sesame_packets_total":                                                 101,
		"sesame_knocks_total":                                                  30,
		"sesame_grants_total":                                                  4,
		"sesame_capture_queue_dropped_total":                                   2,
		"sesame_spa_rejected_total":                                            7,
		"sesame_capture_received_total":                                        120,
		"sesame_capture_dropped_total":                                         5,
		"sesame_grants_live":                                                   3,
		"sesame_audit_dropped_total":                                           6,
		"sesame_audit_write_errors_total":                                      1,
		"sesame_fwknop_digest_sync_errors_total":                               2,
		"sesame_config_reloads_total,result=failure":                           0,
		"sesame_config_last_reload_successful":                                 1,
		"sesame_build_info,goversion=" + runtime.Version() + ",version=v1.2.3": 1,
	} {
		if v, ok := got[k]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", k, v, ok, want)
		}
	}
}

func TestReloadOutcome(t *testing.T) {
	m, _, _ := fixture()
	m.ObserveReload(errors.New("bad"))
	got, _ := m.Gather()
	if got["sesame_config_reloads_total,result=failure"] != 1 || got["sesame_config_last_reload_successful"] != 0 {
		t.Fatalf("after a failure: %v", got)
	}
	m.ObserveReload(nil)
	got, _ = m.Gather()
	if got["sesame_config_reloads_total,result=success"] != 1 || got["sesame_config_last_reload_successful"] != 1 ||
		got["sesame_config_last_reload_success_timestamp_seconds"] < 1e9 {
		t.Fatalf("after a success: %v", got)
	}
}

func TestReasonCardinalityBounded(t *testing.T) {
	m, _, _ := fixture()
	for i := range MaxReasons + 10 {
		m.Observe(gateway.Decision{Kind: "reject", Reason: fmt.Sprint("r", i)})
	}
	m.Observe(gateway.Decision{Kind: "reject", Reason: "r0"}) // a known one still counts as itself
	m.Observe(gateway.Decision{Kind: "reset", Reason: strings.Repeat("x", 65)})
	got, _ := m.Gather()
	n := 0
	for k := range got {
		if strings.HasPrefix(k, "sesame_decisions_total,kind=reject,") {
			n++
		}
	}
	if n != MaxReasons+1 || got["sesame_decisions_total,kind=reject,reason=other"] != 10 ||
		got["sesame_decisions_total,kind=reject,reason=r0"] != 2 || got["sesame_decisions_total,kind=reset,reason=other"] != 1 {
		t.Fatalf("%d reject series; other=%v r0=%v", n, got["sesame_decisions_total,kind=reject,reason=other"], got["sesame_decisions_total,kind=reject,reason=r0"])
	}
}

func TestServeHTTP(t *testing.T) {
	m, _, listErr := fixture()
	m.Observe(gateway.Decision{Kind: "grant", Latency: time.Millisecond})
	srv, err := Listen(netip.MustParseAddrPort("127.0.0.1:0"), m, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	base := "http://" + srv.Addr().String()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/metrics")
	for _, want := range []string{
		"# TYPE sesame_decisions_total counter",
		`sesame_decisions_total{kind="grant",reason=""} 1`,
		"sesame_grants_live 3",
		`sesame_decision_latency_seconds_bucket{kind="grant",le="0.0016"} 1`,
		"sesame_capture_dropped_total 5",
		"go_goroutines ",
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET /metrics %d: no %q", code, want)
		}
	}
	// A failing grant listing drops that metric only.
	*listErr = errors.New("netlink gone")
	code, body = get("/metrics")
	if code != 200 || strings.Contains(body, "sesame_grants_live") || !strings.Contains(body, "sesame_packets_total 100") {
		t.Errorf("with a failing listing: %d\n%s", code, body)
	}
	if code, body := get("/"); code != 200 || !strings.Contains(body, "/metrics") {
		t.Errorf("GET / = %d %q", code, body)
	}
	if code, _ := get("/debug/pprof/"); code != 404 {
		t.Errorf("GET /debug/pprof/ = %d", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(base + "/metrics"); err == nil {
		t.Fatal("still serving after shutdown")
	}
}

func TestListenTakenPort(t *testing.T) {
	m, _, _ := fixture()
	a, err := Listen(netip.MustParseAddrPort("127.0.0.1:0"), m, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.ln.Close()
	if _, err := Listen(netip.MustParseAddrPort(a.Addr().String()), m, nil); err == nil {
		t.Fatal("second Listen on a taken port succeeded")
	}
}

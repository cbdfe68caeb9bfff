package gateway

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/firewall"
	"github.com/sesame-gw/sesame/internal/knock"
	"github.com/sesame-gw/sesame/internal/service"
)

// shapedHandler is a fakeHandler that declares a shape.
type shapedHandler struct {
	fakeHandler
	shape firewall.DatagramShape
}

func (s *shapedHandler) Shape() firewall.DatagramShape { return s.shape }

var (
	shapeA = firewall.DatagramShape{MinLen: 89, MaxLen: 1232, FirstBytes: []byte{0xD3}}
	shapeB = firewall.DatagramShape{MinLen: 140, MaxLen: 1500, FirstBytes: []byte("89+/")}
)

func TestWithDatagramFilter(t *testing.T) {
	spa2 := service.Service{Proto: service.UDP, Port: 5000}
	knock := service.Service{Proto: service.TCP, Port: 62201} // a TCP port is never filtered
	a, b := &shapedHandler{shape: shapeA}, &shapedHandler{shape: shapeB}
	for _, tc := range []struct {
		name  string
		cfg   Config
		ports []uint16
		n     int // shapes
	}{
		{"every handler shaped", Config{SPAPorts: []service.Service{spaP, spa2, knock}, Handlers: []DatagramHandler{a, b}}, []uint16{5000, 62201}, 2},
		{"an unshaped handler", Config{SPAPorts: []service.Service{spaP}, Handlers: []DatagramHandler{a, &fakeHandler{}}}, nil, 0},
		{"no handler", Config{SPAPorts: []service.Service{spaP}}, nil, 0},
		{"no SPA port", Config{Handlers: []DatagramHandler{a}}, nil, 0},
	} {
		l := withDatagramFilter(firewall.Layout{LogGroup: 7}, tc.cfg)
		if !slices.Equal(l.Datagrams.Ports, tc.ports) || len(l.Datagrams.Shapes) != tc.n {
			t.Errorf("%s: %+v", tc.name, l.Datagrams)
		}
		if l.Datagrams.Active() != (tc.n > 0) {
			t.Errorf("%s: Active = %v", tc.name, l.Datagrams.Active())
		}
	}
	// A filter set by the caller wins.
	own := firewall.DatagramFilter{Ports: []uint16{1}, Shapes: []firewall.DatagramShape{{MinLen: 1, MaxLen: 2}}}
	l := withDatagramFilter(firewall.Layout{Datagrams: own}, Config{SPAPorts: []service.Service{spaP}, Handlers: []DatagramHandler{a}})
	if !slices.Equal(l.Datagrams.Ports, own.Ports) {
		t.Errorf("caller's filter replaced: %+v", l.Datagrams)
	}
}

// Run and Reload hand the filter to the firewall; a reload to a handler
// without a shape removes it.
func TestEngineInstallsDatagramFilter(t *testing.T) {
	h := newHarness(t, Config{SPAPorts: []service.Service{spaP}, Handlers: []DatagramHandler{&shapedHandler{shape: shapeA}, &shapedHandler{shape: shapeB}}}, nil)
	h.eventually("setup", func() bool { _, ok := h.fw.Layout(); return ok })
	l, _ := h.fw.Layout()
	if !slices.Equal(l.Datagrams.Ports, []uint16{62201}) || len(l.Datagrams.Shapes) != 2 {
		t.Fatalf("installed filter %+v", l.Datagrams)
	}
	cfg := h.eng.cfg
	cfg.Handlers = []DatagramHandler{&fakeHandler{}}
	cfg.Layout.Datagrams = firewall.DatagramFilter{}
	if err := h.eng.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if l, _ := h.fw.Layout(); l.Datagrams.Active() {
		t.Fatalf("filter kept after reloading to an unshaped handler: %+v", l.Datagrams)
	}
}

// BenchmarkWithDatagramFilter is the cost of deriving the filter at Setup
// and reload (not on the packet path).
func BenchmarkWithDatagramFilter(b *testing.B) {
	cfg := Config{SPAPorts: []service.Service{spaP}, Handlers: []DatagramHandler{&shapedHandler{shape: shapeA}, &shapedHandler{shape: shapeB}}}
	for b.Loop() {
		if !withDatagramFilter(firewall.Layout{}, cfg).Datagrams.Active() {
			b.Fatal("no filter")
		}
	}
}

// The kernel marks knocking sources for the longest sequence timeout of the
// doors; a timeout the layout already sets is kept.
func TestKernelLayoutWatchTimeout(t *testing.T) {
	cfg := Config{Doors: []Door{
		{Door: knock.Door{Name: "a", Sequence: []service.Service{{Proto: service.TCP, Port: 1000}}, Timeout: 5 * time.Second}},
		{Door: knock.Door{Name: "b", Sequence: []service.Service{{Proto: service.TCP, Port: 2000}}, Timeout: 20 * time.Second}},
	}}
	if got := kernelLayout(firewall.Layout{}, cfg).WatchTimeout; got != 20*time.Second {
		t.Errorf("watch timeout %v, want the longest door timeout 20s", got)
	}
	if got := kernelLayout(firewall.Layout{WatchTimeout: time.Minute}, cfg).WatchTimeout; got != time.Minute {
		t.Errorf("watch timeout %v, want the layout's 1m", got)
	}
	if got := kernelLayout(firewall.Layout{}, Config{}).WatchTimeout; got != 0 {
		t.Errorf("no doors: watch timeout %v, want 0 (no mark rules)", got)
	}
}

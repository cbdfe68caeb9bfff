// Package metrics exposes the gateway's counters to Prometheus. It is the
// only package that imports github.com/prometheus/client_golang.
//
// Counters the engine already keeps (gateway.Stats, capture.Stats) are
// read at scrape time; decisions are counted as they happen through
// Observe (wire it to gateway.Config.OnDecision); live grants are listed
// from the firewall at scrape time. docs/operations.md lists the metrics.
package metrics

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sesame-gw/sesame/internal/capture"
	"github.com/sesame-gw/sesame/internal/gateway"
)

// MaxReasons bounds the distinct reason label values per decision kind;
// further reasons are counted as "other" (a label per error text would
// grow without bound).
const MaxReasons = 64

// scrapeTimeout bounds listing the live grants during a scrape.
const scrapeTimeout = 5 * time.Second

// Sources are where the collected values come from. Every field may be nil
// (its metrics are then left out). The functions are called during a
// scrape, concurrently with the gateway: they must be safe for that.
type Sources struct {
	// Stats returns the engine's counters (gateway.Engine.Stats).
	Stats func() *gateway.Stats
	// Capture returns the packet source's counters (capture.Source.Stats).
	Capture func() capture.Stats
	// LiveGrants counts the grants in the kernel now.
	LiveGrants func(ctx context.Context) (int, error)
	// Audit returns the audit log's lost records and write errors.
	Audit func() (dropped, errors uint64)
	// DigestSyncErrors counts failed background fsyncs of fwknop's
	// digest.cache (fwknopgw.Digests.SyncErrors).
	DigestSyncErrors func() uint64
}

// Metrics is a registry with Sesame's metrics. Observe and ObserveReload
// are safe for concurrent use.
type Metrics struct {
	reg        *prometheus.Registry
	decisions  *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	reloads    *prometheus.CounterVec
	reloadOK   prometheus.Gauge
	reloadTime prometheus.Gauge

	mu      sync.Mutex
	reasons map[string]map[string]bool // kind → reasons seen
}

// New registers the metrics over src. version is exported in
// sesame_build_info.
func New(src Sources, version string) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sesame_decisions_total",
			Help: "Decisions by kind (grant, grant-failed, reject, reset, revoke) and reason.",
		}, []string{"kind", "reason"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sesame_decision_latency_seconds",
			Help: "Time from the deciding packet to the grant committed in the firewall.",
			// 50µs to ~1.6s, doubling.
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16),
		}, []string{"kind"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sesame_config_reloads_total",
			Help: "Configuration reloads by result (success, failure).",
		}, []string{"result"}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sesame_config_last_reload_successful",
			Help: "1 if the last configuration reload was applied, 0 if it was refused.",
		}),
		reloadTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sesame_config_last_reload_success_timestamp_seconds",
			Help: "When the configuration was last loaded successfully (start or reload).",
		}),
		reasons: map[string]map[string]bool{},
	}
	m.reloadOK.Set(1)
	m.reloadTime.SetToCurrentTime()
	reg.MustRegister(m.decisions, m.latency, m.reloads, m.reloadOK, m.reloadTime,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "sesame_build_info",
		Help:        "Always 1; the labels name the build.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	}, func() float64 { return 1 }))
	for _, r := range []string{"success", "failure"} {
		m.reloads.WithLabelValues(r)
	}

	counter := func(name, help string, f func() uint64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(f()) }))
	}
	if src.Stats != nil {
		s := src.Stats
		counter("sesame_packets_total", "Packets the gateway processed (knocks, strays from sources mid-sequence, SPA datagrams).", func() uint64 { return s().Packets.Load() })
		counter("sesame_knocks_total", "Knocks that started or advanced a sequence.", func() uint64 { return s().Knocks.Load() })
		counter("sesame_grants_total", "Grants decided (knock sequences completed, SPA packets accepted).", func() uint64 { return s().Grants.Load() })
		counter("sesame_grant_errors_total", "Grants the firewall refused.", func() uint64 { return s().GrantErrors.Load() })
		counter("sesame_spa_datagrams_total", "SPA datagrams received.", func() uint64 { return s().Datagrams.Load() })
		counter("sesame_spa_datagrams_dropped_total", "SPA datagrams dropped because the verification queue was full.", func() uint64 { return s().DatagramsDropped.Load() })
		counter("sesame_spa_rate_limited_total", "SPA datagrams refused by the per-source rate limit.", func() uint64 { return s().RateLimited.Load() })
		counter("sesame_spa_rejected_total", "SPA datagrams rejected, including unlogged garbage.", func() uint64 { return s().Rejected.Load() })
		counter("sesame_capture_queue_dropped_total", "Packets dropped because the engine fell behind the capture.", func() uint64 { return s().Dropped.Load() })
	}
	if src.Capture != nil {
		c := src.Capture
		counter("sesame_capture_received_total", "Packets the capture source delivered.", func() uint64 { return c().Received })
		counter("sesame_capture_malformed_total", "Captured packets that did not parse.", func() uint64 { return c().Malformed })
		counter("sesame_capture_dropped_total", "Packets the kernel dropped because the capture reader fell behind.", func() uint64 { return c().Dropped })
	}
	if src.Audit != nil {
		a := src.Audit
		counter("sesame_audit_dropped_total", "Audit records lost to a full queue.", func() uint64 { d, _ := a(); return d })
		counter("sesame_audit_write_errors_total", "Failed writes to the audit log.", func() uint64 { _, e := a(); return e })
	}
	if src.DigestSyncErrors != nil {
		counter("sesame_fwknop_digest_sync_errors_total", "Failed background fsyncs of fwknop's digest.cache (its lines were written before the grants; only their durability across a power loss is at stake).", src.DigestSyncErrors)
	}
	if src.LiveGrants != nil {
		reg.MustRegister(liveGrants{src.LiveGrants})
	}
	return m
}

// Observe counts one decision; it has the signature of
// gateway.Config.OnDecision.
func (m *Metrics) Observe(d gateway.Decision) {
	m.decisions.WithLabelValues(d.Kind, m.reason(d)).Inc()
	if d.Latency > 0 {
		m.latency.WithLabelValues(d.Kind).Observe(d.Latency.Seconds())
	}
}

func (m *Metrics) reason(d gateway.Decision) string {
	r := d.Reason
	switch d.Kind {
	case "grant-failed":
		return "firewall-error" // the reason is an error text
	case "revoke":
		return "admin"
	}
	if len(r) > 64 {
		r = "other"
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := m.reasons[d.Kind]
	if seen == nil {
		seen = map[string]bool{}
		m.reasons[d.Kind] = seen
	}
	if !seen[r] {
		if len(seen) >= MaxReasons {
			return "other"
		}
		seen[r] = true
	}
	return r
}

// ObserveReload records a reload's outcome.
func (m *Metrics) ObserveReload(err error) {
	if err != nil {
		m.reloads.WithLabelValues("failure").Inc()
		m.reloadOK.Set(0)
		return
	}
	m.reloads.WithLabelValues("success").Inc()
	m.reloadOK.Set(1)
	m.reloadTime.SetToCurrentTime()
}

// Handler serves the metrics in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	// ContinueOnError: a failed grant listing leaves sesame_grants_live
	// out of the scrape, not every metric.
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{MaxRequestsInFlight: 4, Timeout: 2 * scrapeTimeout,
		ErrorHandling: promhttp.ContinueOnError})
}

// Gather returns the current values keyed by name and labels
// ("sesame_decisions_total,kind=grant,reason="), histograms by their sample
// count (",count"). A collection error is returned with what was gathered.
func (m *Metrics) Gather() (map[string]float64, error) {
	mfs, err := m.reg.Gather()
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, x := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range x.GetLabel() {
				name += "," + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case x.Counter != nil:
				out[name] = x.Counter.GetValue()
			case x.Gauge != nil:
				out[name] = x.Gauge.GetValue()
			case x.Histogram != nil:
				out[name+",count"] = float64(x.Histogram.GetSampleCount())
			}
		}
	}
	return out, err
}

var liveGrantsDesc = prometheus.NewDesc("sesame_grants_live", "Grants in the kernel now.", nil, nil)

// liveGrants lists the firewall's grants at scrape time.
type liveGrants struct {
	count func(context.Context) (int, error)
}

func (liveGrants) Describe(ch chan<- *prometheus.Desc) { ch <- liveGrantsDesc }

func (l liveGrants) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	n, err := l.count(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(liveGrantsDesc, errors.Join(errors.New("listing grants"), err))
		return
	}
	ch <- prometheus.MustNewConstMetric(liveGrantsDesc, prometheus.GaugeValue, float64(n))
}

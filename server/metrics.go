package server

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/postured/postured/aggregate"
)

// metrics are postured's Prometheus series. Labels are bounded: route
// templates, provider names from config, fixed outcome words; never device
// identifiers, emails or raw paths.
type metrics struct {
	httpRequests   *prometheus.CounterVec
	authFailures   *prometheus.CounterVec
	badRequests    *prometheus.CounterVec
	panics         prometheus.Counter
	batchDevices   prometheus.Histogram
	batchDuration  prometheus.Histogram
	providerDevice *prometheus.CounterVec
	deviceScores   prometheus.Histogram
}

func newMetrics(reg *prometheus.Registry) *metrics {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := promauto.With(reg)
	return &metrics{
		httpRequests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "postured_http_requests_total", Help: "HTTP requests by route template, method and status.",
		}, []string{"route", "method", "status"}),
		authFailures: f.NewCounterVec(prometheus.CounterOpts{
			Name: "postured_access_auth_failures_total", Help: "Requests refused by the Access token check.",
		}, []string{"reason"}),
		badRequests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "postured_posture_rejected_total", Help: "Posture batches refused as malformed or oversized.",
		}, []string{"reason"}),
		panics: f.NewCounter(prometheus.CounterOpts{
			Name: "postured_handler_panics_total", Help: "Handler panics recovered.",
		}),
		batchDevices: f.NewHistogram(prometheus.HistogramOpts{
			Name: "postured_batch_devices", Help: "Devices per posture batch.",
			Buckets: []float64{1, 10, 50, 100, 250, 500, 1000},
		}),
		batchDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name: "postured_batch_duration_seconds", Help: "Time to score one posture batch.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}),
		providerDevice: f.NewCounterVec(prometheus.CounterOpts{
			Name: "postured_provider_devices_total", Help: "Devices per provider and lookup outcome.",
		}, []string{"provider", "outcome"}),
		deviceScores: f.NewHistogram(prometheus.HistogramOpts{
			Name: "postured_device_scores", Help: "Scores answered to Cloudflare, one observation per device, by decile.",
			// Scores are integers: le=9 holds 0-9, ..., le=89 holds 80-89,
			// le=100 holds 90-100, the deciles the status page draws.
			Buckets: []float64{9, 19, 29, 39, 49, 59, 69, 79, 89, 100},
		}),
	}
}

// ObserveBatch counts the batch's answered scores. The server observes
// every batch itself, before the configured observers.
func (m *metrics) ObserveBatch(_ context.Context, b Batch) {
	for i := range b.Results {
		m.deviceScores.Observe(float64(b.Results[i].Score))
	}
}

// registerMemory exports the size of External Evaluation's posture memory:
// it is bounded (cache.max_entries), and a memory at its bound stops
// remembering new devices.
func registerMemory(reg *prometheus.Registry, m *PostureMemory) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "postured_posture_memory_devices", Help: "Devices the posture memory holds (External Evaluation, what-if).",
	}, func() float64 { return float64(m.Len()) }))
}

func (m *metrics) observeBatch(s aggregate.Stats) {
	m.batchDevices.Observe(float64(s.Devices))
	m.batchDuration.Observe(s.Duration.Seconds())
	for p, n := range s.Matched {
		m.providerDevice.WithLabelValues(p, "matched").Add(float64(n))
	}
	for p, n := range s.Errors {
		m.providerDevice.WithLabelValues(p, "error").Add(float64(n))
	}
	for p, n := range s.Stale {
		m.providerDevice.WithLabelValues(p, "stale").Add(float64(n))
	}
}

// methodLabel maps a request method to a fixed set of label values. The
// method is whatever the client sent, up to the header limit: as a label
// it would grow a series per distinct value, so unknown methods share one.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodHead, http.MethodPut,
		http.MethodDelete, http.MethodPatch, http.MethodOptions:
		return m
	}
	return "other"
}

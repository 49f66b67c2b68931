package app

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postured/postured/aggregate"
)

// statusCollector exports each synced provider's /readyz status (static
// inventories and vendors in mode: sync) as gauges read at scrape time, so
// a dashboard can show sync age without calling /readyz. Query-mode
// providers report no status and have no series.
type statusCollector struct {
	names    []string // providers from the config, in config order
	statuses map[string]aggregate.StatusReporter
	ready    *prometheus.Desc
	last     *prometheus.Desc
	records  *prometheus.Desc
	shared   *prometheus.Desc
}

func newStatusCollector(names []string, statuses map[string]aggregate.StatusReporter) *statusCollector {
	label := []string{"provider"}
	return &statusCollector{
		names:    names,
		statuses: statuses,
		ready: prometheus.NewDesc("postured_provider_ready",
			"1 once a synced provider has loaded its inventory, else 0.", label, nil),
		last: prometheus.NewDesc("postured_provider_last_sync_timestamp_seconds",
			"Unix time of a synced provider's last successful crawl; absent before the first.", label, nil),
		records: prometheus.NewDesc("postured_provider_records",
			"Records a synced provider holds from its last successful crawl.", label, nil),
		shared: prometheus.NewDesc("postured_sync_shared",
			"1 while a sync-mode provider's crawl is shared between replicas through Redis, 0 while this replica crawls alone; absent without sharing.", label, nil),
	}
}

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.ready
	ch <- c.last
	ch <- c.records
	ch <- c.shared
}

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	for _, name := range c.names {
		r, ok := c.statuses[name]
		if !ok {
			continue
		}
		s := r.Status()
		ready := 0.0
		if s.Ready {
			ready = 1
		}
		ch <- prometheus.MustNewConstMetric(c.ready, prometheus.GaugeValue, ready, name)
		ch <- prometheus.MustNewConstMetric(c.records, prometheus.GaugeValue, float64(s.Records), name)
		if !s.LastSuccess.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.last, prometheus.GaugeValue, float64(s.LastSuccess.UnixNano())/1e9, name)
		}
		if s.Crawl != "" {
			shared := 0.0
			if s.Shared {
				shared = 1
			}
			ch <- prometheus.MustNewConstMetric(c.shared, prometheus.GaugeValue, shared, name)
		}
	}
}

// newVendorResponses counts the answers each provider's vendor API gives,
// by status class with 429 apart: rate limiting is what a dashboard of
// vendor health watches, and the class keeps the label bounded.
func newVendorResponses() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "postured_vendor_responses_total",
		Help: "Vendor API answers per provider and status (2xx, 3xx, 4xx, 429, 5xx; unreachable when none came), each retry attempt counted; not token requests, nor the statuses of items inside one Graph $batch answer.",
	}, []string{"provider", "status"})
}

// statusClass is the status label of a vendor answer; 0 is none.
func statusClass(status int) string {
	switch {
	case status == http.StatusTooManyRequests:
		return "429"
	case status >= 200 && status < 600:
		return string(rune('0'+status/100)) + "xx"
	default:
		return "unreachable"
	}
}

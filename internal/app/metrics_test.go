package app

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/internal/mockset"
)

func TestStatusCollector(t *testing.T) {
	synced := time.Unix(1_700_000_000, 500_000_000)
	for _, tc := range []struct {
		name     string
		statuses map[string]aggregate.StatusReporter
		want     string
		// metrics limits the comparison to these names; nil compares all.
		metrics []string
	}{
		{
			name:     "before the first crawl: not ready, no timestamp",
			statuses: map[string]aggregate.StatusReporter{"intune": statusFunc(func() aggregate.Status { return aggregate.Status{} })},
			want: `
# HELP postured_provider_ready 1 once a synced provider has loaded its inventory, else 0.
# TYPE postured_provider_ready gauge
postured_provider_ready{provider="intune"} 0
# HELP postured_provider_records Records a synced provider holds from its last successful crawl.
# TYPE postured_provider_records gauge
postured_provider_records{provider="intune"} 0
`,
		},
		{
			name: "synced; query-mode and non-provider statuses have no series",
			statuses: map[string]aggregate.StatusReporter{
				"intune": statusFunc(func() aggregate.Status {
					return aggregate.Status{Ready: true, LastSuccess: synced, Records: 4200}
				}),
				keyRingStatus: statusFunc(func() aggregate.Status { return aggregate.Status{Ready: true, Records: 2} }),
			},
			want: `
# HELP postured_provider_last_sync_timestamp_seconds Unix time of a synced provider's last successful crawl; absent before the first.
# TYPE postured_provider_last_sync_timestamp_seconds gauge
postured_provider_last_sync_timestamp_seconds{provider="intune"} 1.7000000005e+09
# HELP postured_provider_ready 1 once a synced provider has loaded its inventory, else 0.
# TYPE postured_provider_ready gauge
postured_provider_ready{provider="intune"} 1
# HELP postured_provider_records Records a synced provider holds from its last successful crawl.
# TYPE postured_provider_records gauge
postured_provider_records{provider="intune"} 4200
`,
		},
		{
			name: "shared crawl and crawling alone",
			statuses: map[string]aggregate.StatusReporter{
				"crowdstrike": statusFunc(func() aggregate.Status {
					return aggregate.Status{Crawl: "local (redis unavailable)"}
				}),
				"intune": statusFunc(func() aggregate.Status {
					return aggregate.Status{Crawl: "loaded from another replica", Shared: true}
				}),
			},
			want: `
# HELP postured_sync_shared 1 while a sync-mode provider's crawl is shared between replicas through Redis, 0 while this replica crawls alone; absent without sharing.
# TYPE postured_sync_shared gauge
postured_sync_shared{provider="crowdstrike"} 0
postured_sync_shared{provider="intune"} 1
`,
			metrics: []string{"postured_sync_shared"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newStatusCollector([]string{"crowdstrike", "intune"}, tc.statuses)
			if err := testutil.CollectAndCompare(c, strings.NewReader(tc.want), tc.metrics...); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestBuildExportsProviderStatus checks Build registers the collector on
// the registry /metrics serves.
func TestBuildExportsProviderStatus(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "inventory.yaml"), "devices:\n  - {id: asset-1, serial_number: SER1, score: 70}\n", time.Now())
	cfg, err := Parse([]byte(`
listen: "127.0.0.1:0"
access: {insecure_skip_verify: true}
providers:
  - {name: inventory, type: static, weight: 1, file: "`+filepath.Join(dir, "inventory.yaml")+`"}
`), Registry(), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	a, err := Build(cfg, Registry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var g prometheus.Gatherer = a.registry
	n, err := testutil.GatherAndCount(g, "postured_provider_ready", "postured_provider_records", "postured_provider_last_sync_timestamp_seconds")
	if err != nil || n != 3 {
		t.Fatalf("gathered %d provider status series (%v), want 3 for the static inventory", n, err)
	}
}

func TestStatusClass(t *testing.T) {
	for _, tc := range []struct {
		status int
		want   string
	}{
		{0, "unreachable"}, {200, "2xx"}, {204, "2xx"}, {302, "3xx"}, {401, "4xx"},
		{429, "429"}, {500, "5xx"}, {503, "5xx"}, {99, "unreachable"}, {600, "unreachable"},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			if got := statusClass(tc.status); got != tc.want {
				t.Errorf("statusClass(%d) = %q, want %q", tc.status, got, tc.want)
			}
		})
	}
}

// TestBuildCountsVendorResponses syncs and runs a lookup through the demo
// config against the mocks, CrowdStrike's first answer a 429: Build gives
// every provider an observer that counts its vendor's answers under its
// name, for the metric and the status page alike.
func TestBuildCountsVendorResponses(t *testing.T) {
	set, err := mockset.New(20, 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	mocksURL := set.Serve(t)
	text, err := mockset.DemoConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse(text, Registry(), mockset.DemoEnv(mocksURL, "127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := Build(cfg, Registry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	a.SyncNow(t.Context()) // Intune's crawl
	cs, _ := set.Vendor("crowdstrike")
	cs.Faults.RateLimit(1, 0)
	d := set.Fleet.Batch()[0]
	a.Engine().Evaluate(t.Context(), []aggregate.Device{{ID: d.DeviceID, Serial: d.SerialNumber}})
	families, err := a.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counted := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "postured_vendor_responses_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			counted[l["provider"]+" "+l["status"]] = m.GetCounter().GetValue()
		}
	}
	for _, key := range []string{"crowdstrike 429", "crowdstrike 2xx", "jamf 2xx", "intune 2xx"} {
		if counted[key] < 1 {
			t.Errorf("no %s answer counted; counted %v", key, counted)
		}
	}
	// The status page's 429s are the same answers, from the same hook.
	snap := a.statusRec.Snapshot()
	for name, want := range map[string]int{"crowdstrike": int(counted["crowdstrike 429"]), "jamf": 0, "intune": 0} {
		if got := snap.Providers[name].RateLimited; got != want {
			t.Errorf("status page: %s 429s %d, metric %d", name, got, want)
		}
	}
}

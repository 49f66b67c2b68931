package app

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/postured/postured/aggregate"
)

func TestStatusCollector(t *testing.T) {
	synced := time.Unix(1_700_000_000, 500_000_000)
	for _, tc := range []struct {
		name     string
		statuses map[string]aggregate.StatusReporter
		want     string
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
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newStatusCollector([]string{"crowdstrike", "intune"}, tc.statuses)
			if err := testutil.CollectAndCompare(c, strings.NewReader(tc.want)); err != nil {
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

package jamf

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/internal/fleet"
	"github.com/postured/postured/providers"
	"github.com/postured/postured/providers/jamf/jamfmock"
)

// coldBatchBudget is design.md's bound on vendor calls for one cold
// 1000-device batch.
const coldBatchBudget = 150

// TestColdBatchCalls scores 1000-device batches of a generated fleet, as
// Cloudflare sends them, through the aggregator with no cache, and counts
// every request the Jamf mock serves, token included: a cold batch must
// stay within the design's 150 calls, and every device Jamf holds must
// get its record.
func TestColdBatchCalls(t *testing.T) {
	f := fleet.Generate(5000, 1, time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC))
	all := f.Batch()
	for _, release := range []jamfmock.Release{jamfmock.ReleaseV4, jamfmock.ReleaseV1Only} {
		t.Run(release.Version, func(t *testing.T) {
			mock := jamfmock.New(jamfmock.Options{
				Computers: jamfmock.FleetComputers(f), MobileDevices: jamfmock.FleetMobileDevices(f),
				ClientID: testClientID, ClientSecret: testSecret, Release: release,
			})
			expected := jamfmock.Vendor(f).Expected
			for start := 0; start < len(all); start += 1000 {
				srv := httptest.NewServer(mock)
				t.Cleanup(srv.Close)
				cfg := &Config{
					Common:  providers.Common{Name: "jamf", Type: "jamf", Weight: 2},
					BaseURL: srv.URL, ClientID: testClientID, ClientSecret: testSecret,
				}
				cfg.Defaults()
				p := newProv(t, cfg) // a new process: nothing known, nothing cached
				eng, err := aggregate.New(aggregate.Config{
					Sources:  []aggregate.Source{{Name: "jamf", Weight: 1, Provider: p}},
					Deadline: time.Minute,
				})
				if err != nil {
					t.Fatal(err)
				}
				batch := all[start : start+1000]
				devices := make([]aggregate.Device, len(batch))
				for i, d := range batch {
					devices[i] = aggregate.Device{ID: d.DeviceID, Serial: d.SerialNumber, MAC: d.MACAddress, Hostname: d.Hostname, Email: d.Email}
				}
				before := mock.Calls.Total()
				results, stats := eng.Evaluate(context.Background(), devices)
				calls := mock.Calls.Total() - before
				t.Logf("batch %d: %d Jamf calls, %d devices matched", start/1000+1, calls, stats.Matched["jamf"])
				if calls > coldBatchBudget {
					t.Errorf("batch %d: %d Jamf calls, budget %d", start/1000+1, calls, coldBatchBudget)
				}
				if stats.Errors["jamf"] != 0 {
					t.Errorf("batch %d: %d devices errored", start/1000+1, stats.Errors["jamf"])
				}
				for i, r := range results {
					w, ok := expected[start+i]
					if ok && r.S2SID != w.ID {
						t.Errorf("device %d: s2s_id %q, want %q", start+i, r.S2SID, w.ID)
					}
				}
			}
		})
	}
}

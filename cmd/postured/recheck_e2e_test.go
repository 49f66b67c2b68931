package main

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/internal/app"
	"github.com/postured/postured/internal/mockset"
)

// TestRecheckSeesTheVendorNow: after the vendors' records change, a plain
// batch still gets the cached scores; POST /v1/recheck of a device gets
// what a postured with an empty cache computes, and from then on batches
// get that score for the rechecked device only.
func TestRecheckSeesTheVendorNow(t *testing.T) {
	set, err := mockset.New(200, 3, fleetNow)
	if err != nil {
		t.Fatal(err)
	}
	token, err := set.Access.AppToken(mockset.AccessAudience, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	in, cfg := startDemo(t, set, "query", "info")
	waitReady(t, in)
	devs := set.Fleet.Batch()
	first := postBatch(t, in.url, token, devs)

	drifted := map[string]bool{}
	for _, c := range set.Drift(30, time.Now()) {
		drifted[set.Fleet.Devices[c.Index].CloudflareID] = true
	}
	cached := postBatch(t, in.url, token, devs)
	for id, r := range first.Result {
		if cached.Result[id] != r {
			t.Fatalf("%s: a batch within cache.ttl moved from %+v to %+v", id, r, cached.Result[id])
		}
	}

	// What an empty cache says now, for every device: the truth to meet.
	fresh, err := app.Build(cfg, app.Registry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	rechecked := map[string]int{}
	for _, d := range devs {
		if !drifted[d.DeviceID] {
			continue
		}
		want := fresh.Explain(t.Context(), aggregate.Device{Serial: d.SerialNumber, MAC: d.MACAddress, Hostname: d.Hostname, Email: d.Email})
		if want.Score == first.Result[d.DeviceID].Score {
			continue
		}
		body, _ := json.Marshal(d)
		code, b := in.post(t, "/v1/recheck", token, body)
		if code != http.StatusOK {
			t.Fatalf("recheck %s: %d %s", d.DeviceID, code, b)
		}
		var ex aggregate.Explanation
		if err := json.Unmarshal(b, &ex); err != nil {
			t.Fatal(err)
		}
		if ex.DeviceID != d.DeviceID || ex.Score != want.Score || ex.S2SID != want.S2SID {
			t.Errorf("recheck %s: score %d s2s_id %q, want %d %q (first batch: %d)", d.DeviceID, ex.Score, ex.S2SID, want.Score, want.S2SID, first.Result[d.DeviceID].Score)
		}
		rechecked[d.DeviceID] = want.Score
		if len(rechecked) == 5 {
			break
		}
	}
	if len(rechecked) == 0 {
		t.Fatal("the drift moved no score: nothing was rechecked")
	}
	after := postBatch(t, in.url, token, devs)
	for id, r := range after.Result {
		want := first.Result[id].Score
		if s, ok := rechecked[id]; ok {
			want = s
		}
		if r.Score != want {
			t.Errorf("%s: batch after the rechecks scored %d, want %d (rechecked: %v)", id, r.Score, want, rechecked[id] != 0)
		}
	}
	t.Logf("%d devices drifted, %d rechecked", len(drifted), len(rechecked))
}

package aggregate

import (
	"testing"
	"time"

	"github.com/postured/postured/providers"
)

// TestContainedReachesTheExplanation: a contained record is flagged in its
// provider's detail, through the cache, so hysteresis (package adjust) can
// let the drop through at once.
func TestContainedReachesTheExplanation(t *testing.T) {
	inv := newInventory(
		rec("c1", 0, serial("S1"), func(r *providers.Record) { r.Contained = true }),
		rec("c2", 80, serial("S2")),
	)
	sync := newSyncer(t, "crowdstrike-sync", staticLister{
		rec("c1", 0, serial("S1"), func(r *providers.Record) { r.Contained = true }),
		rec("c2", 80, serial("S2")),
	}, time.Hour, nil)
	if err := sync.SyncOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	// A vendor through the cache, and the same records from a sync-mode
	// index.
	e := newEngine(t, Config{Sources: []Source{src("crowdstrike", 1, inv), src("crowdstrike-sync", 1, sync)}, Store: memoryStore(t)})
	for _, tc := range []struct {
		serial string
		want   bool
	}{{"S1", true}, {"S2", false}, {"S1", true}} { // the second S1 comes from the cache
		t.Run(tc.serial, func(t *testing.T) {
			r := evalOne(t, e, Device{Serial: tc.serial})
			for i := range r.Providers {
				if got := r.Explain().Providers[i].Contained; got != tc.want || r.Providers[i].Contained != tc.want {
					t.Errorf("%s: contained %t (compact %t), want %t", r.Providers[i].Provider, got, r.Providers[i].Contained, tc.want)
				}
			}
		})
	}
}

// TestAdjust: Result.Adjust sets the final score in the result and its
// explanation, and records each adjustment in order.
func TestAdjust(t *testing.T) {
	for name, r := range map[string]Result{
		"evaluated": evalOne(t, newEngine(t, Config{Sources: []Source{src("a", 1, newInventory(rec("r1", 20, serial("S1"))))}}), Device{ID: "d1", Serial: "S1"}),
		"ResultOf":  ResultOf(Explanation{DeviceID: "d1", Score: 20}),
	} {
		r.Adjust(Adjustment{Kind: "hysteresis", From: 20, To: 90, Note: "held"})
		r.Adjust(Adjustment{Kind: "override", From: 90, To: 100, Note: "loaner"})
		if ex := r.Explain(); r.Score != 100 || ex.Score != 100 || len(ex.Adjustments) != 2 || ex.Adjustments[1].Note != "loaner" {
			t.Errorf("%s: %+v, explained %+v", name, r, ex)
		}
	}
}

package aggregate

import (
	"testing"

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
	e := newEngine(t, Config{Sources: []Source{src("crowdstrike", 1, inv)}, Store: memoryStore(t)})
	for _, tc := range []struct {
		serial string
		want   bool
	}{{"S1", true}, {"S2", false}, {"S1", true}} { // the second S1 comes from the cache
		t.Run(tc.serial, func(t *testing.T) {
			r := evalOne(t, e, Device{Serial: tc.serial})
			if got := r.Explanation.Providers[0].Contained; got != tc.want {
				t.Errorf("contained %t, want %t", got, tc.want)
			}
		})
	}
}

// TestAdjust: Result.Adjust sets the final score in the result and its
// explanation, and records each adjustment in order.
func TestAdjust(t *testing.T) {
	r := Result{DeviceID: "d1", Score: 20, Explanation: Explanation{DeviceID: "d1", Score: 20}}
	r.Adjust(Adjustment{Kind: "hysteresis", From: 20, To: 90, Note: "held"})
	r.Adjust(Adjustment{Kind: "override", From: 90, To: 100, Note: "loaner"})
	if r.Score != 100 || r.Explanation.Score != 100 || len(r.Explanation.Adjustments) != 2 || r.Explanation.Adjustments[1].Note != "loaner" {
		t.Errorf("%+v", r)
	}
}

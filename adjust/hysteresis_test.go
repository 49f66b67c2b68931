package adjust

import (
	"strings"
	"testing"
	"time"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/internal/conf"
)

// step is one evaluation of device d1 in a hysteresis scenario.
type step struct {
	after     time.Duration // clock moves this much first
	folded    int
	contained bool
	explain   bool // read the state without advancing it
	want      int
	// note is a substring of the one adjustment's note; "" wants none.
	note string
}

func TestHysteresis(t *testing.T) {
	tests := []struct {
		name  string
		cfg   HysteresisConfig
		steps []step
	}{
		{"one bad evaluation does not flap", HysteresisConfig{Threshold: 50, HoldEvaluations: 3}, []step{
			{folded: 90, want: 90},
			{after: 5 * time.Minute, folded: 20, want: 90, note: "held at the last good score 90: 20 is below threshold 50 (low evaluation 1 of hold_evaluations 3)"},
			{after: 5 * time.Minute, folded: 90, want: 90},
			// The count started again: one more low is held.
			{after: 5 * time.Minute, folded: 20, want: 90, note: "low evaluation 1 of hold_evaluations 3"},
		}},
		{"recovery applies at once, to the new score", HysteresisConfig{Threshold: 50, HoldEvaluations: 3}, []step{
			{folded: 90, want: 90},
			{folded: 10, want: 90, note: "held"},
			{folded: 70, want: 70},
			{folded: 10, want: 70, note: "held at the last good score 70"},
		}},
		{"K consecutive low evaluations drop it", HysteresisConfig{Threshold: 50, HoldEvaluations: 3}, []step{
			{folded: 80, want: 80},
			{folded: 30, want: 80, note: "low evaluation 1 of hold_evaluations 3"},
			{folded: 40, want: 80, note: "low evaluation 2 of hold_evaluations 3"},
			{folded: 30, want: 30, note: "released: 3 consecutive low evaluations reached hold_evaluations 3"},
			{folded: 30, want: 30},
			{folded: 60, want: 60},
		}},
		{"M minutes low drop it", HysteresisConfig{Threshold: 50, HoldFor: conf.Duration(10 * time.Minute)}, []step{
			{folded: 80, want: 80},
			{after: time.Minute, folded: 0, want: 80, note: "(low since 2026-11-30T09:01:00Z, hold_for 10m0s)"},
			{after: 10*time.Minute - time.Second, folded: 0, want: 80, note: "held"},
			{after: time.Second, folded: 0, want: 0, note: "released: below threshold for 10m0s, reached hold_for 10m0s"},
			{after: time.Minute, folded: 0, want: 0},
		}},
		{"both set: evaluations reached first", HysteresisConfig{Threshold: 50, HoldEvaluations: 2, HoldFor: conf.Duration(time.Hour)}, []step{
			{folded: 80, want: 80},
			{folded: 0, want: 80, note: "low evaluation 1 of hold_evaluations 2; low since 2026-11-30T09:00:00Z, hold_for 1h0m0s"},
			{after: time.Minute, folded: 0, want: 0, note: "released: 2 consecutive"},
		}},
		{"both set: time reached first", HysteresisConfig{Threshold: 50, HoldEvaluations: 10, HoldFor: conf.Duration(5 * time.Minute)}, []step{
			{folded: 80, want: 80},
			{folded: 0, want: 80, note: "held"},
			{after: 5 * time.Minute, folded: 0, want: 0, note: "released: below threshold for 5m0s"},
		}},
		{"contained bypasses", HysteresisConfig{Threshold: 50, HoldEvaluations: 3, HoldFor: conf.Duration(time.Hour)}, []step{
			{folded: 90, want: 90},
			{folded: 0, contained: true, want: 0, note: "bypassed: crowdstrike reports the host contained; the drop from 90 applies at once"},
			{folded: 20, want: 20}, // nothing good left to hold
		}},
		{"contained while held ends the hold", HysteresisConfig{Threshold: 50, HoldEvaluations: 3}, []step{
			{folded: 90, want: 90},
			{folded: 40, want: 90, note: "held"},
			{folded: 0, contained: true, want: 0, note: "bypassed"},
		}},
		{"low from the start is not held", HysteresisConfig{Threshold: 50, HoldEvaluations: 3}, []step{
			{folded: 20, want: 20},
			{folded: 20, want: 20},
		}},
		{"a fall that stays above the threshold applies at once", HysteresisConfig{Threshold: 50, HoldEvaluations: 3}, []step{
			{folded: 90, want: 90},
			{folded: 50, want: 50},
			{folded: 49, want: 50, note: "held at the last good score 50"},
		}},
		{"explain reads without advancing", HysteresisConfig{Threshold: 50, HoldEvaluations: 2}, []step{
			{folded: 90, want: 90},
			{folded: 10, explain: true, want: 90, note: "low evaluation 1 of hold_evaluations 2"},
			{folded: 10, explain: true, want: 90, note: "low evaluation 1 of hold_evaluations 2"},
			{folded: 10, want: 90, note: "low evaluation 1 of hold_evaluations 2"},
			{folded: 10, explain: true, want: 10, note: "released: 2 consecutive"},
			{folded: 10, want: 10, note: "released: 2 consecutive"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			eng := newFakeEngine()
			a := newAdjuster(t, Config{Hysteresis: &tc.cfg, States: memoryStates(t), Now: clk.Now})
			posture, reader := a.Engine(eng, true), a.Engine(eng, false)
			for i, s := range tc.steps {
				clk.Advance(s.after)
				eng.set("d1", s.folded, s.contained)
				e := posture
				if s.explain {
					e = reader
				}
				r := one(t, e, aggregate.Device{ID: "d1", Serial: "S1"})
				checkStep(t, i, r, s)
			}
		})
	}
}

func checkStep(t *testing.T, i int, r aggregate.Result, s step) {
	t.Helper()
	if r.Score != s.want {
		t.Errorf("step %d: score %d, want %d (adjustments %+v)", i, r.Score, s.want, r.Explain().Adjustments)
	}
	adj := r.Explain().Adjustments
	if s.note == "" {
		if len(adj) != 0 {
			t.Errorf("step %d: adjustments %+v, want none", i, adj)
		}
		return
	}
	if len(adj) != 1 || adj[0].Kind != KindHysteresis || adj[0].From != s.folded || adj[0].To != s.want || !strings.Contains(adj[0].Note, s.note) {
		t.Errorf("step %d: adjustments %+v, want one hysteresis %d -> %d with note containing %q", i, adj, s.folded, s.want, s.note)
	}
}

func TestHysteresisWithoutDeviceID(t *testing.T) {
	eng := newFakeEngine()
	a := newAdjuster(t, Config{Hysteresis: &HysteresisConfig{Threshold: 50, HoldEvaluations: 3}, States: memoryStates(t)})
	reader := a.Engine(eng, false)
	for _, tc := range []struct {
		name   string
		folded int
		note   string
	}{
		{"high: nothing to say", 80, ""},
		{"low: says the state was not read", 20, "not applied: no device_id given"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng.set("S9", tc.folded, false)
			r := one(t, reader, aggregate.Device{Serial: "S9"})
			checkStep(t, 0, r, step{folded: tc.folded, want: tc.folded, note: tc.note})
		})
	}
}

func TestHysteresisConfigProblems(t *testing.T) {
	tests := []struct {
		name string
		cfg  HysteresisConfig
		want []Problem
	}{
		{"valid by evaluations", HysteresisConfig{Threshold: 50, HoldEvaluations: 2}, nil},
		{"valid by time", HysteresisConfig{Threshold: 100, HoldFor: conf.Duration(time.Minute)}, nil},
		{"threshold 0", HysteresisConfig{Threshold: 0, HoldEvaluations: 2}, []Problem{{"threshold", "must be 1..100, got 0"}}},
		{"threshold 101", HysteresisConfig{Threshold: 101, HoldEvaluations: 2}, []Problem{{"threshold", "must be 1..100, got 101"}}},
		{"one evaluation", HysteresisConfig{Threshold: 50, HoldEvaluations: 1}, []Problem{{"hold_evaluations", "must be >= 2 (1 would hold nothing), or 0 to hold by hold_for alone, got 1"}}},
		{"negative hold_for", HysteresisConfig{Threshold: 50, HoldEvaluations: 2, HoldFor: conf.Duration(-time.Minute)}, []Problem{{"hold_for", "must be > 0, got -1m0s"}}},
		{"neither", HysteresisConfig{Threshold: 50}, []Problem{{"", "needs hold_evaluations, hold_for or both"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.cfg.Problems()
			if len(got) != len(tc.want) {
				t.Fatalf("problems %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("problem %d: %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

package history

import (
	"testing"
	"time"

	"github.com/postured/postured/aggregate"
)

// TestAdjustmentsAreCauses: a score changed by an override or by
// hysteresis, with no provider field moving, is put down to the
// adjustment.
func TestAdjustmentsAreCauses(t *testing.T) {
	at := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	store, err := NewMemory(MemoryConfig{MaxDevices: 10, MaxBytes: 1 << 20, MaxChanges: 10, Retention: time.Hour, Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := New(Config{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	result := func(score int, adj ...aggregate.Adjustment) aggregate.Result {
		r := aggregate.ResultOf(aggregate.Explanation{DeviceID: "d1", Score: 20, Decision: "weighted mean of 1 provider(s)",
			Providers: []aggregate.ProviderDetail{{Provider: "intune", Outcome: aggregate.OutcomeMatched, RecordID: "i1", Reason: "complianceState=noncompliant", Score: 20, Counted: true}}})
		for _, a := range adj {
			r.Adjust(a)
		}
		if r.Score != score {
			t.Fatalf("result score %d, want %d", r.Score, score)
		}
		return r
	}
	held := aggregate.Adjustment{Kind: "hysteresis", From: 20, To: 90, Note: "held at the last good score 90"}
	released := aggregate.Adjustment{Kind: "hysteresis", From: 20, To: 20, Note: "released: 3 consecutive low evaluations reached hold_evaluations 3"}
	override := aggregate.Adjustment{Kind: "override", From: 20, To: 100, Note: "config override on serial until 2026-12-01T00:00:00Z: loaner"}
	for _, r := range []aggregate.Result{result(90, held), result(20, released), result(100, override)} {
		if err := rec.Record(t.Context(), at, []aggregate.Result{r}); err != nil {
			t.Fatal(err)
		}
	}
	d, ok, err := rec.Device(t.Context(), "d1")
	if err != nil || !ok || len(d.Changes) != 2 {
		t.Fatalf("device %+v, %t, %v: want two changes", d, ok, err)
	}
	want := [][]string{
		{`decision "weighted mean of 1 provider(s); hysteresis: released: 3 consecutive low evaluations reached hold_evaluations 3" -> "weighted mean of 1 provider(s); override: config override on serial until 2026-12-01T00:00:00Z: loaner"`},
		{`decision "weighted mean of 1 provider(s); hysteresis: held at the last good score 90" -> "weighted mean of 1 provider(s); hysteresis: released: 3 consecutive low evaluations reached hold_evaluations 3"`},
	}
	for i, c := range d.Changes {
		if len(c.Causes) != 1 || c.Causes[0] != want[i][0] {
			t.Errorf("change %d (%d -> %d): causes %q, want %q", i, c.OldScore, c.NewScore, c.Causes, want[i])
		}
	}
}

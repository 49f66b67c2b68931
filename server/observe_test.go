package server

import (
	"context"
	"testing"
)

type recordingObserver struct{ batches []Batch }

func (r *recordingObserver) ObserveBatch(_ context.Context, b Batch) {
	r.batches = append(r.batches, b)
}

func TestObserversSeeEveryAnsweredBatch(t *testing.T) {
	first, second := &recordingObserver{}, &recordingObserver{}
	ts := newInsecure(t, func(c *Config) { c.Observers = []BatchObserver{first, second} })

	if w := ts.do("POST", "/posture", devicesJSON(3), "X-Request-Id", "req-1"); w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	// Refused and empty batches answer nothing, so nothing is observed.
	ts.do("POST", "/posture", `{"devices":[{"device_id":1}]}`)
	ts.do("POST", "/posture", `{"devices":[]}`)

	for name, o := range map[string]*recordingObserver{"first": first, "second": second} {
		if len(o.batches) != 1 {
			t.Fatalf("%s observer saw %d batches, want 1", name, len(o.batches))
		}
		b := o.batches[0]
		if b.RequestID != "req-1" || len(b.Devices) != 3 || len(b.Results) != 3 || b.Stats.Devices != 3 || b.At.IsZero() {
			t.Errorf("%s observer saw %+v", name, b)
		}
		if b.Results[2].DeviceID != "d2" || b.Results[2].S2SID != "v-S2" {
			t.Errorf("%s observer: results out of order: %+v", name, b.Results)
		}
	}
}

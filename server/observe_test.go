package server

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
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

	// The server's own observer: every answered score lands in its decile
	// (the echo engine scores len(serial), 2 here).
	h := histogramOf(t, ts.reg, "postured_device_scores")
	if h.GetSampleCount() != 3 || h.GetBucket()[0].GetUpperBound() != 9 || h.GetBucket()[0].GetCumulativeCount() != 3 {
		t.Errorf("postured_device_scores = %v, want 3 answers in le=9", h)
	}
}

func histogramOf(t *testing.T, reg *prometheus.Registry, name string) *dto.Histogram {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()[0].GetHistogram()
		}
	}
	t.Fatalf("no metric %s", name)
	return nil
}

package statuspage

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/server"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var t0 = time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)

// scored is a device answered with a score, matched by provider p on
// kind (or unmatched with kind "").
type scored struct {
	id    string
	score int
	kind  string
}

// batch builds a batch the server would hand observers: provider "intune"
// asked about every device.
func batch(at time.Time, stats aggregate.Stats, ds ...scored) server.Batch {
	b := server.Batch{At: at, Stats: stats}
	for _, d := range ds {
		b.Devices = append(b.Devices, aggregate.Device{ID: d.id})
		outcome := aggregate.OutcomeUnmatched
		if d.kind != "" {
			outcome = aggregate.OutcomeMatched
		}
		b.Results = append(b.Results, aggregate.ResultOf(aggregate.Explanation{DeviceID: d.id, Score: d.score,
			Providers: []aggregate.ProviderDetail{{Provider: "intune", MatchedOn: d.kind, Outcome: outcome}},
		}))
	}
	b.Stats.Devices = len(ds)
	return b
}

func newRecorder(t *testing.T, cfg RecorderConfig) *Recorder {
	t.Helper()
	r, err := NewRecorder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRecorderKeepsTheLastBatches(t *testing.T) {
	for _, n := range []int{1, 3, 7} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			r := newRecorder(t, RecorderConfig{Batches: 3})
			for i := range n {
				r.ObserveBatch(t.Context(), batch(t0.Add(time.Duration(i)*time.Second), aggregate.Stats{Duration: time.Duration(i)}, scored{id: "d", score: 1}))
			}
			var got []time.Duration
			for _, b := range r.Snapshot().Batches {
				got = append(got, b.Duration)
			}
			var want []time.Duration
			for i := n - 1; i >= 0 && i >= n-3; i-- {
				want = append(want, time.Duration(i))
			}
			if !slices.Equal(got, want) {
				t.Errorf("batches (by duration) %v, want %v, newest first", got, want)
			}
		})
	}
}

func TestRecorderScoreDistribution(t *testing.T) {
	tests := []struct {
		name    string
		max     int
		batches [][]scored
		want    [10]int
	}{
		{"deciles and the edges", 10, [][]scored{{{"a", 0, ""}, {"b", 9, ""}, {"c", 10, ""}, {"d", 89, ""}, {"e", 90, ""}, {"f", 100, ""}}},
			[10]int{2, 1, 0, 0, 0, 0, 0, 0, 1, 2}},
		{"a device counts once, at its latest score", 10, [][]scored{{{"a", 5, ""}}, {{"a", 75, ""}}},
			[10]int{0, 0, 0, 0, 0, 0, 0, 1, 0, 0}},
		{"past the bound the first seen is forgotten", 2, [][]scored{{{"a", 5, ""}, {"b", 15, ""}}, {{"a", 25, ""}, {"c", 35, ""}}},
			[10]int{0, 1, 0, 1, 0, 0, 0, 0, 0, 0}}, // a evicted (first seen), though just updated
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRecorder(t, RecorderConfig{MaxDevices: tc.max})
			for _, ds := range tc.batches {
				r.ObserveBatch(t.Context(), batch(t0, aggregate.Stats{}, ds...))
			}
			if got := r.Snapshot().Deciles; got != tc.want {
				t.Errorf("deciles %v, want %v", got, tc.want)
			}
			if n := len(r.scores); n > tc.max {
				t.Errorf("%d devices kept, bound %d", n, tc.max)
			}
		})
	}
}

// The per-provider counters cover the window and nothing older.
func TestRecorderWindow(t *testing.T) {
	clk := &clock{t: t0}
	r := newRecorder(t, RecorderConfig{Now: clk.Now})
	stats := aggregate.Stats{Errors: map[string]int{"intune": 2}}
	// Every vendor answer is reported; only 429s count.
	answer := func(statuses ...int) {
		for _, s := range statuses {
			r.ObserveResponse("intune", s)
		}
	}
	r.ObserveBatch(t.Context(), batch(clk.Now(), stats, scored{"a", 90, "serial"}, scored{"b", 80, "mac"}, scored{"c", 0, ""}))
	answer(200, 429, 503)
	clk.Advance(30 * time.Minute)
	r.ObserveBatch(t.Context(), batch(clk.Now(), stats, scored{"a", 90, "serial"}))
	answer(429, 200)

	want := ProviderCounts{Devices: 4, Errors: 4, RateLimited: 2, MatchedBy: map[string]int{"serial": 2, "mac": 1}}
	check := func(step string, want ProviderCounts) {
		t.Helper()
		got := r.Snapshot().Providers["intune"]
		if got.Devices != want.Devices || got.Errors != want.Errors || got.RateLimited != want.RateLimited ||
			fmt.Sprint(got.MatchedBy) != fmt.Sprint(want.MatchedBy) {
			t.Errorf("%s: %+v, want %+v", step, got, want)
		}
	}
	check("both batches in the hour", want)
	clk.Advance(31 * time.Minute) // the first batch is 61 minutes old
	check("first batch out", ProviderCounts{Devices: 1, Errors: 2, RateLimited: 1, MatchedBy: map[string]int{"serial": 1}})
	clk.Advance(time.Hour)
	check("both out", ProviderCounts{})
}

func TestNewRecorderRefuses(t *testing.T) {
	for _, tc := range []struct {
		cfg  RecorderConfig
		want string
	}{
		{RecorderConfig{Batches: -1}, "status recorder: batches must be >= 0, got -1"},
		{RecorderConfig{MaxDevices: -1}, "status recorder: max devices must be >= 0, got -1"},
		{RecorderConfig{Window: -time.Minute}, "status recorder: window must be >= 0, got -1m0s"},
		{RecorderConfig{Window: time.Second}, "status recorder: window must be at least a minute"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			if _, err := NewRecorder(tc.cfg); err == nil || err.Error() != tc.want {
				t.Errorf("err = %v, want %s", err, tc.want)
			}
		})
	}
}

// The recorder keeps no device_id: a batch's ids point into the request's
// decoded body, and a third copy of every id of a 100k fleet would be
// ~13 MB. An id observed must be collectable once the batch is gone.
func TestRecorderKeepsNoDeviceID(t *testing.T) {
	r := newRecorder(t, RecorderConfig{})
	collected := make(chan struct{})
	func() {
		buf := []byte("0b7e6f4c-2d3a-4c1e-9f00-1234567890ab")
		runtime.AddCleanup(&buf[0], func(ch chan struct{}) { close(ch) }, collected)
		id := unsafe.String(&buf[0], len(buf))
		r.ObserveBatch(t.Context(), batch(t0, aggregate.Stats{}, scored{id, 80, "serial"}))
	}()
	deadline := time.After(10 * time.Second) // a failure bound, not an ordering
	for {
		runtime.GC()
		select {
		case <-collected:
			if got := r.Snapshot().Deciles[8]; got != 1 {
				t.Fatalf("decile 80-89 holds %d devices, want 1", got)
			}
			return
		case <-deadline:
			t.Fatal("the recorder still holds the batch's device_id")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

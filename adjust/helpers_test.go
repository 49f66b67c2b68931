package adjust

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/cache"
)

// fakeEngine folds every device to the score set for its device_id (or
// serial, for a device without one), with a crowdstrike detail that says
// whether the host is contained.
type fakeEngine struct {
	mu        sync.Mutex
	scores    map[string]int
	contained map[string]bool
}

func newFakeEngine() *fakeEngine {
	return &fakeEngine{scores: map[string]int{}, contained: map[string]bool{}}
}

func (f *fakeEngine) set(id string, score int, contained bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scores[id], f.contained[id] = score, contained
}

func (f *fakeEngine) Evaluate(_ context.Context, devices []aggregate.Device) ([]aggregate.Result, aggregate.Stats) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]aggregate.Result, len(devices))
	for i, d := range devices {
		key := d.ID
		if key == "" {
			key = d.Serial
		}
		s := f.scores[key]
		out[i] = aggregate.ResultOf(aggregate.Explanation{DeviceID: d.ID, Score: s,
			Providers: []aggregate.ProviderDetail{{Provider: "crowdstrike", Outcome: aggregate.OutcomeMatched, Score: s, Counted: true, Contained: f.contained[key]}}})
	}
	return out, aggregate.Stats{Devices: len(devices)}
}

// clock is an injected time source tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func memoryStates(t *testing.T) cache.Store[State] {
	t.Helper()
	m, err := cache.NewMemory[State](cache.MemoryConfig{MaxEntries: 100})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newAdjuster(t *testing.T, cfg Config) *Adjuster {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func one(t *testing.T, e *Engine, d aggregate.Device) aggregate.Result {
	t.Helper()
	res, _ := e.Evaluate(t.Context(), []aggregate.Device{d})
	if len(res) != 1 {
		t.Fatalf("%d results", len(res))
	}
	if res[0].Score != res[0].Explain().Score {
		t.Fatalf("result score %d, explanation score %d", res[0].Score, res[0].Explain().Score)
	}
	return res[0]
}

func logger(w *syncBuffer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

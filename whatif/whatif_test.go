package whatif

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/cache"
	"github.com/postured/postured/providers"
	"github.com/postured/postured/server"
)

func result(id string, score int, providers ...aggregate.ProviderDetail) aggregate.Result {
	return aggregate.ResultOf(aggregate.Explanation{DeviceID: id, Score: score, Providers: providers,
		Decision: fmt.Sprintf("weighted mean of %d provider(s)", len(providers))})
}

func detail(name string, score int, weight float64, counted bool, note string) aggregate.ProviderDetail {
	out := aggregate.OutcomeMatched
	if !counted {
		out = aggregate.OutcomeUnmatched
	}
	return aggregate.ProviderDetail{Provider: name, Score: score, Weight: weight, Counted: counted, Outcome: out, Note: note}
}

func TestCompare(t *testing.T) {
	current := []aggregate.Result{
		result("a", 80, detail("jamf", 100, 2, true, ""), detail("cs", 60, 2, true, "")),
		result("b", 40, detail("jamf", 40, 1, true, "")),
		result("c", 70, detail("jamf", 70, 1, true, "")),
		result("d", 75, detail("jamf", 75, 1, true, "")),
	}
	proposed := []aggregate.Result{
		result("a", 30, detail("jamf", 0, 2, true, "last seen 9d ago, over max_last_seen 7d: scores 0"), detail("cs", 60, 2, true, "")),
		result("b", 90, detail("jamf", 40, 1, true, ""), detail("intune", 100, 3, true, "")),
		result("c", 70, detail("jamf", 70, 1, true, "")),
		result("d", 72, detail("jamf", 72, 1, true, "")),
	}
	r, err := Compare(current, proposed, []int{50, 70, 80})
	if err != nil {
		t.Fatal(err)
	}
	if r.Devices != 4 || r.Changed != 3 || r.Raised != 1 || r.Lowered != 2 {
		t.Fatalf("devices %d changed %d raised %d lowered %d, want 4 3 1 2", r.Devices, r.Changed, r.Raised, r.Lowered)
	}
	ids := func(chs []Change) string {
		var s []string
		for _, c := range chs {
			s = append(s, fmt.Sprintf("%s:%d->%d", c.DeviceID, c.From, c.To))
		}
		return strings.Join(s, ",")
	}
	want := map[int][2]string{
		50: {"a:80->30", "b:40->90"},
		70: {"a:80->30", "b:40->90"},
		80: {"a:80->30", "b:40->90"},
	}
	for _, c := range r.Thresholds {
		if got := [2]string{ids(c.Down), ids(c.Up)}; got != want[c.Threshold] {
			t.Errorf("threshold %d: down/up %q, want %q", c.Threshold, got, want[c.Threshold])
		}
	}
	if got := r.Thresholds[0].Down[0].Reason; got != "jamf: 100 x2 -> 0 x2 (last seen 9d ago, over max_last_seen 7d: scores 0)" {
		t.Errorf("reason %q", got)
	}
	if got := r.Thresholds[0].Up[0].Reason; got != "intune: new provider, 100 x3; decision: weighted mean of 2 provider(s)" {
		t.Errorf("reason %q", got)
	}

	if _, err := Compare(current, proposed[:3], nil); err == nil {
		t.Error("results of different lengths compared")
	}
	if _, err := Compare(current[:1], proposed[1:2], nil); err == nil || !strings.Contains(err.Error(), `"a" under one policy and "b"`) {
		t.Errorf("misaligned results: err %v", err)
	}
}

func TestReasonRemovedProvider(t *testing.T) {
	got := Reason(result("a", 50, detail("jamf", 50, 1, true, ""), detail("cs", 0, 1, false, "")).Explain(),
		result("a", 50, detail("jamf", 50, 1, true, "")).Explain())
	if want := "cs: removed (was unmatched, not counted); decision: weighted mean of 1 provider(s)"; got != want {
		t.Errorf("reason %q, want %q", got, want)
	}
}

// vendor is a provider that must never be called: what-if answers from
// the cache only.
type vendor struct {
	kinds []providers.Kind
	calls int
}

func (v *vendor) Lookup(context.Context, providers.Query) ([]providers.Record, error) {
	v.calls++
	return []providers.Record{{ID: "from-the-vendor", Serials: []string{"S1"}, Score: 1}}, nil
}

func (v *vendor) Supports(k providers.Kind) bool {
	for _, s := range v.kinds {
		if s == k {
			return true
		}
	}
	return false
}

func TestFrozenAnswersFromTheCacheOnly(t *testing.T) {
	// No Cleanup: no janitor goroutine to outlive the test.
	store, err := cache.NewMemory[[]providers.Record](cache.MemoryConfig{MaxEntries: 100})
	if err != nil {
		t.Fatal(err)
	}
	v := &vendor{kinds: []providers.Kind{providers.KindSerial, providers.KindHostname}}
	live := aggregate.Source{Name: "v", Weight: 1, OnError: providers.OnErrorExclude, Provider: v}
	newEngine := func(src aggregate.Source) *aggregate.Engine {
		e, err := aggregate.New(aggregate.Config{Sources: []aggregate.Source{src}, Deadline: time.Second, Store: store, CacheTTL: time.Hour, NegativeTTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	// The live engine fills the cache for S1.
	if res, _ := newEngine(live).Evaluate(t.Context(), []aggregate.Device{{ID: "a", Serial: "S1"}}); res[0].S2SID != "from-the-vendor" {
		t.Fatalf("live: %+v", res[0])
	}
	v.calls = 0
	frozen := newEngine(Frozen(live))
	res, _ := frozen.Evaluate(t.Context(), []aggregate.Device{{ID: "a", Serial: "S1"}, {ID: "b", Serial: "S2"}, {ID: "c", MAC: "02:00:00:00:00:01"}})
	if v.calls != 0 {
		t.Fatalf("%d vendor calls from a frozen engine", v.calls)
	}
	if res[0].S2SID != "from-the-vendor" || res[0].Score != 1 {
		t.Errorf("cached device: %+v", res[0])
	}
	if p := res[1].Explain().Providers[0]; p.Outcome != aggregate.OutcomeError || !strings.Contains(p.Error, ErrNotCached.Error()) {
		t.Errorf("uncached device: %+v, want an error saying it is not cached", p)
	}
	if p := res[2].Explain().Providers[0]; p.Outcome != aggregate.OutcomeUnmatched || !strings.Contains(p.Note, "cannot look up by mac") {
		t.Errorf("kind the vendor cannot query: %+v, want it said, as live", p)
	}

	absent := newEngine(Absent(aggregate.Source{Name: "new", Weight: 1, OnError: providers.OnErrorZero}))
	res, _ = absent.Evaluate(t.Context(), []aggregate.Device{{ID: "a", Serial: "S1"}})
	if p := res[0].Explain().Providers[0]; !p.Counted || p.Score != 0 || !strings.Contains(p.Error, "provider new is not in the running config") {
		t.Errorf("absent provider with on_error: zero: %+v", p)
	}
}

// fixedEngine scores every device with one score.
type fixedEngine struct{ score int }

func (f fixedEngine) Evaluate(_ context.Context, ds []aggregate.Device) ([]aggregate.Result, aggregate.Stats) {
	out := make([]aggregate.Result, len(ds))
	for i, d := range ds {
		out[i] = aggregate.Result{DeviceID: d.ID, Score: f.score}
	}
	return out, aggregate.Stats{Devices: len(ds)}
}

func TestShadowCountsAndNeverBlocks(t *testing.T) {
	reg := prometheus.NewRegistry()
	sh, err := NewShadow(ShadowConfig{Registry: reg, Policies: []ShadowPolicy{{Name: "strict", Engine: fixedEngine{50}}, {Name: "same", Engine: fixedEngine{70}}}})
	if err != nil {
		t.Fatal(err)
	}
	b := server.Batch{
		Devices: []aggregate.Device{{ID: "a"}, {ID: "b"}, {ID: "c"}},
		Results: []aggregate.Result{{DeviceID: "a", Score: 70}, {DeviceID: "b", Score: 40}, {DeviceID: "c", Score: 70}},
	}
	sh.ObserveBatch(t.Context(), b)
	// Run is not running: the queue holds one batch and the next is
	// skipped, never waited for.
	sh.ObserveBatch(t.Context(), b)
	if got := testutil.ToFloat64(sh.skipped); got != 1 {
		t.Errorf("skipped %v, want 1", got)
	}
	sh.score(t.Context(), <-sh.jobs)
	for _, tc := range []struct {
		policy, dir string
		want        float64
	}{{"strict", "down", 2}, {"strict", "up", 1}, {"same", "down", 0}, {"same", "up", 1}} {
		if got := testutil.ToFloat64(sh.delta.WithLabelValues(tc.policy, tc.dir)); got != tc.want {
			t.Errorf("postured_shadow_delta_total{policy=%q,direction=%q} = %v, want %v", tc.policy, tc.dir, got, tc.want)
		}
	}
	if got := testutil.ToFloat64(sh.devices.WithLabelValues("strict")); got != 3 {
		t.Errorf("devices scored %v, want 3", got)
	}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { sh.Run(ctx); close(done) }()
	cancel()
	<-done

	if _, err := NewShadow(ShadowConfig{}); err == nil {
		t.Error("a shadow without policies was built")
	}
	if _, err := NewShadow(ShadowConfig{Registry: reg, Policies: []ShadowPolicy{{Name: "x", Engine: fixedEngine{}}}}); err == nil {
		t.Error("registering the metrics twice did not fail")
	}
}

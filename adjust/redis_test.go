package adjust

import (
	"testing"
	"time"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/cache"
	"github.com/postured/postured/internal/redistest"
)

// TestRedisSharedAcrossReplicas runs two replicas, each with its own Redis
// clients, against one Redis (TLS, an ACL user limited to postured:*):
// the low evaluations one replica counts continue on the other, and an
// override one adds applies on both.
func TestRedisSharedAcrossReplicas(t *testing.T) {
	srv := redistest.StartTLS(t, "postured:*")
	clk := newClock()
	eng := newFakeEngine()
	replica := func() (*Engine, *Engine, *RedisOverrides) {
		states, err := cache.NewRedis[State](cache.RedisConfig{URL: srv.URL, TLSCAFile: srv.CAFile, Prefix: "postured:hysteresis:"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = states.Close() })
		rt, err := NewRedisOverrides(RedisConfig{URL: srv.URL, TLSCAFile: srv.CAFile, Key: "postured:overrides", Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = rt.Close() })
		a := newAdjuster(t, Config{Runtime: rt, Hysteresis: &HysteresisConfig{Threshold: 50, HoldEvaluations: 3}, States: states, Now: clk.Now})
		return a.Engine(eng, true), a.Engine(eng, false), rt
	}
	p1, r1, rt1 := replica()
	p2, r2, _ := replica()
	d := aggregate.Device{ID: "d1", Serial: "S1"}

	steps := []struct {
		name   string
		e      *Engine
		folded int
		want   step
	}{
		{"replica 1 sees it good", p1, 90, step{folded: 90, want: 90}},
		{"replica 2 holds the first low", p2, 10, step{folded: 10, want: 90, note: "low evaluation 1 of hold_evaluations 3"}},
		{"replica 1 explains without advancing", r1, 10, step{folded: 10, want: 90, note: "low evaluation 2 of hold_evaluations 3"}},
		{"replica 1 holds the second", p1, 10, step{folded: 10, want: 90, note: "low evaluation 2 of hold_evaluations 3"}},
		{"replica 2 explains the release ahead", r2, 10, step{folded: 10, want: 10, note: "released: 3 consecutive"}},
		{"replica 2 releases on the third", p2, 10, step{folded: 10, want: 10, note: "released: 3 consecutive"}},
	}
	for i, s := range steps {
		eng.set("d1", s.folded, false)
		r := one(t, s.e, d)
		checkStep(t, i, r, s.want)
	}

	if err := rt1.Add(t.Context(), Override{Kind: KindSerial, Value: "S1", Score: 100, Until: clk.Now().Add(time.Hour), Reason: "loaner"}); err != nil {
		t.Fatal(err)
	}
	for name, e := range map[string]*Engine{"replica 1": p1, "replica 2": p2} {
		if r := one(t, e, d); r.Score != 100 || len(r.Explain().Adjustments) != 1 || r.Explain().Adjustments[0].Note != "runtime override on serial until 2026-11-30T10:00:00Z: loaner" {
			t.Errorf("%s: score %d, adjustments %+v: want the runtime override", name, r.Score, r.Explain().Adjustments)
		}
	}
}

func TestRedisOverrides(t *testing.T) {
	srv := redistest.StartTLS(t, "postured:*")
	clk := newClock()
	rt, err := NewRedisOverrides(RedisConfig{URL: srv.URL, TLSCAFile: srv.CAFile, Key: "postured:overrides", Max: 2, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	ctx := t.Context()
	keys := func() []string {
		t.Helper()
		all, err := rt.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ks []string
		for _, o := range all {
			if o.Source != SourceRuntime {
				t.Errorf("%s: source %q", o.Key(), o.Source)
			}
			ks = append(ks, o.Key())
		}
		return ks
	}
	now := clk.Now()
	if err := rt.Add(ctx, Override{Kind: KindSerial, Value: "S1", Score: 100, Until: now, Reason: "r"}); err == nil || err.Error() != "overrides: add: until 2026-11-30T09:00:00Z is not in the future" {
		t.Errorf("adding an expired override: %v", err)
	}
	for _, o := range []Override{
		{Kind: KindSerial, Value: "S1", Score: 100, Until: now.Add(time.Minute), Reason: "short"},
		{Kind: KindEmail, Value: "a@example.com", Score: 80, Until: now.Add(time.Hour), Reason: "long"},
		{Kind: KindSerial, Value: "S1", Score: 90, Until: now.Add(2 * time.Minute), Reason: "replaced"},
	} {
		if err := rt.Add(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	all, err := rt.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].Key() != "email:a@example.com" || all[1].Score != 90 || all[1].Reason != "replaced" || !all[1].Added.Equal(now) {
		t.Fatalf("list %+v", all)
	}
	// An expired override stays listed until the next add prunes it.
	clk.Advance(5 * time.Minute)
	if ks := keys(); len(ks) != 2 {
		t.Errorf("before the next add: %v", ks)
	}
	if err := rt.Add(ctx, Override{Kind: KindDeviceID, Value: "dev-1", Score: 0, Until: clk.Now().Add(time.Hour), Reason: "lost"}); err != nil {
		t.Fatal(err)
	}
	if ks := keys(); len(ks) != 2 || ks[0] != "device_id:dev-1" || ks[1] != "email:a@example.com" {
		t.Errorf("after pruning: %v", ks)
	}
	// Two in force, the most allowed: a third is refused, replacing one is not.
	if err := rt.Add(ctx, Override{Kind: KindSerial, Value: "S3", Score: 1, Until: clk.Now().Add(time.Hour), Reason: "r"}); err == nil ||
		err.Error() != "overrides: add: 2 overrides in force, the most allowed; remove some first" {
		t.Errorf("third override: %v", err)
	}
	if err := rt.Add(ctx, Override{Kind: KindDeviceID, Value: "dev-1", Score: 5, Until: clk.Now().Add(time.Hour), Reason: "lost, score 5"}); err != nil {
		t.Errorf("replacing one at the bound: %v", err)
	}
	for _, tc := range []struct {
		key   string
		found bool
	}{{"device_id:dev-1", true}, {"device_id:dev-1", false}, {"serial:NOPE", false}} {
		found, err := rt.Remove(ctx, tc.key)
		if err != nil || found != tc.found {
			t.Errorf("remove %s: %t, %v; want %t", tc.key, found, err, tc.found)
		}
	}
	if ks := keys(); len(ks) != 1 || ks[0] != "email:a@example.com" {
		t.Errorf("after remove: %v", ks)
	}
}

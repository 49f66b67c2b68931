package cache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// backend is a fake vendor: it knows some keys and counts fetches.
type backend struct {
	known   map[string]int
	err     atomic.Pointer[error]
	calls   atomic.Int64
	asked   atomic.Int64
	release chan struct{} // when set, fetch blocks until closed
}

func (b *backend) fetch(ctx context.Context, keys []string) (map[string]int, error) {
	b.calls.Add(1)
	b.asked.Add(int64(len(keys)))
	if b.release != nil {
		select {
		case <-b.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if e := b.err.Load(); e != nil {
		return nil, *e
	}
	out := map[string]int{}
	for _, k := range keys {
		if v, ok := b.known[k]; ok {
			out[k] = v
		}
	}
	return out, nil
}

func newTestLoader(t *testing.T, c *clock) *Loader[int] {
	t.Helper()
	l, err := NewLoader(LoaderConfig[int]{
		// No janitor: it is a goroutine that would outlive a synctest
		// bubble, and expiry here is the Loader's, on the fake clock.
		Store: newTestMemory[int](t, MemoryConfig{}), Prefix: "p|",
		TTL: time.Minute, StaleTTL: time.Hour, NegativeTTL: 10 * time.Second,
		FetchTimeout: time.Second, Now: c.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLoaderFreshnessAndNegativeCaching(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := newTestLoader(t, c)
	b := &backend{known: map[string]int{"a": 1, "b": 2}}
	steps := []struct {
		name      string
		advance   time.Duration
		keys      []string
		wantCalls int64
		wantAsked int64
	}{
		{"cold: one fetch for all keys", 0, []string{"a", "b", "x", "a"}, 1, 3},
		{"warm: nothing fetched", 5 * time.Second, []string{"a", "b", "x"}, 1, 3},
		{"negative expired, positives fresh", 10 * time.Second, []string{"a", "b", "x"}, 2, 4},
		{"positives expired", time.Minute, []string{"a", "b"}, 3, 6},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			c.add(s.advance)
			res := l.Load(context.Background(), s.keys, b.fetch)
			if res["a"].Value != 1 || !res["a"].Found || res["b"].Value != 2 {
				t.Errorf("results %+v", res)
			}
			if r, ok := res["x"]; ok && (r.Found || r.Err != nil) {
				t.Errorf("x = %+v, want not found", r)
			}
			if b.calls.Load() != s.wantCalls || b.asked.Load() != s.wantAsked {
				t.Errorf("calls %d asked %d, want %d %d", b.calls.Load(), b.asked.Load(), s.wantCalls, s.wantAsked)
			}
		})
	}
}

func TestLoaderStaleOnErrorAndErrorsNotCached(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := newTestLoader(t, c)
	b := &backend{known: map[string]int{"a": 1}}
	l.Load(context.Background(), []string{"a"}, b.fetch)

	down := errors.New("vendor down")
	b.err.Store(&down)
	c.add(2 * time.Minute)
	res := l.Load(context.Background(), []string{"a", "new"}, b.fetch)
	if r := res["a"]; !r.Stale || !r.Found || r.Value != 1 || !errors.Is(r.Err, down) {
		t.Errorf("a = %+v, want stale 1 with the error", r)
	}
	if r := res["new"]; r.Found || !errors.Is(r.Err, down) {
		t.Errorf("new = %+v, want the error", r)
	}

	b.err.Store(nil)
	calls := b.calls.Load()
	res = l.Load(context.Background(), []string{"new"}, b.fetch)
	if b.calls.Load() != calls+1 || res["new"].Err != nil {
		t.Errorf("error was cached: %+v after %d calls", res["new"], b.calls.Load()-calls)
	}

	c.add(2 * time.Hour) // beyond ttl+stale_ttl: gone
	b.err.Store(&down)
	if r := l.Load(context.Background(), []string{"a"}, b.fetch)["a"]; r.Stale || r.Found {
		t.Errorf("after stale_ttl: %+v", r)
	}
}

func TestLoaderCollapsesConcurrentFetches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		l := newTestLoader(t, c)
		b := &backend{known: map[string]int{"a": 1, "b": 2, "c": 3}, release: make(chan struct{})}
		var wg sync.WaitGroup
		results := make([]map[string]Result[int], 5)
		for i := range results {
			wg.Go(func() { results[i] = l.Load(context.Background(), []string{"a", "b", "c"}, b.fetch) })
		}
		// Every load is now blocked: one fetching, the others waiting on
		// its flight.
		synctest.Wait()
		if n := b.calls.Load(); n != 1 {
			t.Fatalf("%d fetches in flight for 5 concurrent identical loads, want 1", n)
		}
		close(b.release)
		wg.Wait()
		if n := b.calls.Load(); n != 1 {
			t.Errorf("%d fetches for 5 concurrent identical loads, want 1", n)
		}
		for i, r := range results {
			if r["a"].Value != 1 || r["c"].Value != 3 || !r["c"].Found || r["c"].Err != nil {
				t.Errorf("load %d: %+v", i, r)
			}
		}
	})
}

func TestLoaderPanicIsAnError(t *testing.T) {
	l := newTestLoader(t, &clock{t: time.Now()})
	res := l.Load(context.Background(), []string{"a"}, func(context.Context, []string) (map[string]int, error) {
		panic("boom")
	})
	if r := res["a"]; r.Err == nil || !strings.Contains(r.Err.Error(), "panicked") {
		t.Errorf("got %+v", r)
	}
	// The key is not stuck in flight.
	res = l.Load(context.Background(), []string{"a"}, func(context.Context, []string) (map[string]int, error) {
		return map[string]int{"a": 7}, nil
	})
	if res["a"].Value != 7 {
		t.Errorf("after panic: %+v", res["a"])
	}
}

func TestMemoryIsBounded(t *testing.T) {
	m := newTestMemory[int](t, MemoryConfig{MaxEntries: 2, Cleanup: time.Minute})
	ctx := context.Background()
	for _, k := range []string{"a", "b", "c"} {
		if err := m.Set(ctx, k, Entry[int]{Value: 1, Found: true}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, _ := m.Get(ctx, "c"); ok || m.Len() != 2 || m.Refused() != 1 {
		t.Errorf("len %d refused %d, c stored %v", m.Len(), m.Refused(), ok)
	}
	if err := m.Set(ctx, "a", Entry[int]{Value: 2, Found: true}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if e, _, _ := m.Get(ctx, "a"); e.Value != 2 {
		t.Errorf("existing key not updated when full: %+v", e)
	}
}

func TestNewLoaderValidates(t *testing.T) {
	for _, cfg := range []LoaderConfig[int]{
		{TTL: time.Minute, FetchTimeout: time.Second},
		{Store: newTestMemory[int](t, MemoryConfig{Cleanup: time.Minute}), FetchTimeout: time.Second},
		{Store: newTestMemory[int](t, MemoryConfig{Cleanup: time.Minute}), TTL: time.Minute},
	} {
		if _, err := NewLoader(cfg); err == nil {
			t.Errorf("NewLoader(%+v) accepted", cfg)
		}
	}
}

// A fetch that fails only some keys (KeyErrors) answers the others as
// usual, caches them, and never caches the failures: one rejected key must
// not fail or uncache the rest of a batch.
func TestLoaderKeyErrorsFailOnlyThoseKeys(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := newTestLoader(t, c)
	rejected := errors.New("vendor rejected the value")
	calls := 0
	fetch := func(_ context.Context, keys []string) (map[string]int, error) {
		calls++
		out := map[string]int{}
		ke := KeyErrors{}
		for _, k := range keys {
			switch k {
			case "bad":
				ke[k] = rejected
			case "a":
				out[k] = 1
			}
		}
		if len(ke) > 0 {
			return out, fmt.Errorf("lookup: %w", ke)
		}
		return out, nil
	}
	res := l.Load(context.Background(), []string{"a", "missing", "bad"}, fetch)
	if r := res["a"]; !r.Found || r.Value != 1 || r.Err != nil {
		t.Errorf("a = %+v, want found 1", r)
	}
	if r := res["missing"]; r.Found || r.Err != nil {
		t.Errorf("missing = %+v, want not found, no error", r)
	}
	if r := res["bad"]; r.Found || !errors.Is(r.Err, rejected) {
		t.Errorf("bad = %+v, want the rejection", r)
	}
	res = l.Load(context.Background(), []string{"a", "missing", "bad"}, fetch)
	if calls != 2 {
		t.Fatalf("%d fetches, want 2 (the second only for the failed key)", calls)
	}
	if !res["a"].Cached || !res["missing"].Cached || res["bad"].Cached {
		t.Errorf("second load: %+v; want a and missing cached, bad fetched again", res)
	}
}

func TestLoaderRefresh(t *testing.T) {
	for _, negativeTTL := range []time.Duration{10 * time.Second, 0} {
		t.Run(fmt.Sprintf("negative ttl %s", negativeTTL), func(t *testing.T) {
			c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			l, err := NewLoader(LoaderConfig[int]{
				Store: newTestMemory[int](t, MemoryConfig{}), Prefix: "p|",
				TTL: time.Minute, StaleTTL: time.Hour, NegativeTTL: negativeTTL, FetchTimeout: time.Second, Now: c.now,
			})
			if err != nil {
				t.Fatal(err)
			}
			b := &backend{known: map[string]int{"a": 1, "b": 2}}
			ctx := context.Background()
			l.Load(ctx, []string{"a", "b"}, b.fetch)
			// The vendor changes: a's record moves on, b's is gone.
			b.known = map[string]int{"a": 10}
			if res := l.Load(ctx, []string{"a", "b"}, b.fetch); res["a"].Value != 1 || res["b"].Value != 2 || b.calls.Load() != 1 {
				t.Fatalf("plain load within ttl: %+v after %d calls, want the cached answers", res, b.calls.Load())
			}
			res := l.Load(WithRefresh(ctx), []string{"a", "b"}, b.fetch)
			if res["a"].Value != 10 || res["a"].Cached || res["b"].Found || b.calls.Load() != 2 {
				t.Fatalf("refresh: %+v after %d calls, want the vendor's answers", res, b.calls.Load())
			}
			res = l.Load(ctx, []string{"a", "b"}, b.fetch)
			if !res["a"].Cached || res["a"].Value != 10 || res["b"].Found {
				t.Errorf("plain load after refresh: %+v, want the refreshed answers", res)
			}
			wantCalls := int64(2)
			if negativeTTL == 0 {
				wantCalls = 3 // b's old record was dropped, not remembered as absent
			}
			if b.calls.Load() != wantCalls {
				t.Errorf("%d calls, want %d", b.calls.Load(), wantCalls)
			}

			// A refresh the vendor fails keeps the cached record, stale.
			down := errors.New("vendor down")
			b.err.Store(&down)
			if r := l.Load(WithRefresh(ctx), []string{"a"}, b.fetch)["a"]; !r.Stale || r.Value != 10 || !errors.Is(r.Err, down) {
				t.Errorf("failed refresh: %+v, want stale 10 with the error", r)
			}
			if r := l.Load(ctx, []string{"a"}, b.fetch)["a"]; !r.Cached || r.Value != 10 {
				t.Errorf("after a failed refresh: %+v, want the cached record", r)
			}
		})
	}
}

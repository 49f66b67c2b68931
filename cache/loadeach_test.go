package cache

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"
)

// plainStore hides Memory's batch read, so the Loader reads it one Get a
// key, as it reads any Store.
type plainStore struct{ Store[int] }

// LoadEach answers every position of keys once, repeated keys included,
// the same from Memory's batch read of prefixed keys as from one Get a
// key: keys that are prefixes of one another must not read each other.
func TestLoaderLoadEach(t *testing.T) {
	down := errors.New("vendor down")
	type want struct {
		value         int
		found, cached bool
		stale, err    bool
	}
	steps := []struct {
		name    string
		advance time.Duration
		down    bool
		keys    []string
		want    []want
		calls   int64
	}{
		{name: "cold", keys: []string{"ab", "a", "x", "ab"},
			want:  []want{{value: 2, found: true}, {value: 1, found: true}, {}, {value: 2, found: true}},
			calls: 1},
		{name: "warm, with a longer key not stored", keys: []string{"abc", "ab", "a", "x", "a"},
			want: []want{{}, {value: 2, found: true, cached: true}, {value: 1, found: true, cached: true},
				{cached: true}, {value: 1, found: true, cached: true}},
			calls: 2},
		{name: "expired, vendor down", advance: 2 * time.Minute, down: true, keys: []string{"a", "x", "ab"},
			want:  []want{{value: 1, found: true, stale: true, err: true}, {err: true}, {value: 2, found: true, stale: true, err: true}},
			calls: 3},
	}
	stores := map[string]func(t *testing.T) Store[int]{
		"memory": func(t *testing.T) Store[int] { return newTestMemory[int](t, MemoryConfig{}) },
		"plain":  func(t *testing.T) Store[int] { return plainStore{newTestMemory[int](t, MemoryConfig{})} },
	}
	for name, store := range stores {
		t.Run(name, func(t *testing.T) {
			c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			l, err := NewLoader(LoaderConfig[int]{
				Store: store(t), Prefix: "p|", TTL: time.Minute, StaleTTL: time.Hour,
				NegativeTTL: time.Minute, FetchTimeout: time.Second, Now: c.now,
			})
			if err != nil {
				t.Fatal(err)
			}
			b := &backend{known: map[string]int{"a": 1, "ab": 2}}
			for _, s := range steps {
				c.add(s.advance)
				if s.down {
					b.err.Store(&down)
				}
				got := make([]*Result[int], len(s.keys))
				l.LoadEach(t.Context(), s.keys, b.fetch, func(i int, r Result[int]) {
					if got[i] != nil {
						t.Errorf("%s: position %d answered twice", s.name, i)
					}
					got[i] = &r
				})
				for i, w := range s.want {
					r := got[i]
					if r == nil {
						t.Errorf("%s: %s (position %d) not answered", s.name, s.keys[i], i)
						continue
					}
					if r.Value != w.value || r.Found != w.found || r.Cached != w.cached || r.Stale != w.stale || (r.Err != nil) != w.err {
						t.Errorf("%s: %s = %+v, want %+v", s.name, s.keys[i], *r, w)
					}
				}
				if n := b.calls.Load(); n != s.calls {
					t.Errorf("%s: %d fetches in all, want %d", s.name, n, s.calls)
				}
			}
			// ab, a, x; abc; a, x, ab: a repeated key is asked once.
			if n := b.asked.Load(); n != 7 {
				t.Errorf("%d keys asked, want 7", n)
			}
		})
	}
}

// A warm batch from Memory allocates nothing per key: no prefixed key
// strings, no maps of results (the old Load made three allocations a key).
func TestLoaderWarmLoadEachAllocations(t *testing.T) {
	l, err := NewLoader(LoaderConfig[int]{
		Store: newTestMemory[int](t, MemoryConfig{}), Prefix: "p|",
		TTL: time.Hour, NegativeTTL: time.Hour, FetchTimeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 1000)
	known := make(map[string]int)
	for i := range keys {
		keys[i] = "key-" + strconv.Itoa(i)
		if i%2 == 0 {
			known[keys[i]] = i
		}
	}
	b := &backend{known: known}
	fetch := FetchFunc[int](b.fetch)
	ctx := context.Background()
	sum := 0
	each := func(_ int, r Result[int]) { sum += r.Value }
	l.LoadEach(ctx, keys, fetch, each)
	// A few per call (the pool refilled after a collection); a thousand
	// keys would show as a thousand.
	const most = 10
	allocs := testing.AllocsPerRun(20, func() { l.LoadEach(ctx, keys, fetch, each) })
	if allocs > most || b.calls.Load() != 1 {
		t.Errorf("%.0f allocations for a warm batch of %d keys after %d fetches, want at most %d and 1 fetch", allocs, len(keys), b.calls.Load(), most)
	}
}

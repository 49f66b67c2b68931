package cache

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// manualClock is a clock that moves only when told.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *manualClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestMemory[V any](t testing.TB, cfg MemoryConfig) *Memory[V] {
	t.Helper()
	m, err := NewMemory[V](cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// fill stores n long-lived keys prefixed with prefix.
func fill(t testing.TB, m *Memory[int], prefix string, n int) {
	t.Helper()
	for i := range n {
		if err := m.Set(context.Background(), prefix+strconv.Itoa(i), Entry[int]{Value: i, Found: true}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNewMemoryValidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  MemoryConfig
		ok   bool
	}{
		{"defaults", MemoryConfig{}, true},
		{"set", MemoryConfig{MaxEntries: 10, Cleanup: time.Minute, Now: time.Now}, true},
		{"negative max entries", MemoryConfig{MaxEntries: -1}, false},
		{"negative cleanup", MemoryConfig{Cleanup: -time.Second}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := NewMemory[int](tc.cfg)
			if (err == nil) != tc.ok || (m != nil) != tc.ok {
				t.Errorf("NewMemory(%+v) = %v, %v; want ok %v", tc.cfg, m, err, tc.ok)
			}
		})
	}
}

func TestMemoryFullSweepsOncePerInterval(t *testing.T) {
	const capacity = 100
	for _, tc := range []struct {
		name    string
		cleanup time.Duration
		inserts int
		step    time.Duration // clock advance after each insert
		want    int64
	}{
		{"clock stands still", time.Minute, 1000, 0, 1},
		{"all within one interval", time.Minute, 1000, 59 * time.Millisecond, 1},
		// Inserts at 0s, 1s, ... 999s: sweeps at 0s, 60s, ... 960s.
		{"across intervals", time.Minute, 1000, time.Second, 17},
		{"interval passes every insert", time.Minute, 10, time.Minute, 10},
		{"no cleanup interval", 0, 50, 0, 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &manualClock{t: time.Unix(1_700_000_000, 0)}
			m := newTestMemory[int](t, MemoryConfig{MaxEntries: capacity, Cleanup: tc.cleanup, Now: c.now})
			ctx := context.Background()
			fill(t, m, "old-", capacity)
			if got := m.sweeps.Load(); got != 0 {
				t.Fatalf("%d sweeps while filling", got)
			}
			for i := range tc.inserts {
				if err := m.Set(ctx, "new-"+strconv.Itoa(i), Entry[int]{Value: i, Found: true}, time.Hour); err != nil {
					t.Fatal(err)
				}
				c.add(tc.step)
			}
			if got := m.sweeps.Load(); got != tc.want {
				t.Errorf("%d sweeps for %d new keys, want %d", got, tc.inserts, tc.want)
			}
			if m.Refused() != int64(tc.inserts) || m.Len() != capacity {
				t.Errorf("refused %d, len %d; want %d, %d", m.Refused(), m.Len(), tc.inserts, capacity)
			}
			// A key the full cache holds is updated without a sweep.
			before := m.sweeps.Load()
			if err := m.Set(ctx, "old-7", Entry[int]{Value: -7, Found: true}, time.Hour); err != nil {
				t.Fatal(err)
			}
			if e, ok, _ := m.Get(ctx, "old-7"); !ok || e.Value != -7 || m.sweeps.Load() != before {
				t.Errorf("update of a held key: %+v %v, sweeps %d -> %d", e, ok, before, m.sweeps.Load())
			}
		})
	}
}

func TestMemoryConcurrentFullSetsSweepOnce(t *testing.T) {
	const capacity, writers, each = 100, 8, 100
	c := &manualClock{t: time.Unix(1_700_000_000, 0)}
	m := newTestMemory[int](t, MemoryConfig{MaxEntries: capacity, Cleanup: time.Minute, Now: c.now})
	fill(t, m, "old-", capacity)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := m.Set(context.Background(), strconv.Itoa(w)+"-"+strconv.Itoa(i), Entry[int]{Found: true}, time.Hour); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if got := m.sweeps.Load(); got != 1 {
		t.Errorf("%d sweeps, want 1", got)
	}
	if m.Refused() != writers*each || m.Len() != capacity {
		t.Errorf("refused %d, len %d; want %d, %d", m.Refused(), m.Len(), writers*each, capacity)
	}
}

func TestMemorySweepsExpiredOnceIntervalPasses(t *testing.T) {
	c := &manualClock{t: time.Unix(1_700_000_000, 0)}
	// The janitor runs on the real clock; an hour keeps it out of the test.
	m := newTestMemory[int](t, MemoryConfig{MaxEntries: 2, Cleanup: time.Hour, Now: c.now})
	ctx := context.Background()
	set := func(key string, ttl time.Duration) {
		t.Helper()
		if err := m.Set(ctx, key, Entry[int]{Value: 1, Found: true}, ttl); err != nil {
			t.Fatal(err)
		}
	}
	set("a", time.Hour)
	set("b", time.Hour)
	set("x", time.Hour) // full: sweeps, finds nothing expired, refuses
	if _, ok, _ := m.Get(ctx, "x"); ok || m.sweeps.Load() != 1 {
		t.Fatalf("x stored %v after %d sweeps", ok, m.sweeps.Load())
	}

	// go-cache expires on the real clock: let b lapse by rewriting it with
	// the shortest ttl and waiting, without sleeping, until it reads as gone.
	set("b", time.Nanosecond)
	for i := 0; ; i++ {
		if _, ok, _ := m.Get(ctx, "b"); !ok {
			break
		}
		if i == 10_000_000 {
			t.Fatal("an entry with a 1ns ttl never expired")
		}
		runtime.Gosched()
	}

	set("c", time.Hour) // b lapsed but is still held, and no sweep is due yet
	if _, ok, _ := m.Get(ctx, "c"); ok || m.sweeps.Load() != 1 || m.Len() != 2 || m.Refused() != 2 {
		t.Fatalf("before the interval: c stored %v, sweeps %d, len %d, refused %d", ok, m.sweeps.Load(), m.Len(), m.Refused())
	}

	c.add(time.Hour)
	set("c", time.Hour)
	if _, ok, _ := m.Get(ctx, "c"); !ok || m.sweeps.Load() != 2 || m.Len() != 2 || m.Refused() != 2 {
		t.Errorf("after the interval: c stored %v, sweeps %d, len %d, refused %d", ok, m.sweeps.Load(), m.Len(), m.Refused())
	}
	if _, ok, _ := m.Get(ctx, "a"); !ok {
		t.Error("the sweep dropped a live entry")
	}
}

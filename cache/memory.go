package cache

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	gocache "github.com/patrickmn/go-cache"
)

// MemoryConfig configures a Memory.
type MemoryConfig struct {
	// MaxEntries bounds the keys held. Default (0): 1,000,000.
	MaxEntries int
	// Cleanup is how often go-cache's janitor drops expired entries, and the
	// least time between two sweeps a full cache runs to make room. Zero
	// starts no janitor, so no goroutine outlives the Memory (a synctest
	// bubble needs that), and lets a full cache sweep for every new key.
	Cleanup time.Duration
	// Now is the clock that spaces the sweeps of a full cache; nil means
	// time.Now. Expiry itself is go-cache's and always uses the real time.
	Now func() time.Time
}

// Memory is the embedded Store, backed by go-cache. go-cache has no size
// bound, and its keys here come from identifiers the caller sends, so
// Memory refuses new keys beyond MaxEntries rather than grow without limit.
//
// A full cache sweeps out expired entries before it refuses, but at most
// once per Cleanup interval: a sweep scans every entry under go-cache's
// write lock, so sweeping for each new key made every insert into a full
// cache O(n) and stalled all reads behind it.
type Memory[V any] struct {
	c          *gocache.Cache
	maxEntries int
	interval   time.Duration
	now        func() time.Time

	mu        sync.Mutex // guards nextSweep
	nextSweep time.Time

	refused atomic.Int64
	sweeps  atomic.Int64
}

// NewMemory returns an empty Memory.
func NewMemory[V any](cfg MemoryConfig) (*Memory[V], error) {
	if cfg.MaxEntries < 0 || cfg.Cleanup < 0 {
		return nil, fmt.Errorf("cache: memory: max entries (%d) and cleanup (%s) must be >= 0", cfg.MaxEntries, cfg.Cleanup)
	}
	if cfg.MaxEntries == 0 {
		cfg.MaxEntries = 1_000_000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Memory[V]{
		c:          gocache.New(gocache.NoExpiration, cfg.Cleanup),
		maxEntries: cfg.MaxEntries,
		interval:   cfg.Cleanup,
		now:        cfg.Now,
	}, nil
}

// Get implements Store.
func (m *Memory[V]) Get(_ context.Context, key string) (Entry[V], bool, error) {
	v, ok := m.c.Get(key)
	if !ok {
		return Entry[V]{}, false, nil
	}
	return v.(Entry[V]), true, nil
}

// getPrefixed reads prefix+keys[i] into es[i] and oks[i], building each
// key in buf (returned for reuse) rather than in a new string: go-cache
// only looks the key up and keeps nothing of it, so the key may alias buf
// until the next key overwrites it.
func (m *Memory[V]) getPrefixed(prefix string, keys []string, es []Entry[V], oks []bool, buf []byte) []byte {
	buf = append(buf[:0], prefix...)
	for i, k := range keys {
		buf = append(buf[:len(prefix)], k...)
		v, ok := m.c.Get(unsafe.String(unsafe.SliceData(buf), len(buf))) // #nosec G103 -- go-cache only indexes its map with the key and keeps nothing of it (see above)
		if ok {
			es[i], oks[i] = v.(Entry[V]), true
		} else {
			es[i], oks[i] = Entry[V]{}, false
		}
	}
	return buf
}

// Set implements Store. When the cache is full, a key it already holds is
// still updated, and a new one is stored only if a sweep makes room.
// Concurrent Sets may overshoot MaxEntries by the number of writers.
func (m *Memory[V]) Set(_ context.Context, key string, e Entry[V], ttl time.Duration) error {
	if m.c.ItemCount() >= m.maxEntries && !m.holds(key) && !m.makeRoom() {
		m.refused.Add(1)
		return nil
	}
	m.c.Set(key, e, ttl)
	return nil
}

// Delete drops keys; absent keys are no error.
func (m *Memory[V]) Delete(_ context.Context, keys ...string) error {
	for _, k := range keys {
		m.c.Delete(k)
	}
	return nil
}

// holds reports whether key is present and unexpired, so that storing it
// does not grow the cache.
func (m *Memory[V]) holds(key string) bool {
	_, ok := m.c.Get(key)
	return ok
}

// makeRoom sweeps if no sweep ran within the last interval, and reports
// whether the cache then has room for a new key.
func (m *Memory[V]) makeRoom() bool {
	if !m.sweepDue() {
		return false
	}
	m.sweep()
	return m.c.ItemCount() < m.maxEntries
}

// sweepDue claims the next sweep for the caller if its time has come; only
// one of several concurrent callers gets it.
func (m *Memory[V]) sweepDue() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if now.Before(m.nextSweep) {
		return false
	}
	m.nextSweep = now.Add(m.interval)
	return true
}

// sweep is the one place a full cache scans; counting it lets tests bound
// the scans without timing them.
func (m *Memory[V]) sweep() {
	m.sweeps.Add(1)
	m.c.DeleteExpired()
}

// Len is the number of entries held, expired ones included until swept.
func (m *Memory[V]) Len() int { return m.c.ItemCount() }

// Refused counts entries not stored because the cache was full.
func (m *Memory[V]) Refused() int64 { return m.refused.Load() }

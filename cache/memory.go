package cache

import (
	"context"
	"sync/atomic"
	"time"

	gocache "github.com/patrickmn/go-cache"
)

// Memory is the embedded Store, backed by go-cache. go-cache has no size
// bound, and its keys here come from identifiers the caller sends, so
// Memory refuses new keys beyond MaxEntries rather than grow without limit.
type Memory[V any] struct {
	c          *gocache.Cache
	maxEntries int
	refused    atomic.Int64
}

// NewMemory returns a Memory holding at most maxEntries keys (0: 1,000,000),
// sweeping expired entries every cleanup interval.
func NewMemory[V any](maxEntries int, cleanup time.Duration) *Memory[V] {
	if maxEntries <= 0 {
		maxEntries = 1_000_000
	}
	return &Memory[V]{c: gocache.New(gocache.NoExpiration, cleanup), maxEntries: maxEntries}
}

// Get implements Store.
func (m *Memory[V]) Get(_ context.Context, key string) (Entry[V], bool, error) {
	v, ok := m.c.Get(key)
	if !ok {
		return Entry[V]{}, false, nil
	}
	return v.(Entry[V]), true, nil
}

// Set implements Store.
func (m *Memory[V]) Set(_ context.Context, key string, e Entry[V], ttl time.Duration) error {
	if m.c.ItemCount() >= m.maxEntries {
		m.c.DeleteExpired()
		if m.c.ItemCount() >= m.maxEntries {
			if _, exists := m.c.Get(key); !exists {
				m.refused.Add(1)
				return nil
			}
		}
	}
	m.c.Set(key, e, ttl)
	return nil
}

// Len is the number of entries held, expired ones included until swept.
func (m *Memory[V]) Len() int { return m.c.ItemCount() }

// Refused counts entries not stored because the cache was full.
func (m *Memory[V]) Refused() int64 { return m.refused.Load() }

// Package cache keeps vendor lookup results between batches. A Store is a
// plain key-value store with expiry (in-memory go-cache, or Redis so several
// replicas share one cache); a Loader sits on top and adds what a posture
// service needs: freshness TTL, stale-on-error, negative caching of "not
// found", and collapsing of concurrent lookups for the same keys into one
// vendor call, across replicas too when the Store is a Locker (Redis).
package cache

import (
	"context"
	"time"
)

// Entry is a cached lookup result.
type Entry[V any] struct {
	Value V `json:"v"`
	// Found is false for a negative entry: the vendor was asked and has
	// nothing for this key.
	Found bool `json:"f"`
	// Stored is when the vendor answered.
	Stored time.Time `json:"t"`
}

// Store is a key-value store whose entries disappear after their ttl.
type Store[V any] interface {
	// Get returns the entry for key; ok is false when there is none.
	Get(ctx context.Context, key string) (e Entry[V], ok bool, err error)
	// Set stores e under key for ttl.
	Set(ctx context.Context, key string, e Entry[V], ttl time.Duration) error
}

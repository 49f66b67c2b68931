package cache

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postured/postured/internal/redisopt"
)

// Redis is a Store shared by every postured replica. Entries are JSON, so
// V must round-trip through encoding/json.
type Redis[V any] struct {
	c      *redis.Client
	prefix string
}

// RedisConfig configures a Redis store.
type RedisConfig struct {
	// URL is redis://[user:password@]host:port/db, or rediss://... for
	// TLS. It may carry a password: it is never echoed.
	URL string
	// TLSCAFile, if set, verifies a rediss:// server against this PEM CA
	// bundle instead of the system pool.
	TLSCAFile string
	// Prefix namespaces every key.
	Prefix string
}

// NewRedis returns the store cfg describes. It does not dial until first
// use.
func NewRedis[V any](cfg RedisConfig) (*Redis[V], error) {
	opts, err := redisopt.Options(redisopt.Config{URL: cfg.URL, TLSCAFile: cfg.TLSCAFile})
	if err != nil {
		return nil, fmt.Errorf("cache: redis_url: %w", err)
	}
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = 2*time.Second, time.Second, time.Second
	return &Redis[V]{c: redis.NewClient(opts), prefix: cfg.Prefix}, nil
}

// Get implements Store.
func (r *Redis[V]) Get(ctx context.Context, key string) (Entry[V], bool, error) {
	es, oks, err := r.GetMulti(ctx, []string{key})
	if err != nil {
		return Entry[V]{}, false, err
	}
	return es[0], oks[0], nil
}

// Set implements Store.
func (r *Redis[V]) Set(ctx context.Context, key string, e Entry[V], ttl time.Duration) error {
	return r.SetMulti(ctx, map[string]Entry[V]{key: e}, ttl)
}

// GetMulti fetches many keys in one round trip (MGET).
func (r *Redis[V]) GetMulti(ctx context.Context, keys []string) ([]Entry[V], []bool, error) {
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = r.prefix + k
	}
	vals, err := r.c.MGet(ctx, full...).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("cache: redis mget: %w", err)
	}
	es := make([]Entry[V], len(keys))
	oks := make([]bool, len(keys))
	for i, v := range vals {
		s, isStr := v.(string)
		if !isStr {
			continue // nil: no such key
		}
		if err := json.Unmarshal([]byte(s), &es[i]); err != nil {
			continue // written by an incompatible version: a miss, overwritten on fetch
		}
		oks[i] = true
	}
	return es, oks, nil
}

// SetMulti stores many entries with one ttl in one pipelined round trip.
// ttl must be positive: under a volatile-* eviction policy only keys with
// a TTL are evicted, so a cache entry without one would crowd out nothing
// but could never be evicted, and the key ring's keys (no TTL) must be the
// only ones that are safe from eviction.
func (r *Redis[V]) SetMulti(ctx context.Context, entries map[string]Entry[V], ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("cache: redis set: ttl %s is not positive", ttl)
	}
	pipe := r.c.Pipeline()
	for k, e := range entries {
		b, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("cache: encode entry: %w", err)
		}
		pipe.Set(ctx, r.prefix+k, b, ttl)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("cache: redis set: %w", err)
	}
	return nil
}

// Delete drops keys in one round trip; absent keys are no error.
func (r *Redis[V]) Delete(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = r.prefix + k
	}
	if err := r.c.Del(ctx, full...).Err(); err != nil {
		return fmt.Errorf("cache: redis del: %w", err)
	}
	return nil
}

// TryLock implements Locker with SET NX PX and a random owner token.
func (r *Redis[V]) TryLock(ctx context.Context, key string, ttl time.Duration) (func(context.Context), bool, error) {
	token := rand.Text()
	ok, err := r.c.SetNX(ctx, r.prefix+key, token, ttl).Result()
	if err != nil {
		return nil, false, fmt.Errorf("cache: redis lock: %w", err)
	}
	if !ok {
		return nil, false, nil
	}
	return func(ctx context.Context) {
		// Best effort: a lock not released expires with its ttl.
		_ = unlockScript.Run(ctx, r.c, []string{r.prefix + key}, token).Err()
	}, true, nil
}

// unlockScript deletes a lock only if it is still the caller's: one that
// expired and was taken by another process stays taken.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

// Ping checks the connection.
func (r *Redis[V]) Ping(ctx context.Context) error {
	if err := r.c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("cache: redis ping: %w", err)
	}
	return nil
}

// Close releases the connections.
func (r *Redis[V]) Close() error { return r.c.Close() }

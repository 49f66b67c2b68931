package adjust

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postured/postured/internal/redisopt"
)

// DefaultMaxRuntimeOverrides bounds the overrides kept in Redis: every
// evaluation reads them all.
const DefaultMaxRuntimeOverrides = 10000

// RedisOverrides keeps the overrides `postured override add` writes, in one
// Redis hash (field: the override's Key) that every replica reads once
// per evaluation. The hash has no TTL, so a volatile-* eviction policy
// never drops an override; expired ones stop applying by their Until and
// are deleted by the next Add.
type RedisOverrides struct {
	c   *redis.Client
	key string
	max int
	now func() time.Time
}

// RedisConfig configures RedisOverrides.
type RedisConfig struct {
	// URL is redis:// or rediss:// (cache.redis_url); it may carry a
	// password and is never echoed.
	URL       string
	TLSCAFile string
	// Key is the hash's name.
	Key string
	// Max is the most overrides in force Add allows; 0 means
	// DefaultMaxRuntimeOverrides.
	Max int
	// Now is the clock that decides what Add prunes; nil means time.Now.
	Now func() time.Time
}

// NewRedisOverrides returns the store cfg describes. It does not dial
// until first use.
func NewRedisOverrides(cfg RedisConfig) (*RedisOverrides, error) {
	if cfg.Key == "" {
		return nil, errors.New("overrides: redis: no key")
	}
	opts, err := redisopt.Options(redisopt.Config{URL: cfg.URL, TLSCAFile: cfg.TLSCAFile})
	if err != nil {
		return nil, fmt.Errorf("overrides: redis_url: %w", err)
	}
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = 2*time.Second, time.Second, time.Second
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Max <= 0 {
		cfg.Max = DefaultMaxRuntimeOverrides
	}
	return &RedisOverrides{c: redis.NewClient(opts), key: cfg.Key, max: cfg.Max, now: cfg.Now}, nil
}

// List returns every stored override, expired ones included, ordered by
// key. Entries that do not decode (written by an incompatible version)
// are skipped.
func (r *RedisOverrides) List(ctx context.Context) ([]Override, error) {
	m, err := r.c.HGetAll(ctx, r.key).Result()
	if err != nil {
		return nil, fmt.Errorf("overrides: redis list: %w", err)
	}
	out := make([]Override, 0, len(m))
	for _, v := range m {
		var o Override
		if json.Unmarshal([]byte(v), &o) != nil || o.Kind == "" {
			continue
		}
		o.Source = SourceRuntime
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b Override) int { return strings.Compare(a.Key(), b.Key()) })
	return out, nil
}

// Add stores o, replacing an override for the same key, and deletes the
// expired ones. It refuses an override already expired, and a new one
// beyond Max.
func (r *RedisOverrides) Add(ctx context.Context, o Override) error {
	now := r.now()
	if o.Expired(now) {
		return fmt.Errorf("overrides: add: until %s is not in the future", o.Until.Format(time.RFC3339))
	}
	all, err := r.List(ctx)
	if err != nil {
		return err
	}
	var expired []string
	live := 0
	for _, x := range all {
		switch {
		case x.Expired(now):
			expired = append(expired, x.Key())
		case x.Key() != o.Key():
			live++
		}
	}
	if live >= r.max {
		return fmt.Errorf("overrides: add: %d overrides in force, the most allowed; remove some first", live)
	}
	o.Added = now.UTC()
	b, err := json.Marshal(o)
	if err != nil {
		return fmt.Errorf("overrides: add: %w", err)
	}
	pipe := r.c.TxPipeline()
	if len(expired) > 0 {
		pipe.HDel(ctx, r.key, expired...)
	}
	pipe.HSet(ctx, r.key, o.Key(), b)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("overrides: redis add: %w", err)
	}
	return nil
}

// Remove deletes the override for key (Override.Key); false when there
// was none.
func (r *RedisOverrides) Remove(ctx context.Context, key string) (bool, error) {
	n, err := r.c.HDel(ctx, r.key, key).Result()
	if err != nil {
		return false, fmt.Errorf("overrides: redis remove: %w", err)
	}
	return n > 0, nil
}

// Close releases the connections.
func (r *RedisOverrides) Close() error { return r.c.Close() }

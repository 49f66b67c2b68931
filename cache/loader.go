package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/postured/postured/internal/logging"
)

// LoaderConfig configures a Loader.
type LoaderConfig[V any] struct {
	Store Store[V]
	// Prefix namespaces this loader's keys in a shared Store, e.g. the
	// provider name.
	Prefix string
	// TTL is how long a found value is fresh.
	TTL time.Duration
	// StaleTTL is how long after TTL a found value is kept to stand in when
	// the vendor fails (stale-on-error). Zero disables it.
	StaleTTL time.Duration
	// NegativeTTL is how long "not found" is remembered. Zero disables it.
	NegativeTTL time.Duration
	// FetchTimeout bounds one fetch. Fetches run detached from the callers'
	// contexts so one caller giving up cannot fail the others waiting on
	// the same flight.
	FetchTimeout time.Duration
	Logger       *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// FetchFunc looks keys up in the backend. It returns the found values by
// key; keys absent from the map were not found. An error fails every key,
// unless it is a KeyErrors: then only those keys failed and the map is
// complete for the others.
type FetchFunc[V any] func(ctx context.Context, keys []string) (map[string]V, error)

// KeyErrors is a fetch error that failed only some keys (the backend
// rejected them); the fetch's answer stands for every other key.
type KeyErrors map[string]error

func (e KeyErrors) Error() string {
	for k, err := range e {
		return fmt.Sprintf("%d keys failed, e.g. %q: %v", len(e), k, err)
	}
	return "no keys failed"
}

// Result is what Load knows about one key.
type Result[V any] struct {
	Value V
	Found bool
	// Cached: answered from the store without a fetch.
	Cached bool
	// Err is the fetch error when the key could not be looked up. Value and
	// Found may still be set from a stale entry (then Stale is true).
	Err   error
	Stale bool
}

// Loader answers batches of keys from the store, fetching only the misses,
// and only once across concurrent batches.
type Loader[V any] struct {
	cfg LoaderConfig[V]
	now func() time.Time

	mu       sync.Mutex
	inflight map[string]*flight[V]
}

// flight is one fetch in progress; every key it covers maps to it in
// Loader.inflight until it completes.
type flight[V any] struct {
	done chan struct{}
	vals map[string]V
	err  error
	// keyErrs are the keys the fetch failed alone (KeyErrors).
	keyErrs KeyErrors
}

// NewLoader returns a Loader; Store is required.
func NewLoader[V any](cfg LoaderConfig[V]) (*Loader[V], error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("cache: loader %q: no store", cfg.Prefix)
	}
	if cfg.TTL <= 0 || cfg.StaleTTL < 0 || cfg.NegativeTTL < 0 || cfg.FetchTimeout <= 0 {
		return nil, fmt.Errorf("cache: loader %q: ttl and fetch timeout must be > 0, stale and negative ttl >= 0", cfg.Prefix)
	}
	cfg.Logger = logging.OrDiscard(cfg.Logger)
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Loader[V]{cfg: cfg, now: now, inflight: make(map[string]*flight[V])}, nil
}

// Load returns a Result for every key. Fresh entries come from the store;
// keys another Load is already fetching are waited for; the rest are
// fetched in one call to fetch. If ctx ends first, the keys still pending
// carry ctx's error (the fetch itself carries on for the others).
func (l *Loader[V]) Load(ctx context.Context, keys []string, fetch FetchFunc[V]) map[string]Result[V] {
	out := make(map[string]Result[V], len(keys))
	stale := make(map[string]V)
	var misses []string
	now := l.now()
	refresh := Refreshing(ctx)
	uniq := make([]string, 0, len(keys))
	for _, k := range keys {
		if _, dup := out[k]; !dup {
			out[k] = Result[V]{} // placeholder, also skips duplicates
			uniq = append(uniq, k)
		}
	}
	entries, oks, err := l.getAll(ctx, uniq)
	if err != nil {
		l.cfg.Logger.Warn("cache read failed, treating as misses", "error", err)
	}
	for i, k := range uniq {
		if err == nil && oks[i] {
			e := entries[i]
			ttl := l.cfg.TTL
			if !e.Found {
				ttl = l.cfg.NegativeTTL
			}
			if now.Sub(e.Stored) < ttl && !refresh {
				out[k] = Result[V]{Value: e.Value, Found: e.Found, Cached: true}
				continue
			}
			if e.Found && now.Sub(e.Stored) < l.cfg.TTL+l.cfg.StaleTTL {
				stale[k] = e.Value
			}
		}
		misses = append(misses, k)
	}
	if len(misses) == 0 {
		return out
	}

	// Join flights already covering some misses; own the rest.
	waits := make(map[*flight[V]][]string)
	var owned []string
	var mine *flight[V]
	l.mu.Lock()
	for _, k := range misses {
		if f, ok := l.inflight[k]; ok {
			waits[f] = append(waits[f], k)
			continue
		}
		if mine == nil {
			mine = &flight[V]{done: make(chan struct{})}
		}
		l.inflight[k] = mine
		owned = append(owned, k)
	}
	l.mu.Unlock()
	if mine != nil {
		waits[mine] = owned
		go l.run(context.WithoutCancel(ctx), mine, owned, fetch, refresh)
	}

	for f, ks := range waits {
		select {
		case <-f.done:
			for _, k := range ks {
				out[k] = l.result(k, f, stale)
			}
		case <-ctx.Done():
			for _, k := range ks {
				out[k] = staleOr(k, stale, ctx.Err())
			}
		}
	}
	return out
}

func (l *Loader[V]) run(ctx context.Context, f *flight[V], keys []string, fetch FetchFunc[V], refresh bool) {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.FetchTimeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			f.err = fmt.Errorf("cache: fetch panicked: %v", r)
		}
		l.mu.Lock()
		for _, k := range keys {
			if l.inflight[k] == f {
				delete(l.inflight, k)
			}
		}
		l.mu.Unlock()
		close(f.done)
	}()
	f.vals, f.err = fetch(ctx, keys)
	if ke := (KeyErrors)(nil); errors.As(f.err, &ke) {
		f.keyErrs, f.err = ke, nil
	}
	if f.err != nil {
		return // errors are never cached: the next batch asks again
	}
	stored := l.now()
	found := make(map[string]Entry[V], len(f.vals))
	notFound := make(map[string]Entry[V])
	for _, k := range keys {
		if _, failed := f.keyErrs[k]; failed {
			continue
		}
		if v, ok := f.vals[k]; ok {
			found[k] = Entry[V]{Value: v, Found: true, Stored: stored}
		} else {
			notFound[k] = Entry[V]{Stored: stored}
		}
	}
	if err := l.setAll(ctx, found, l.cfg.TTL+l.cfg.StaleTTL); err != nil {
		l.cfg.Logger.Warn("cache write failed", "error", err)
	}
	if l.cfg.NegativeTTL > 0 {
		if err := l.setAll(ctx, notFound, l.cfg.NegativeTTL); err != nil {
			l.cfg.Logger.Warn("cache write failed", "error", err)
		}
	} else if refresh {
		// A recheck found nothing where the store may still hold an old
		// record: drop it, or the next batch would use it.
		if err := l.deleteAll(ctx, notFound); err != nil {
			l.cfg.Logger.Warn("cache delete failed", "error", err)
		}
	}
}

// deleter is a Store that can drop entries (Memory, Redis).
type deleter interface {
	Delete(ctx context.Context, keys ...string) error
}

func (l *Loader[V]) deleteAll(ctx context.Context, entries map[string]Entry[V]) error {
	d, ok := l.cfg.Store.(deleter)
	if !ok || len(entries) == 0 {
		return nil
	}
	full := make([]string, 0, len(entries))
	for k := range entries {
		full = append(full, l.cfg.Prefix+k)
	}
	return d.Delete(ctx, full...)
}

// multiStore is a Store that reads and writes many keys in one round trip
// (Redis); for it a 1000-key batch costs two round trips, not 2000.
type multiStore[V any] interface {
	GetMulti(ctx context.Context, keys []string) ([]Entry[V], []bool, error)
	SetMulti(ctx context.Context, entries map[string]Entry[V], ttl time.Duration) error
}

func (l *Loader[V]) getAll(ctx context.Context, keys []string) ([]Entry[V], []bool, error) {
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = l.cfg.Prefix + k
	}
	if m, ok := l.cfg.Store.(multiStore[V]); ok {
		return m.GetMulti(ctx, full)
	}
	es := make([]Entry[V], len(keys))
	oks := make([]bool, len(keys))
	for i, k := range full {
		e, ok, err := l.cfg.Store.Get(ctx, k)
		if err != nil {
			return nil, nil, err
		}
		es[i], oks[i] = e, ok
	}
	return es, oks, nil
}

func (l *Loader[V]) setAll(ctx context.Context, entries map[string]Entry[V], ttl time.Duration) error {
	if len(entries) == 0 {
		return nil
	}
	full := make(map[string]Entry[V], len(entries))
	for k, e := range entries {
		full[l.cfg.Prefix+k] = e
	}
	if m, ok := l.cfg.Store.(multiStore[V]); ok {
		return m.SetMulti(ctx, full, ttl)
	}
	for k, e := range full {
		if err := l.cfg.Store.Set(ctx, k, e, ttl); err != nil {
			return err
		}
	}
	return nil
}

func (l *Loader[V]) result(k string, f *flight[V], stale map[string]V) Result[V] {
	if f.err != nil {
		return staleOr(k, stale, f.err)
	}
	if err, failed := f.keyErrs[k]; failed {
		return staleOr(k, stale, err)
	}
	v, found := f.vals[k]
	return Result[V]{Value: v, Found: found}
}

func staleOr[V any](k string, stale map[string]V, err error) Result[V] {
	if v, ok := stale[k]; ok {
		return Result[V]{Value: v, Found: true, Stale: true, Err: err}
	}
	return Result[V]{Err: err}
}

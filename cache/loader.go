package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
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

// lockPoll is how often a fetch waiting for another process's fetch of
// the same keys (a Store that is a Locker) reads the store for its
// answer: a vendor call takes tens of milliseconds at best.
const lockPoll = 20 * time.Millisecond

// Locker is a Store shared by several processes (Redis) that can also
// hold short locks: a Loader fetching keys takes one for them, so two
// replicas do not ask the vendor for the same keys at once; the second
// reads the first one's answer from the store instead.
type Locker interface {
	// TryLock takes key for ttl unless someone holds it (ok false).
	// release gives it back if it is still this holder's.
	TryLock(ctx context.Context, key string, ttl time.Duration) (release func(context.Context), ok bool, err error)
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

	scratch sync.Pool // of *scratch[V]
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
	l := &Loader[V]{cfg: cfg, now: now, inflight: make(map[string]*flight[V])}
	l.scratch.New = func() any { return new(scratch[V]) }
	return l, nil
}

// Load returns a Result for every key. Fresh entries come from the store;
// keys another Load is already fetching are waited for; the rest are
// fetched in one call to fetch. If ctx ends first, the keys still pending
// carry ctx's error (the fetch itself carries on for the others).
func (l *Loader[V]) Load(ctx context.Context, keys []string, fetch FetchFunc[V]) map[string]Result[V] {
	out := make(map[string]Result[V], len(keys))
	l.LoadEach(ctx, keys, fetch, func(i int, r Result[V]) { out[keys[i]] = r })
	return out
}

// LoadEach is Load without the map: it calls each with the position in
// keys and the Result of every key, a repeated key once per position,
// before it returns. A batch answered from the store allocates nothing
// per key.
func (l *Loader[V]) LoadEach(ctx context.Context, keys []string, fetch FetchFunc[V], each func(i int, r Result[V])) {
	now := l.now()
	refresh := Refreshing(ctx)
	sc := l.scratch.Get().(*scratch[V])
	defer l.putScratch(sc)
	entries, oks, err := l.getAll(ctx, keys, sc)
	if err != nil {
		l.cfg.Logger.Warn("cache read failed, treating as misses", "error", err)
	}
	var stale map[string]V
	missAt := sc.missAt[:0]
	for i, k := range keys {
		if err == nil && oks[i] {
			e := entries[i]
			ttl := l.cfg.TTL
			if !e.Found {
				ttl = l.cfg.NegativeTTL
			}
			if now.Sub(e.Stored) < ttl && !refresh {
				each(i, Result[V]{Value: e.Value, Found: e.Found, Cached: true})
				continue
			}
			if e.Found && now.Sub(e.Stored) < l.cfg.TTL+l.cfg.StaleTTL {
				if stale == nil {
					stale = make(map[string]V)
				}
				stale[k] = e.Value
			}
		}
		missAt = append(missAt, i)
	}
	sc.missAt = missAt
	if len(missAt) == 0 {
		return
	}
	res := l.loadMisses(ctx, keys, missAt, stale, fetch, refresh)
	for _, i := range missAt {
		each(i, res[keys[i]])
	}
}

// loadMisses fetches the keys at missAt, or waits for the flights already
// fetching them, and returns their Results by key.
func (l *Loader[V]) loadMisses(ctx context.Context, keys []string, missAt []int, stale map[string]V, fetch FetchFunc[V], refresh bool) map[string]Result[V] {
	out := make(map[string]Result[V], len(missAt))
	// Join flights already covering some misses; own the rest.
	waits := make(map[*flight[V]][]string)
	var owned []string
	var mine *flight[V]
	l.mu.Lock()
	for _, i := range missAt {
		k := keys[i]
		if _, dup := out[k]; dup {
			continue
		}
		out[k] = Result[V]{} // placeholder, skips duplicates
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
	// A recheck asks the vendor whatever the store holds, so it takes no
	// lock: the lock's waiter answers from the store.
	rest, cached, release := keys, map[string]V(nil), noRelease
	if !refresh {
		rest, cached, release = l.lock(ctx, keys)
	}
	defer release(ctx)
	if len(rest) == 0 {
		f.vals = cached
		return
	}
	ctx, cancel := context.WithTimeout(ctx, l.cfg.FetchTimeout)
	defer cancel()
	f.vals, f.err = fetch(ctx, rest)
	if ke := (KeyErrors)(nil); errors.As(f.err, &ke) {
		f.keyErrs, f.err = ke, nil
	}
	if f.err != nil && len(cached) > 0 {
		// Only the keys fetched here failed; another process answered
		// the others.
		f.keyErrs = make(KeyErrors, len(rest))
		for _, k := range rest {
			f.keyErrs[k] = f.err
		}
		f.vals, f.err = nil, nil
	}
	if len(cached) > 0 {
		if f.vals == nil {
			f.vals = make(map[string]V, len(cached))
		}
		for k, v := range cached {
			f.vals[k] = v
		}
	}
	if f.err != nil {
		return // errors are never cached: the next batch asks again
	}
	stored := l.now()
	found := make(map[string]Entry[V], len(f.vals))
	notFound := make(map[string]Entry[V])
	for _, k := range rest {
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

// lock takes the store's lock on this set of keys before they are
// fetched, when the store is a Locker. If another process holds it, lock
// waits for that process's answer to reach the store, returning in cached
// what it found (keys absent from cached but not in rest were cached as
// not found) and in rest what is left to fetch: everything once the
// other process released the lock without answering them (its fetch
// failed), or its lock expired. Without a Locker, or when the store
// fails, every key is fetched. release is never nil.
func (l *Loader[V]) lock(ctx context.Context, keys []string) (rest []string, cached map[string]V, release func(context.Context)) {
	lk, ok := l.cfg.Store.(Locker)
	if !ok {
		return keys, nil, noRelease
	}
	name := l.cfg.Prefix + "lock:" + keySetHash(keys)
	// The lock outlives a fetch only when its holder died: then waiting
	// for its TTL is the price, and a fetch is made after at most twice
	// that.
	ttl := l.cfg.FetchTimeout
	giveUp := time.NewTimer(2 * ttl)
	defer giveUp.Stop()
	rest = keys
	// reread moves to cached what another process stored meanwhile.
	reread := func() error {
		sc := l.scratch.Get().(*scratch[V])
		defer l.putScratch(sc)
		entries, oks, err := l.getAll(ctx, rest, sc)
		if err != nil {
			return err
		}
		now := l.now()
		left := rest[:0:0]
		for i, k := range rest {
			e := entries[i]
			switch {
			case !oks[i] || now.Sub(e.Stored) >= l.cfg.TTL:
				left = append(left, k)
			case e.Found:
				if cached == nil {
					cached = make(map[string]V, len(rest))
				}
				cached[k] = e.Value
			case now.Sub(e.Stored) >= l.cfg.NegativeTTL:
				left = append(left, k)
			}
		}
		rest = left
		return nil
	}
	for {
		release, ok, err := lk.TryLock(ctx, name, ttl)
		if err != nil {
			l.cfg.Logger.Warn("cache lock failed, fetching without it", "error", err)
			return rest, cached, noRelease
		}
		if ok {
			// The previous holder may have answered and released between
			// Load's read of the store and this lock.
			if err := reread(); err != nil || len(rest) > 0 {
				return rest, cached, release
			}
			release(ctx)
			return nil, cached, noRelease
		}
		poll := time.NewTimer(lockPoll)
		select {
		case <-giveUp.C:
			poll.Stop()
			return rest, cached, noRelease
		case <-poll.C:
		}
		if err := reread(); err != nil {
			return rest, cached, noRelease
		}
		if len(rest) == 0 {
			return nil, cached, noRelease
		}
	}
}

// noRelease is the release of a lock not taken.
func noRelease(context.Context) {}

// keySetHash names a set of keys independently of their order.
func keySetHash(keys []string) string {
	sorted := slices.Clone(keys)
	slices.Sort(sorted)
	h := sha256.New()
	for _, k := range sorted {
		h.Write([]byte(k))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// multiStore is a Store that reads and writes many keys in one round trip
// (Redis); for it a 1000-key batch costs two round trips, not 2000.
type multiStore[V any] interface {
	GetMulti(ctx context.Context, keys []string) ([]Entry[V], []bool, error)
	SetMulti(ctx context.Context, entries map[string]Entry[V], ttl time.Duration) error
}

// prefixGetter is a Store that reads a batch of prefixed keys without
// building each key as a string (Memory): a warm batch of a thousand keys
// then allocates nothing per key.
type prefixGetter[V any] interface {
	getPrefixed(prefix string, keys []string, es []Entry[V], oks []bool, buf []byte) []byte
}

// scratch is what one Load needs per key; Loads reuse it.
type scratch[V any] struct {
	es     []Entry[V]
	oks    []bool
	buf    []byte
	missAt []int
}

// putScratch returns sc for the next Load, without the values it read, so
// that the pool does not keep them alive.
func (l *Loader[V]) putScratch(sc *scratch[V]) {
	clear(sc.es)
	l.scratch.Put(sc)
}

// getAll reads keys from the store. The slices it returns are sc's, or the
// store's, and are valid until sc is reused.
func (l *Loader[V]) getAll(ctx context.Context, keys []string, sc *scratch[V]) ([]Entry[V], []bool, error) {
	if p, ok := l.cfg.Store.(prefixGetter[V]); ok {
		sc.es = slices.Grow(sc.es[:0], len(keys))[:len(keys)]
		sc.oks = slices.Grow(sc.oks[:0], len(keys))[:len(keys)]
		sc.buf = p.getPrefixed(l.cfg.Prefix, keys, sc.es, sc.oks, sc.buf)
		return sc.es, sc.oks, nil
	}
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

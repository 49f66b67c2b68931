// Package aggregate turns a batch of Cloudflare devices into one score per
// device: it asks every configured provider concurrently (through the cache),
// matches each device to at most one record per provider, and folds the
// per-provider scores into a weighted mean under the configured policies,
// keeping an explanation of every decision. Providers answering from memory
// (sync mode, the static inventory) are a Lister crawled by a Syncer into
// an Index, also here: they consume providers, and vendors never import
// aggregate.
package aggregate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/postured/postured/cache"
	"github.com/postured/postured/internal/logging"
	"github.com/postured/postured/providers"
)

// Source is one configured provider and its policies.
type Source struct {
	Name     string
	Weight   float64
	Required bool
	OnError  providers.OnError
	// MaxLastSeen: records not seen for longer score 0 (0: no limit).
	MaxLastSeen time.Duration
	// Timeout bounds this provider's lookups in one batch (0: the batch
	// deadline).
	Timeout  time.Duration
	Provider Provider
	// Miss, for a sync-mode provider with on_miss: query, is the vendor's
	// query path: values the index does not hold (a device enrolled after
	// the last crawl) are asked there, through the cache, so a new laptop
	// is not scored as unknown until the next crawl. Negative answers are
	// cached for NegativeTTL; the vendor client's rate budget and the batch
	// deadline bound the rest.
	Miss Provider
	// RequireEmailFor lists the weak key kinds (MAC, hostname) whose match
	// counts only when the record carries the email the device sent: for
	// vendors whose records name the user, so a copied MAC or hostname
	// alone never selects another user's machine.
	RequireEmailFor []providers.Kind
}

// Config configures an Engine.
type Config struct {
	Sources []Source
	// Deadline bounds a whole batch; providers still working then count as
	// failed.
	Deadline time.Duration
	// UnmatchedScore is the score of a device no provider matched.
	UnmatchedScore int
	// S2SIDFrom orders providers for choosing s2s_id; providers not listed
	// follow in configuration order.
	S2SIDFrom []string
	// Store caches lookups; nil disables caching.
	Store       cache.Store[[]providers.Record]
	CacheTTL    time.Duration
	StaleTTL    time.Duration
	NegativeTTL time.Duration
	Logger      *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Engine evaluates batches. It is safe for concurrent use.
type Engine struct {
	sources  []source
	deadline time.Duration
	unmatch  int
	s2sOrder []int // indexes into sources, s2s_id priority
	logger   *slog.Logger
	now      func() time.Time
}

type source struct {
	Source
	// loaders cache the vendor's answers, one per kind: Provider's, or
	// Miss's when Provider is local. Nil without a store, or for a local
	// provider with no Miss. A loader per kind puts the kind in the
	// loader's key prefix, so values are cache keys as they are.
	loaders *[len(providers.Kinds)]*cache.Loader[[]providers.Record]
}

// New builds an Engine. The configuration is validated where it is read
// (internal/app, with file lines); New refuses only what would break the
// Engine itself: a source without an implementation, two sources sharing a
// name (it keys the cache and the stats), a weight the weighted mean cannot
// use, no deadline, an s2s_id_from name it cannot resolve.
func New(cfg Config) (*Engine, error) {
	if cfg.Deadline <= 0 {
		return nil, fmt.Errorf("aggregate: deadline %s: want > 0", cfg.Deadline)
	}
	e := &Engine{
		deadline: cfg.Deadline,
		unmatch:  providers.Clamp(cfg.UnmatchedScore), // every score Cloudflare gets is 0..100
		logger:   logging.OrDiscard(cfg.Logger),
		now:      cfg.Now,
	}
	if e.now == nil {
		e.now = time.Now
	}
	names := make(map[string]int)
	for i, s := range cfg.Sources {
		if _, dup := names[s.Name]; dup {
			return nil, fmt.Errorf("aggregate: two sources named %q", s.Name)
		}
		names[s.Name] = i
		if !(s.Weight > 0) || math.IsInf(s.Weight, 0) {
			return nil, fmt.Errorf("aggregate: source %q: weight %v: want > 0 and finite", s.Name, s.Weight)
		}
		if s.Provider == nil {
			return nil, fmt.Errorf("aggregate: source %q: no provider", s.Name)
		}
		if s.Timeout <= 0 || s.Timeout > cfg.Deadline {
			s.Timeout = cfg.Deadline
		}
		src := source{Source: s}
		if l, ok := s.Provider.(Local); (!(ok && l.Local()) || s.Miss != nil) && cfg.Store != nil {
			src.loaders = new([len(providers.Kinds)]*cache.Loader[[]providers.Record])
			for _, k := range providers.Kinds {
				loader, err := cache.NewLoader(cache.LoaderConfig[[]providers.Record]{
					Store: cfg.Store, Prefix: s.Name + "|" + k.String() + ":",
					TTL: cfg.CacheTTL, StaleTTL: cfg.StaleTTL, NegativeTTL: cfg.NegativeTTL,
					FetchTimeout: s.Timeout, Logger: e.logger.With("provider", s.Name),
					Now: cfg.Now,
				})
				if err != nil {
					return nil, fmt.Errorf("aggregate: source %q: %w", s.Name, err)
				}
				src.loaders[k] = loader
			}
		}
		e.sources = append(e.sources, src)
	}
	for _, n := range cfg.S2SIDFrom {
		i, ok := names[n]
		if !ok {
			return nil, fmt.Errorf("aggregate: s2s_id_from: no source named %q", n)
		}
		if !slices.Contains(e.s2sOrder, i) {
			e.s2sOrder = append(e.s2sOrder, i)
		}
	}
	for i := range e.sources {
		if !slices.Contains(e.s2sOrder, i) {
			e.s2sOrder = append(e.s2sOrder, i)
		}
	}
	return e, nil
}

// Device is what Cloudflare told us about one device. Any field but ID may
// be blank.
type Device struct {
	ID       string
	Serial   string
	MAC      string
	Hostname string
	Email    string
}

// Result is the verdict for one device.
type Result struct {
	DeviceID string
	S2SID    string
	Score    int
	// Providers is every provider's part, in configuration order.
	Providers []ProviderResult
	// At is the time the score was computed: max_last_seen was judged
	// against it, so a replay of the result (FoldRecorded) needs it.
	At time.Time
	// batch and index locate the device's outcomes for Explain. They keep
	// the batch's outcomes alive: whoever keeps results for long copies
	// out what it needs.
	batch *batch
	index int
	// explained is the explanation of a Result made by ResultOf.
	explained *Explanation
	// adjustments changed the folded score (Adjust).
	adjustments []Adjustment
}

// Stats summarise a batch for the batch log line and metrics.
type Stats struct {
	Devices  int
	Matched  map[string]int // per provider
	Errors   map[string]int // devices per provider whose lookup failed
	Stale    map[string]int // devices per provider answered from stale cache
	Duration time.Duration
}

// Evaluate scores every device; results are in the order of devices. It
// never fails as a whole: a provider that errors or runs out of time is
// handled per its on_error policy and the batch still gets an answer for
// every device.
func (e *Engine) Evaluate(ctx context.Context, devices []Device) ([]Result, Stats) {
	start := e.now()
	ctx, cancel := context.WithTimeout(ctx, e.deadline)
	defer cancel()

	keys := make([]deviceKeys, len(devices))
	for i, d := range devices {
		keys[i] = normalizeDevice(d)
	}

	// One goroutine per provider; the zero Group never cancels the others
	// when one fails, which is the point: partial results beat none.
	outcomes := make([][]outcome, len(e.sources))
	var g errgroup.Group
	g.SetLimit(len(e.sources))
	for i := range e.sources {
		g.Go(func() error {
			outcomes[i] = e.resolve(ctx, &e.sources[i], keys)
			return nil
		})
	}
	_ = g.Wait()

	b := &batch{e: e, outcomes: outcomes, now: e.now()}
	results := make([]Result, len(devices))
	prs := make([]ProviderResult, len(devices)*len(e.sources))
	stats := Stats{Devices: len(devices), Matched: map[string]int{}, Errors: map[string]int{}, Stale: map[string]int{}}
	for si := range e.sources {
		name := e.sources[si].Name
		for di := range devices {
			switch o := &outcomes[si][di]; {
			case o.rec != nil && o.stale:
				stats.Stale[name]++
				stats.Matched[name]++
			case o.rec != nil:
				stats.Matched[name]++
			case o.err != nil:
				stats.Errors[name]++
			}
		}
	}
	n := len(e.sources)
	for di, d := range devices {
		results[di] = e.fold(b, di, d.ID, prs[di*n:(di+1)*n:(di+1)*n])
	}
	stats.Duration = e.now().Sub(start)
	return results, stats
}

// EvaluateFresh is Evaluate for a recheck ("the user fixed their laptop"):
// no lookup is answered from the cache; every provider is asked again
// (a sync-mode provider with a Miss through the vendor's query path rather
// than its last crawl), within the vendor clients' rate budgets, and the
// answers replace the cached ones for the batches that follow.
func (e *Engine) EvaluateFresh(ctx context.Context, devices []Device) ([]Result, Stats) {
	return e.Evaluate(cache.WithRefresh(ctx), devices)
}

// loader is the cache of kind's answers, nil if there is none.
func (s *source) loader(kind providers.Kind) *cache.Loader[[]providers.Record] {
	if s.loaders == nil {
		return nil
	}
	return s.loaders[kind]
}

// lookupRounds order the lookups of one provider. Serial first: it settles
// most devices. The other kinds are then asked concurrently, only for the
// devices still unmatched: a device absent from a vendor costs one more
// round trip instead of three, and priority still decides when several
// kinds find a record.
var lookupRounds = [][]providers.Kind{
	{providers.KindSerial},
	{providers.KindMAC, providers.KindHostname, providers.KindEmail},
}

// resolve finds, for every device, the record of one provider.
func (e *Engine) resolve(ctx context.Context, s *source, keys []deviceKeys) (out []outcome) {
	out = make([]outcome, len(keys))
	defer func() {
		if r := recover(); r != nil {
			failUnmatched(out, fmt.Errorf("provider %s panicked: %v", s.Name, r))
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()

	for _, round := range lookupRounds {
		if err := ctx.Err(); err != nil {
			// Out of time: devices still waiting on a key count as failed
			// rather than unmatched, and no vendor call is started for a
			// caller that has gone.
			for i := range keys {
				if out[i].rec == nil && slices.ContainsFunc(round, func(k providers.Kind) bool { return keys[i].value(k) != "" }) {
					out[i].err = fmt.Errorf("%s: lookup: %w", s.Name, err)
				}
			}
			break
		}
		answers := make([][]lookedUp, len(round))
		slots := make([][]int32, len(round))
		errs := make([]error, len(round))
		var wg sync.WaitGroup
		for j, kind := range round {
			var values []string
			values, slots[j] = pendingValues(keys, out, kind)
			if len(values) == 0 {
				continue
			}
			wg.Go(func() {
				defer func() {
					if r := recover(); r != nil {
						errs[j] = fmt.Errorf("provider %s panicked: %v", s.Name, r)
					}
				}()
				answers[j], errs[j] = e.lookup(ctx, s, kind, values)
			})
		}
		wg.Wait()
		for j, kind := range round { // priority order
			if answers[j] == nil && errs[j] == nil {
				continue // no device had this kind
			}
			for i := range keys {
				if slot := slots[j][i]; slot >= 0 && out[i].rec == nil {
					var found lookedUp
					if answers[j] != nil {
						found = answers[j][slot]
					}
					apply(&out[i], s, kind, keys[i].value(kind), &keys[i], found, errs[j])
				}
			}
		}
	}
	return out
}

// pendingValues are the distinct values of kind among unmatched devices,
// and for every device the index of its value there (-1: none).
func pendingValues(keys []deviceKeys, out []outcome, kind providers.Kind) ([]string, []int32) {
	slots := make([]int32, len(keys))
	pending := 0
	for i := range keys {
		slots[i] = -1
		if keys[i].value(kind) != "" && out[i].rec == nil {
			pending++
		}
	}
	if pending == 0 {
		return nil, slots // the usual email round: every device sent a hardware key
	}
	values := make([]string, 0, pending)
	seen := make(map[string]int32, pending)
	for i := range keys {
		v := keys[i].value(kind)
		if v == "" || out[i].rec != nil {
			continue
		}
		slot, dup := seen[v]
		if !dup {
			slot = int32(len(values)) // #nosec G115 -- at most a batch of devices
			seen[v] = slot
			values = append(values, v)
		}
		slots[i] = slot
	}
	return values, slots
}

// apply records one kind's answer for one device: r, or err for the whole
// kind.
func apply(o *outcome, s *source, kind providers.Kind, v string, dev *deviceKeys, r lookedUp, err error) {
	o.tried.add(kind)
	switch {
	case err != nil && errors.Is(err, providers.ErrUnsupportedKind):
		o.notes = append(o.notes, fmt.Sprintf("cannot look up by %s", kind))
		return
	case err != nil:
		o.err = err
		return
	}
	if r.err != nil && (r.recs == nil || s.OnError != providers.OnErrorStale) {
		o.err = r.err
		return
	}
	pick(o, kind, v, r.recs, dev, slices.Contains(s.RequireEmailFor, kind))
	if o.rec != nil && r.err != nil {
		o.stale = true
		o.err = r.err
	}
}

func failUnmatched(out []outcome, err error) {
	for i := range out {
		if out[i].rec == nil {
			out[i].err = err
		}
	}
}

// lookedUp is the answer for one value of one kind.
type lookedUp struct {
	recs []providers.Record
	err  error
}

// lookup answers values of one kind, in the order of values: from the
// provider, or for a sync-mode provider with a Miss, from the index first
// and from the vendor for what the index lacks.
func (e *Engine) lookup(ctx context.Context, s *source, kind providers.Kind, values []string) ([]lookedUp, error) {
	if s.Miss == nil {
		return e.ask(ctx, s.Provider, s.loader(kind), kind, values)
	}
	if cache.Refreshing(ctx) {
		// A recheck asks the vendor, not the last crawl, unless the vendor
		// cannot query this kind.
		if out, err := e.ask(ctx, s.Miss, s.loader(kind), kind, values); err == nil {
			return out, nil
		}
	}
	out, err := e.ask(ctx, s.Provider, nil, kind, values)
	if err != nil {
		return out, err
	}
	var missing []string
	var at []int
	for i, v := range values {
		if r := out[i]; r.err == nil && len(r.recs) == 0 {
			missing = append(missing, v)
			at = append(at, i)
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	more, err := e.ask(ctx, s.Miss, s.loader(kind), kind, missing)
	if err != nil {
		// The vendor cannot query this kind (Intune by MAC): the index's
		// answer stands.
		return out, nil
	}
	for k, r := range more {
		out[at[k]] = r
	}
	return out, nil
}

// ask answers values of one kind from p, in the order of values, through
// loader when there is one. Only records that really carry the value are
// kept: vendors sometimes ignore a filter and return more.
func (e *Engine) ask(ctx context.Context, p Provider, loader *cache.Loader[[]providers.Record], kind providers.Kind, values []string) ([]lookedUp, error) {
	out := make([]lookedUp, len(values))
	if ix, ok := p.(Indexed); ok && loader == nil {
		// Matched in place: the index holds normalised records, keyed by
		// the values they carry.
		idx, err := ix.Index()
		if err != nil {
			for i := range out {
				out[i].err = err
			}
			return out, nil
		}
		// One backing array for the batch's records, not one per value.
		recs := make([]providers.Record, 0, len(values))
		for i, v := range values {
			start := len(recs)
			if recs = idx.Find(kind, v, recs); len(recs) > start {
				out[i].recs = recs[start:len(recs):len(recs)]
			}
		}
		return out, nil
	}
	// fetch asks the vendor. A *providers.PartialError fails only the
	// values it names (failed); the records found stand for the others.
	fetch := func(ctx context.Context, vals []string) (byValue map[string][]providers.Record, failed map[string]error, err error) {
		recs, err := p.Lookup(ctx, providers.Query{Kind: kind, Values: vals})
		var pe *providers.PartialError
		if errors.As(err, &pe) {
			failed = make(map[string]error, len(pe.Values))
			for _, v := range pe.Values {
				failed[v] = err
			}
		} else if err != nil {
			return nil, nil, err
		}
		want := make(map[string]bool, len(vals))
		for _, v := range vals {
			want[v] = failed[v] == nil
		}
		byValue = make(map[string][]providers.Record, len(vals))
		for i := range recs {
			r := recs[i].Normalize()
			for _, v := range r.Identifiers(kind) {
				if want[v] {
					byValue[v] = append(byValue[v], *r)
				}
			}
		}
		return byValue, failed, nil
	}
	if loader == nil {
		m, failed, err := fetch(ctx, values)
		if err != nil {
			if errors.Is(err, providers.ErrUnsupportedKind) {
				return nil, err
			}
			for i := range values {
				out[i] = lookedUp{err: err}
			}
			return out, nil
		}
		for i, v := range values {
			out[i] = lookedUp{recs: m[v], err: failed[v]}
		}
		return out, nil
	}
	var unsupported error
	loader.LoadEach(ctx, values, func(ctx context.Context, vals []string) (map[string][]providers.Record, error) {
		m, failed, err := fetch(ctx, vals)
		if err != nil {
			return nil, err
		}
		if len(failed) > 0 {
			ke := make(cache.KeyErrors, len(failed))
			for v, err := range failed {
				ke[v] = err
			}
			return m, ke
		}
		return m, nil
	}, func(i int, r cache.Result[[]providers.Record]) {
		if r.Err != nil && errors.Is(r.Err, providers.ErrUnsupportedKind) {
			unsupported = r.Err
		}
		out[i] = lookedUp{recs: r.Value, err: r.Err}
	})
	if unsupported != nil {
		return nil, unsupported
	}
	return out, nil
}

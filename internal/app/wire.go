package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/postured/postured/adjust"
	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/audit"
	"github.com/postured/postured/cache"
	"github.com/postured/postured/history"
	"github.com/postured/postured/internal/auditlog"
	"github.com/postured/postured/internal/crawlshare"
	"github.com/postured/postured/internal/redisopt"
	"github.com/postured/postured/providers"
	"github.com/postured/postured/providers/crowdstrike"
	"github.com/postured/postured/providers/intune"
	"github.com/postured/postured/providers/jamf"
	"github.com/postured/postured/providers/static"
	"github.com/postured/postured/server"
	"github.com/postured/postured/server/access"
	"github.com/postured/postured/server/evaluate"
	"github.com/postured/postured/server/evaluate/policy"
	"github.com/postured/postured/server/statuspage"
)

// Registry is the one list of provider types postured knows. Adding a
// vendor means adding a line here; nothing registers itself.
func Registry() providers.Registry[aggregate.Provider] {
	return providers.Registry[aggregate.Provider]{
		"crowdstrike": providers.Entry(open(crowdstrike.New)),
		"intune":      providers.Entry(open(intune.New)),
		"jamf":        providers.Entry(open(jamf.New)),
		"static":      providers.Entry(synced(static.New, func(c *static.Config) time.Duration { return time.Duration(c.ReloadInterval) })),
	}
}

// open adapts a vendor constructor to the registry, checking at compile
// time that the vendor's type is an aggregate.Provider, and never turning a
// failed constructor's nil pointer into a non-nil interface.
func open[C any, P aggregate.Provider](newFn func(C, providers.Deps) (P, error)) func(C, providers.Deps) (aggregate.Provider, error) {
	return func(c C, d providers.Deps) (aggregate.Provider, error) {
		p, err := newFn(c, d)
		if err != nil {
			return nil, err
		}
		return p, nil
	}
}

// synced adapts the constructor of a provider that can only list its whole
// inventory (static): it is served by an aggregate.Syncer, as a vendor in
// mode: sync is, crawling every interval(c). The first crawl happens here,
// so the data the constructor checked is served from the first request
// rather than from Run's first tick.
func synced[C providers.Config, L aggregate.Lister](newFn func(C, providers.Deps) (L, error), interval func(C) time.Duration) func(C, providers.Deps) (aggregate.Provider, error) {
	return func(c C, d providers.Deps) (aggregate.Provider, error) {
		l, err := newFn(c, d)
		if err != nil {
			return nil, err
		}
		s, err := aggregate.NewSyncer(aggregate.SyncerConfig{Name: c.Base().Name, Lister: l, Interval: interval(c), Logger: d.Logger})
		if err != nil {
			return nil, err
		}
		// Open has no context: providers are opened once, at start-up, and
		// this crawl reads a local file the constructor has just read.
		if err := s.SyncOnce(context.Background()); err != nil {
			return nil, err
		}
		return s, nil
	}
}

// App is a fully wired postured.
type App struct {
	cfg    *Config
	engine *aggregate.Engine
	// adj applies overrides and hysteresis after the fold. posture is
	// engine with them, advancing the hysteresis state: what /posture
	// answers. reader is the same without advancing: explanations,
	// rechecks and External Evaluation's recomputations.
	adj             *adjust.Adjuster
	posture, reader *adjust.Engine
	runners         []aggregate.Runner
	syncers         []*aggregate.Syncer
	statuses        map[string]aggregate.StatusReporter
	logger          *slog.Logger
	registry        *prometheus.Registry
	// keys is the team's Access key set NewServer built; nil with
	// insecure_skip_verify.
	keys *access.KeySet

	// sources and store are the live engine's, for what-if and shadow
	// engines that answer from the same cache and indexes.
	sources []aggregate.Source
	store   cache.Store[[]providers.Record]
	// memory is the posture memory: External Evaluation's device
	// postures and what-if's recent devices (POST /v1/whatif, on
	// admin_listen). nil when neither is on.
	memory *server.PostureMemory
	// observers see every answered batch.
	observers []server.BatchObserver
	// statusRec keeps what GET /status shows: batches and vendor 429s.
	statusRec *statuspage.Recorder
}

// NewLogger builds the process logger from the log: section.
func NewLogger(c LogConfig, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(strings.ToUpper(c.Level)))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// Build opens every provider and the engine. Nothing runs until Start.
func Build(cfg *Config, reg providers.Registry[aggregate.Provider], logger *slog.Logger) (*App, error) {
	return BuildWith(cfg, reg, logger, Hooks{})
}

// Hooks let a program that runs postured in-process watch its insides
// (cmd/postured-bench counts cache hits); the service itself sets none.
type Hooks struct {
	// Store, if set, wraps the lookup cache store built from cache:.
	Store func(cache.Store[[]providers.Record]) cache.Store[[]providers.Record]
}

// BuildWith is Build with hooks.
func BuildWith(cfg *Config, reg providers.Registry[aggregate.Provider], logger *slog.Logger, h Hooks) (*App, error) {
	a := &App{cfg: cfg, logger: logger, statuses: map[string]aggregate.StatusReporter{}, registry: prometheus.NewRegistry()}
	store, err := newStore(cfg.Cache)
	if err != nil {
		return nil, err
	}
	vendorResponses := newVendorResponses()
	if err := a.registry.Register(vendorResponses); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	// The status page's per-device scores are bounded like the cache.
	if a.statusRec, err = statuspage.NewRecorder(statuspage.RecorderConfig{MaxDevices: cfg.Cache.MaxEntries}); err != nil {
		return nil, err
	}
	share, err := newCrawlShare(cfg.Cache)
	if err != nil {
		return nil, err
	}
	if h.Store != nil {
		store = h.Store(store)
	}
	var sources []aggregate.Source
	for _, pc := range cfg.Providers.Configs {
		base := pc.Base()
		deps := providers.Deps{
			Logger: logger.With("provider", base.Name, "type", base.Type),
			ObserveResponse: func(status int) {
				vendorResponses.WithLabelValues(base.Name, statusClass(status)).Inc()
				a.statusRec.ObserveResponse(base.Name, status)
			},
		}
		p, err := reg[base.Type].Open(pc, deps)
		if err != nil {
			return nil, fmt.Errorf("provider %q: %w", base.Name, err)
		}
		var miss aggregate.Provider
		if base.Mode == providers.ModeSync {
			if base.OnMiss == providers.OnMissQuery {
				miss = p // the vendor's query path, for devices the crawl has not seen
			}
			l, ok := p.(aggregate.Lister)
			if !ok {
				return nil, fmt.Errorf("provider %q: type %s does not support mode: sync", base.Name, base.Type)
			}
			sc := aggregate.SyncerConfig{
				Name: base.Name, Lister: l, Interval: time.Duration(base.SyncInterval), Logger: deps.Logger,
				// A 100k-device crawl leaves ~100 MB of garbage; without
				// this the process keeps twice its steady heap resident.
				Swapped: debug.FreeOSMemory,
			}
			if share != nil {
				if sc.Coordinator, err = share(base.Name, sc.Interval, deps.Logger); err != nil {
					return nil, fmt.Errorf("provider %q: %w", base.Name, err)
				}
			}
			if p, err = aggregate.NewSyncer(sc); err != nil {
				return nil, fmt.Errorf("provider %q: %w", base.Name, err)
			}
		}
		if s, ok := p.(*aggregate.Syncer); ok {
			a.syncers = append(a.syncers, s)
		}
		if r, ok := p.(aggregate.Runner); ok {
			a.runners = append(a.runners, r)
		}
		if s, ok := p.(aggregate.StatusReporter); ok {
			a.statuses[base.Name] = s
		}
		sources = append(sources, sourceFor(base, p, miss))
	}
	names := make([]string, 0, len(cfg.Providers.Configs))
	for _, pc := range cfg.Providers.Configs {
		names = append(names, pc.Base().Name)
	}
	if err := a.registry.Register(newStatusCollector(names, a.statuses)); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	a.engine, err = aggregate.New(aggregate.Config{
		Sources:        sources,
		Deadline:       time.Duration(cfg.Posture.Deadline),
		UnmatchedScore: cfg.Posture.UnmatchedScore,
		S2SIDFrom:      cfg.Posture.S2SIDFrom,
		Store:          store,
		CacheTTL:       time.Duration(cfg.Cache.TTL),
		StaleTTL:       time.Duration(cfg.Cache.StaleTTL),
		NegativeTTL:    time.Duration(cfg.Cache.NegativeTTL),
		Logger:         logger,
	})
	if err != nil {
		return nil, err
	}
	a.sources, a.store = sources, store
	if err := a.buildWhatIf(); err != nil {
		return nil, err
	}
	if a.adj, err = newAdjuster(cfg, logger); err != nil {
		return nil, err
	}
	a.posture, a.reader = a.adj.Engine(a.engine, true), a.adj.Engine(a.engine, false)
	a.buildMemory()
	return a, nil
}

// buildMemory sets up the posture memory, one per App: External
// Evaluation reads a device's posture from it, and what-if (with
// admin_listen) the devices recent batches carried. It is the only place
// postured keeps a device's identifiers, bounded like the cache.
func (a *App) buildMemory() {
	c := a.cfg
	if !c.ExternalEvaluation.Enabled && c.AdminListen == "" {
		return
	}
	a.memory = server.NewPostureMemory(server.PostureMemoryConfig{
		Engine: a.reader, Fresh: time.Duration(c.Cache.TTL), Retain: 24 * time.Hour,
		Deadline: time.Duration(c.ExternalEvaluation.Policy.PostureDeadline), MaxDevices: c.Cache.MaxEntries,
	})
	a.observers = append(a.observers, a.memory)
}

// Redis keys of package adjust's state, beside the cache's
// postured:lookup: and the key ring's postured:ee:.
const (
	RedisOverridesKey = "postured:overrides"
	redisStatePrefix  = "postured:hysteresis:"
)

// newAdjuster builds the overrides and hysteresis stage on the cache
// backend: with Redis, runtime overrides and hysteresis state are shared
// by every replica; in memory, the state is bounded by cache.max_entries
// and only the config file's overrides exist.
func newAdjuster(cfg *Config, logger *slog.Logger) (*adjust.Adjuster, error) {
	ac := adjust.Config{Overrides: cfg.ParsedOverrides(), Hysteresis: cfg.Posture.Hysteresis, Logger: logger.With("component", "adjust")}
	c := cfg.Cache
	if c.Backend == "redis" {
		rt, err := RuntimeOverrides(cfg)
		if err != nil {
			return nil, err
		}
		ac.Runtime = rt
	}
	if ac.Hysteresis != nil {
		switch c.Backend {
		case "redis":
			st, err := cache.NewRedis[adjust.State](cache.RedisConfig{URL: c.RedisURL.Reveal(), TLSCAFile: c.RedisTLSCAFile, Prefix: redisStatePrefix})
			if err != nil {
				return nil, fmt.Errorf("posture.hysteresis: %w", err)
			}
			ac.States = st
		default:
			st, err := cache.NewMemory[adjust.State](cache.MemoryConfig{MaxEntries: c.MaxEntries, Cleanup: time.Minute})
			if err != nil {
				return nil, fmt.Errorf("posture.hysteresis: %w", err)
			}
			ac.States = st
		}
	}
	return adjust.New(ac)
}

// RuntimeOverrides opens the overrides `postured override add` writes.
// They live in the Redis of cache.redis_url; with the memory backend a
// command cannot reach a running postured, and the error says to use the
// config file.
func RuntimeOverrides(cfg *Config) (*adjust.RedisOverrides, error) {
	if cfg.Cache.Backend != "redis" {
		return nil, fmt.Errorf("overrides: cache.backend is %s: a running postured keeps its state in its own memory, which this command cannot reach; "+
			"add the override to overrides: in the config file (and restart), or use cache.backend: redis", cfg.Cache.Backend)
	}
	return adjust.NewRedisOverrides(adjust.RedisConfig{URL: cfg.Cache.RedisURL.Reveal(), TLSCAFile: cfg.Cache.RedisTLSCAFile, Key: RedisOverridesKey})
}

// keyRingStatus names the External Evaluation key ring in /readyz.
const keyRingStatus = "external_evaluation_keys"

// auditStatus names the audit log in /readyz.
const auditStatus = "audit_log"

// newAuditObserver opens the audit log with the policies the engine folds
// with, for the records' replay.
func (a *App) newAuditObserver() (*auditlog.Observer, error) {
	c := a.cfg
	hash, err := c.Hash()
	if err != nil {
		return nil, err
	}
	pol := auditlog.Policy{UnmatchedScore: c.Posture.UnmatchedScore, S2SIDFrom: c.Posture.S2SIDFrom, Providers: map[string]auditlog.ProviderPolicy{}}
	for _, pc := range c.Providers.Configs {
		b := pc.Base()
		pol.Providers[b.Name] = auditlog.ProviderPolicy{Required: b.Required, OnError: b.OnError, MaxLastSeen: time.Duration(b.MaxLastSeen)}
	}
	return auditlog.New(auditlog.Config{
		Log: audit.Config{
			Path: c.Audit.Path, MaxBytes: c.Audit.MaxFileBytes,
			MaxFiles: c.Audit.Retention.MaxFiles, MaxAge: time.Duration(c.Audit.Retention.MaxAge),
		},
		ConfigHash: hash, Policy: pol,
		Logger: a.logger.With("component", "audit"), Registerer: a.registry,
	})
}

// statusFunc adapts a function to aggregate.StatusReporter.
type statusFunc func() aggregate.Status

func (f statusFunc) Status() aggregate.Status { return f() }

func newStore(c CacheConfig) (cache.Store[[]providers.Record], error) {
	switch c.Backend {
	case "memory":
		m, err := cache.NewMemory[[]providers.Record](cache.MemoryConfig{MaxEntries: c.MaxEntries, Cleanup: time.Minute})
		if err != nil {
			// A nil *Memory in the Store interface would not compare equal to nil.
			return nil, err
		}
		return m, nil
	case "redis":
		return cache.NewRedis[[]providers.Record](cache.RedisConfig{URL: c.RedisURL.Reveal(), TLSCAFile: c.RedisTLSCAFile, Prefix: "postured:lookup:"})
	default:
		return nil, fmt.Errorf("cache: backend %q is not available", c.Backend)
	}
}

// newCrawlShare returns what makes each sync-mode provider's Coordinator,
// all over one Redis client; nil when crawls are not shared.
func newCrawlShare(c CacheConfig) (func(name string, interval time.Duration, logger *slog.Logger) (aggregate.Coordinator, error), error) {
	if !c.SharesCrawls() {
		return nil, nil
	}
	opts, err := redisopt.Options(redisopt.Config{URL: c.RedisURL.Reveal(), TLSCAFile: c.RedisTLSCAFile})
	if err != nil {
		return nil, fmt.Errorf("cache: redis_url: %w", err)
	}
	// Published crawls are megabytes: reads get longer than a lookup's.
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = 2*time.Second, 10*time.Second, 10*time.Second
	client := redis.NewClient(opts)
	return func(name string, interval time.Duration, logger *slog.Logger) (aggregate.Coordinator, error) {
		c, err := crawlshare.New(crawlshare.Config{Client: client, Prefix: "postured:crawl:", Name: name, Interval: interval, Logger: logger})
		if err != nil {
			return nil, err
		}
		return c, nil
	}, nil
}

// Engine is the app's aggregation engine.
func (a *App) Engine() *aggregate.Engine { return a.engine }

// Explain scores one device with the app's providers, overrides and
// hysteresis, and says why: what `postured explain` prints and GET
// /v1/explain answers, so the two cannot disagree. d.ID, Cloudflare's
// device_id, is optional: with it, the device's hysteresis state and
// device_id overrides are read (never advanced); without it the
// explanation names the device "explain".
func (a *App) Explain(ctx context.Context, d aggregate.Device) aggregate.Explanation {
	res, _ := a.reader.Evaluate(ctx, []aggregate.Device{d})
	ex := res[0].Explain()
	if ex.DeviceID == "" {
		ex.DeviceID = "explain"
	}
	return ex
}

// Recheck scores one device with every provider asked again, past the
// cache (POST /v1/recheck), and says why. The refreshed lookups are cached
// for the batches that follow.
func (a *App) Recheck(ctx context.Context, d aggregate.Device) aggregate.Explanation {
	devices := []aggregate.Device{d}
	res, _ := a.engine.EvaluateFresh(ctx, devices)
	a.adj.Apply(ctx, devices, res, false) // the final score, as explain shows it
	return res[0].Explain()
}

// Config is the configuration the app was built from.
func (a *App) Config() *Config { return a.cfg }

// Start runs the background work of every provider until ctx ends.
func (a *App) Start(ctx context.Context) {
	for _, r := range a.runners {
		go r.Run(ctx)
	}
}

// SyncNow performs one sync of every in-memory provider (sync mode,
// static), for one-shot commands (explain) that do not run the background
// loops. A failed sync is logged and shows in the provider's explanation.
func (a *App) SyncNow(ctx context.Context) {
	for _, s := range a.syncers {
		if err := s.SyncOnce(ctx); err != nil {
			a.logger.Warn("inventory sync failed", "error", err)
		}
	}
}

// NewServer builds the HTTP server over the app, with External Evaluation
// when it is enabled. The team's Access key set is built once here and
// shared by the posture endpoint and External Evaluation, so both see the
// same keys and the same refetch cooldown. The returned close releases the
// evaluation handler (revocations in flight, key store) once the server has
// stopped.
func (a *App) NewServer(ctx context.Context) (*server.Server, func() error, error) {
	c := a.cfg
	accessCfg := access.Config{
		TeamDomain: c.Access.TeamDomain, Audiences: c.Access.Audience, CertsURL: c.Access.CertsURL,
		Leeway: time.Duration(c.Access.Leeway), RefetchCooldown: time.Duration(c.Access.RefetchCooldown),
		Logger: a.logger.With("component", "access"),
	}
	var keys *access.KeySet
	if !c.Access.InsecureSkipVerify {
		var err error
		if keys, err = access.NewKeySet(accessCfg); err != nil {
			return nil, nil, err
		}
	}
	a.keys = keys
	closeFn := func() error { return nil }
	observers := slices.Clone(a.observers)
	var routes func(gin.IRouter)
	var hist server.HistoryReader
	if c.History.Enabled {
		rec, closeHist, err := a.openHistory()
		if err != nil {
			return nil, nil, err
		}
		observers = append(observers, historyObserver{rec: rec, logger: a.logger.With("component", "history")})
		hist = rec
		closeFn = closeHist
	}
	if ee := c.ExternalEvaluation; ee.Enabled {
		if keys == nil {
			_ = closeFn()
			return nil, nil, errors.New("external_evaluation: needs the team's Access keys: not allowed with access.insecure_skip_verify")
		}
		h, err := evaluate.New(ctx, evaluate.Options{
			Config: ee, Keys: keys, TeamDomain: c.Access.TeamDomain, Posture: postureSource{a.memory},
			Logger:   a.logger.With("component", "external_evaluation"),
			Registry: a.registry,
		})
		if err != nil {
			_ = closeFn()
			return nil, nil, err
		}
		closeHist := closeFn
		closeFn = func() error { return errors.Join(h.Close(), closeHist()) }
		routes = h.Register
		a.statuses[keyRingStatus] = statusFunc(h.KeyRingStatus)
	}
	statusPage, err := a.newStatusPage(hist)
	if err != nil {
		_ = closeFn()
		return nil, nil, err
	}
	observers = append(observers, a.statusRec)
	if c.Audit.Enabled {
		obs, err := a.newAuditObserver()
		if err != nil {
			return nil, nil, errors.Join(err, closeFn())
		}
		observers = append(observers, obs)
		a.statuses[auditStatus] = obs
		closeEval := closeFn
		closeFn = func() error { return errors.Join(closeEval(), obs.Close()) }
	}
	srv, err := server.New(server.Config{
		Listen:             c.Listen,
		AdminListen:        c.AdminListen,
		Access:             accessCfg,
		Keys:               keys,
		InsecureSkipVerify: c.Access.InsecureSkipVerify,
		AllowedCommonNames: c.Access.AllowedCommonNames,
		// Batches feed External Evaluation's posture memory: with it on, a
		// user of the app must not post posture (item 3 of issue 10).
		ServiceTokensOnly: c.ExternalEvaluation.Enabled,
		MaxDevices:        c.Posture.MaxDevices,
		Engine:            a.posture,
		Explainer:         a,
		History:           hist,
		Rechecker:         a,
		StatusPage:        statusPage,
		Statuses:          a.statuses,
		TrustedProxies:    c.Server.TrustedProxies,
		ShutdownTimeout:   time.Duration(c.Server.ShutdownTimeout),
		Observers:         observers,
		Routes:            routes,
		AdminRoutes:       a.adminRoutes(),
		Logger:            a.logger,
		Registry:          a.registry,
	})
	if err != nil {
		_ = closeFn()
		return nil, nil, err
	}
	return srv, closeFn, nil
}

// historyPrefix namespaces the history's Redis keys.
const historyPrefix = "postured:history:"

// openHistory opens the score history in the cache backend, fed by the
// app's providers' max_last_seen. The returned close releases the store.
func (a *App) openHistory() (*history.Recorder, func() error, error) {
	c, h := a.cfg, a.cfg.History
	maxLastSeen := make(map[string]time.Duration, len(c.Providers.Configs))
	for _, pc := range c.Providers.Configs {
		maxLastSeen[pc.Base().Name] = time.Duration(pc.Base().MaxLastSeen)
	}
	var store history.Store
	closeFn := func() error { return nil }
	switch c.Cache.Backend {
	case "redis":
		r, err := newHistoryRedis(c)
		if err != nil {
			return nil, nil, err
		}
		store, closeFn = r, r.Close
	default:
		m, err := history.NewMemory(history.MemoryConfig{
			MaxDevices: c.Cache.MaxEntries, MaxBytes: h.MaxBytes, MaxChanges: h.MaxChanges, Retention: time.Duration(h.Retention),
		})
		if err != nil {
			return nil, nil, err
		}
		store = m
	}
	rec, err := history.New(history.Config{Store: store, MaxLastSeen: maxLastSeen})
	if err != nil {
		_ = closeFn()
		return nil, nil, err
	}
	return rec, closeFn, nil
}

func newHistoryRedis(c *Config) (*history.Redis, error) {
	return history.NewRedis(history.RedisConfig{
		URL: c.Cache.RedisURL.Reveal(), TLSCAFile: c.Cache.RedisTLSCAFile, Prefix: historyPrefix,
		MaxChanges: c.History.MaxChanges, Retention: time.Duration(c.History.Retention),
	})
}

// ReadHistory is one device's history as the running postured keeps it,
// for `postured history`: read from Redis directly. With the memory backend
// the history is inside the serving process, which another process cannot
// read; the error says to ask the server instead.
func ReadHistory(ctx context.Context, c *Config, deviceID string) (history.Device, bool, error) {
	switch {
	case !c.History.Enabled:
		return history.Device{}, false, errors.New("history: not enabled (history.enabled: false)")
	case c.Cache.Backend != "redis":
		return history.Device{}, false, fmt.Errorf("history: with cache.backend: %s the history lives in the serving process; "+
			"ask it with GET /v1/history?device_id=ID (Access JWT, like /posture)", c.Cache.Backend)
	}
	r, err := newHistoryRedis(c)
	if err != nil {
		return history.Device{}, false, err
	}
	defer r.Close()
	d, ok, err := r.Device(ctx, deviceID)
	if err != nil {
		return history.Device{}, false, fmt.Errorf("history: read %s: %w", deviceID, err)
	}
	return d, ok, nil
}

// historyObserver feeds every answered batch to the history. A failed
// write is logged here: an observer cannot fail a batch Cloudflare is
// owed an answer for.
type historyObserver struct {
	rec    *history.Recorder
	logger *slog.Logger
}

func (h historyObserver) ObserveBatch(ctx context.Context, b server.Batch) {
	if err := h.rec.Record(ctx, b.At, b.Results); err != nil {
		h.logger.Warn("history not recorded", "request_id", b.RequestID, "devices", len(b.Results), "error", err)
	}
}

// newStatusPage builds GET /status over the app's status recorder; hist
// (nil with history disabled) is the reader GET /v1/history uses.
func (a *App) newStatusPage(hist server.HistoryReader) (*statuspage.Page, error) {
	var infos []statuspage.ProviderInfo
	for _, pc := range a.cfg.Providers.Configs {
		b := pc.Base()
		mode := string(b.Mode)
		if b.Type == "static" {
			mode = "file" // reloaded into memory; mode does not apply
		}
		infos = append(infos, statuspage.ProviderInfo{Name: b.Name, Type: b.Type, Mode: mode})
	}
	page, err := statuspage.New(statuspage.Config{
		Providers: infos, Statuses: a.statuses, Recorder: a.statusRec, Explainer: a, History: hist,
		Logger: a.logger.With("component", "status_page"),
	})
	if err != nil {
		return nil, err
	}
	return page, nil
}

// postureSource lets External Evaluation rules read the posture postured
// last computed for a device_id (counted providers only).
type postureSource struct{ m *server.PostureMemory }

func (p postureSource) DevicePosture(ctx context.Context, deviceID string) (policy.Posture, bool) {
	dp, ok := p.m.DevicePosture(ctx, deviceID)
	if !ok {
		return policy.Posture{}, false
	}
	scores := make(map[string]int, len(dp.Providers))
	for name, pp := range dp.Providers {
		if pp.Counted {
			scores[name] = pp.Score
		}
	}
	return policy.Posture{Score: dp.Score, Providers: scores, At: dp.At}, true
}

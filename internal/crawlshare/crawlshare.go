// Package crawlshare lets postured replicas that share a Redis share each
// sync-mode crawl: per provider and interval one replica holds a lease,
// crawls the vendor and publishes the records; the others load them. A
// lease carries a fencing token, so a crawl that lost its lease (a paused
// or partitioned replica) can neither keep crawling nor overwrite a newer
// crawl. Without Redis every replica crawls alone and says so.
package crawlshare

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/internal/logging"
	"github.com/postured/postured/providers"
)

// Where a replica's records came from, as aggregate.Crawl.Source.
const (
	SourceLeader   = "crawled here, shared"
	SourceFollower = "loaded from another replica"
	SourceLocal    = "local (redis unavailable)"
)

// ErrLeaseLost is returned for a crawl whose lease another replica took
// over: the crawl was stopped and its records were not published.
var ErrLeaseLost = errors.New("crawl lease lost to another replica")

// errFenced is a publish refused because a newer lease exists.
var errFenced = fmt.Errorf("publish refused, a newer crawl holds the fence: %w", ErrLeaseLost)

// chunkSize bounds one Redis value of the published records: large
// values block Redis's single thread for as long as they take to copy.
const chunkSize = 512 << 10

// Config configures a Coordinator for one provider.
type Config struct {
	// Client is the Redis shared by the replicas; one client may serve
	// every provider's Coordinator.
	Client redis.UniversalClient
	// Prefix namespaces the keys, e.g. "postured:crawl:".
	Prefix string
	// Name is the provider's name: replicas with the same name share its
	// crawl.
	Name string
	// Interval is the provider's sync_interval: a crawl younger than
	// Interval minus a tenth is not repeated.
	Interval time.Duration
	// LeaseTTL is how long a lease outlives its last renewal; renewed
	// every third of it. Default 30s.
	LeaseTTL time.Duration
	// Poll is how often a replica waiting for another's crawl checks for
	// its result. Default 1s.
	Poll   time.Duration
	Logger *slog.Logger
	// Now and NewTicker are the clock; nil means the time package's.
	Now       func() time.Time
	NewTicker func(d time.Duration) (<-chan time.Time, func())
}

// Coordinator is an aggregate.Coordinator over Redis.
type Coordinator struct {
	cfg  Config
	keys keys
	log  *slog.Logger

	mu sync.Mutex
	// have is the generation this replica last returned records of.
	have int64
	// local is true while Redis is unavailable, to log the change once.
	local bool
}

var _ aggregate.Coordinator = (*Coordinator)(nil)

// keys are one provider's Redis keys. The hash tag keeps them in one
// cluster slot, which the scripts need.
type keys struct {
	lease, fence, meta, data string
}

// New checks cfg and fills its defaults.
func New(cfg Config) (*Coordinator, error) {
	switch {
	case cfg.Client == nil:
		return nil, fmt.Errorf("crawlshare %s: no redis client", cfg.Name)
	case cfg.Name == "":
		return nil, errors.New("crawlshare: no provider name")
	case cfg.Interval <= 0:
		return nil, fmt.Errorf("crawlshare %s: interval %s: want > 0", cfg.Name, cfg.Interval)
	case cfg.LeaseTTL < 0 || cfg.Poll < 0:
		return nil, fmt.Errorf("crawlshare %s: lease ttl and poll must be >= 0", cfg.Name)
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = 30 * time.Second
	}
	if cfg.Poll == 0 {
		cfg.Poll = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NewTicker == nil {
		cfg.NewTicker = func(d time.Duration) (<-chan time.Time, func()) {
			t := time.NewTicker(d)
			return t.C, t.Stop
		}
	}
	base := cfg.Prefix + "{" + cfg.Name + "}:"
	return &Coordinator{
		cfg:  cfg,
		keys: keys{lease: base + "lease", fence: base + "fence", meta: base + "meta", data: base + "data:"},
		log:  logging.OrDiscard(cfg.Logger).With("provider", cfg.Name),
	}, nil
}

// dataTTL is how long published records live: a few intervals, so a
// follower can load them until well after the next crawl was due.
func (c *Coordinator) dataTTL() time.Duration { return 3*c.cfg.Interval + c.cfg.LeaseTTL }

// meta is what a crawl published: its generation (the fence of the lease
// it ran under) and when it started.
type meta struct {
	gen     int64
	at      time.Time
	chunks  int
	records int
}

func (m meta) fresh(now time.Time, interval time.Duration) bool {
	return m.gen > 0 && now.Sub(m.at) < interval-interval/10
}

// Crawl implements aggregate.Coordinator. While another replica crawls it
// waits for that crawl's records, up to ctx; when that replica gives up
// or dies, its lease expires and one of the waiting replicas crawls. Any
// Redis failure falls back to crawling alone.
func (c *Coordinator) Crawl(ctx context.Context, l aggregate.Lister) (aggregate.Crawl, error) {
	for {
		m, err := c.readMeta(ctx)
		if err != nil {
			return c.alone(ctx, l, err)
		}
		if m.fresh(c.cfg.Now(), c.cfg.Interval) {
			cr, ok, err := c.follow(ctx, m)
			if err != nil {
				return c.alone(ctx, l, err)
			}
			if ok {
				return cr, nil
			}
			if cr.Source != "" {
				return cr, providers.ErrUnchanged
			}
		}
		ls, err := c.acquire(ctx)
		if err != nil {
			return c.alone(ctx, l, err)
		}
		if ls.fence > 0 {
			return c.lead(ctx, l, ls)
		}
		if err := c.wait(ctx, m.gen); err != nil {
			if ctx.Err() != nil {
				return aggregate.Crawl{}, fmt.Errorf("crawlshare %s: waiting for another replica's crawl: %w", c.cfg.Name, ctx.Err())
			}
			return c.alone(ctx, l, err)
		}
	}
}

// follow loads m's records unless this replica has them already (then it
// returns ok false and a Source). ok false with no Source: the records
// expired, so someone must crawl.
func (c *Coordinator) follow(ctx context.Context, m meta) (aggregate.Crawl, bool, error) {
	c.mu.Lock()
	have := c.have
	c.mu.Unlock()
	if m.gen == have {
		return aggregate.Crawl{Shared: true, Source: SourceFollower}, false, nil
	}
	recs, ok, err := c.load(ctx, m)
	if err != nil || !ok {
		return aggregate.Crawl{}, false, err
	}
	c.settle(m.gen)
	return aggregate.Crawl{Records: recs, Shared: true, Source: SourceFollower}, true, nil
}

// settle records that this replica serves generation gen, and that Redis
// works again.
func (c *Coordinator) settle(gen int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.have = gen
	if c.local {
		c.local = false
		c.log.Info("crawl sharing restored")
	}
}

// alone crawls without Redis: the replicas cannot agree on who crawls, so
// each does, as without sharing.
func (c *Coordinator) alone(ctx context.Context, l aggregate.Lister, cause error) (aggregate.Crawl, error) {
	c.mu.Lock()
	if !c.local {
		c.local = true
		c.log.Warn("crawl sharing unavailable, crawling alone", "error", cause)
	}
	c.have = 0 // the next shared generation is news, whatever its number
	c.mu.Unlock()
	recs, err := l.List(ctx)
	return aggregate.Crawl{Records: recs, Source: SourceLocal}, err
}

// lead crawls under ls, renewing it until the crawl ends and stopping the
// crawl if the lease is lost, then publishes and releases.
func (c *Coordinator) lead(ctx context.Context, l aggregate.Lister, ls lease) (aggregate.Crawl, error) {
	start := c.cfg.Now()
	defer func() {
		// The lease is released even when ctx ended: a crawl cut short must
		// not keep the other replicas waiting for its TTL.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := releaseScript.Run(rctx, c.cfg.Client, []string{c.keys.lease}, ls.token).Err(); err != nil {
			c.log.Warn("crawl lease release failed; it expires by itself", "error", err)
		}
	}()
	// A crawl may have been published between reading meta and taking the
	// lease: load it rather than crawl again.
	if m, err := c.readMeta(ctx); err == nil && m.fresh(c.cfg.Now(), c.cfg.Interval) {
		if cr, ok, err := c.follow(ctx, m); err == nil && (ok || cr.Source != "") {
			if !ok {
				return cr, providers.ErrUnchanged
			}
			return cr, nil
		}
	}

	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var redisErr error
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		redisErr = c.renew(cctx, ls.token, cancel)
	}()
	recs, err := l.List(cctx)
	cancel(nil)
	<-renewed
	if errors.Is(context.Cause(cctx), ErrLeaseLost) {
		return aggregate.Crawl{Shared: true, Source: SourceLeader}, fmt.Errorf("crawlshare %s: %w", c.cfg.Name, ErrLeaseLost)
	}
	if err != nil {
		return aggregate.Crawl{Shared: redisErr == nil, Source: SourceLeader}, err
	}
	if redisErr == nil {
		redisErr = c.publish(ctx, ls.fence, start, recs)
		if errors.Is(redisErr, ErrLeaseLost) {
			return aggregate.Crawl{Shared: true, Source: SourceLeader}, fmt.Errorf("crawlshare %s: %w", c.cfg.Name, redisErr)
		}
	}
	if redisErr != nil {
		// The records are good; only sharing them failed.
		c.mu.Lock()
		if !c.local {
			c.local = true
			c.log.Warn("crawl sharing unavailable, keeping this replica's crawl", "error", redisErr)
		}
		c.have = 0
		c.mu.Unlock()
		return aggregate.Crawl{Records: recs, Source: SourceLocal}, nil
	}
	c.settle(ls.fence)
	return aggregate.Crawl{Records: recs, Shared: true, Source: SourceLeader}, nil
}

// renew extends the lease every third of its TTL until ctx ends. A lease
// that is someone else's cancels the crawl with ErrLeaseLost; a Redis
// error is returned when ctx ends (the crawl goes on: no other replica
// can take a lease from a Redis this one cannot reach, and fencing
// refuses a stale publish if one did).
func (c *Coordinator) renew(ctx context.Context, token string, cancel context.CancelCauseFunc) error {
	tick, stop := c.cfg.NewTicker(c.cfg.LeaseTTL / 3)
	defer stop()
	var failed error
	for {
		select {
		case <-ctx.Done():
			return failed
		case <-tick:
		}
		ok, err := renewScript.Run(ctx, c.cfg.Client, []string{c.keys.lease}, token, c.cfg.LeaseTTL.Milliseconds()).Int()
		switch {
		case ctx.Err() != nil:
			return failed
		case err != nil:
			failed = fmt.Errorf("crawlshare %s: renew lease: %w", c.cfg.Name, err)
		case ok == 0:
			cancel(ErrLeaseLost)
			return nil
		}
	}
}

// wait polls until the generation moves past gen or nobody holds the
// lease any more.
func (c *Coordinator) wait(ctx context.Context, gen int64) error {
	tick, stop := c.cfg.NewTicker(c.cfg.Poll)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick:
		}
		pipe := c.cfg.Client.Pipeline()
		g := pipe.HGet(ctx, c.keys.meta, "gen")
		held := pipe.Exists(ctx, c.keys.lease)
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("crawlshare %s: poll: %w", c.cfg.Name, err)
		}
		now, _ := g.Int64()
		if now != gen || held.Val() == 0 {
			return nil
		}
	}
}

// lease is one acquisition of a provider's crawl lease.
type lease struct {
	token string
	fence int64
}

// acquire takes the lease; fence 0 means another replica holds it.
func (c *Coordinator) acquire(ctx context.Context) (lease, error) {
	token := rand.Text()
	fence, err := acquireScript.Run(ctx, c.cfg.Client, []string{c.keys.lease, c.keys.fence, c.keys.meta},
		token, c.cfg.LeaseTTL.Milliseconds(), 2*c.dataTTL().Milliseconds()).Int64()
	if err != nil {
		return lease{}, fmt.Errorf("crawlshare %s: acquire lease: %w", c.cfg.Name, err)
	}
	return lease{token: token, fence: fence}, nil
}

func (c *Coordinator) readMeta(ctx context.Context) (meta, error) {
	vals, err := c.cfg.Client.HMGet(ctx, c.keys.meta, "gen", "at", "chunks", "records").Result()
	if err != nil {
		return meta{}, fmt.Errorf("crawlshare %s: read meta: %w", c.cfg.Name, err)
	}
	var n [4]int64
	for i, v := range vals {
		s, _ := v.(string)
		n[i], _ = strconv.ParseInt(s, 10, 64) // absent or foreign: 0, nothing published
	}
	return meta{gen: n[0], at: time.UnixMilli(n[1]), chunks: int(n[2]), records: int(n[3])}, nil
}

// publish stores recs as generation fence, which becomes current only if
// fence is still the newest lease: chunks of a refused publish expire.
func (c *Coordinator) publish(ctx context.Context, fence int64, start time.Time, recs []providers.Record) error {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(recs); err != nil {
		return fmt.Errorf("crawlshare %s: encode: %w", c.cfg.Name, err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("crawlshare %s: encode: %w", c.cfg.Name, err)
	}
	b := buf.Bytes()
	ttl := c.dataTTL()
	pipe := c.cfg.Client.Pipeline()
	chunks := 0
	for off := 0; off < len(b) || chunks == 0; off += chunkSize {
		pipe.Set(ctx, c.chunkKey(fence, chunks), b[off:min(off+chunkSize, len(b))], ttl)
		chunks++
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("crawlshare %s: publish: %w", c.cfg.Name, err)
	}
	ok, err := publishScript.Run(ctx, c.cfg.Client, []string{c.keys.meta, c.keys.fence},
		fence, start.UnixMilli(), chunks, len(recs), ttl.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("crawlshare %s: publish: %w", c.cfg.Name, err)
	}
	if ok == 0 {
		return errFenced
	}
	c.log.Info("crawl published", "generation", fence, "records", len(recs), "bytes", len(b), "chunks", chunks)
	return nil
}

// load reads m's records; ok is false when they have expired.
func (c *Coordinator) load(ctx context.Context, m meta) ([]providers.Record, bool, error) {
	ks := make([]string, m.chunks)
	for i := range ks {
		ks[i] = c.chunkKey(m.gen, i)
	}
	vals, err := c.cfg.Client.MGet(ctx, ks...).Result()
	if err != nil {
		return nil, false, fmt.Errorf("crawlshare %s: load: %w", c.cfg.Name, err)
	}
	var buf bytes.Buffer
	for _, v := range vals {
		s, ok := v.(string)
		if !ok {
			return nil, false, nil
		}
		buf.WriteString(s)
	}
	zr, err := gzip.NewReader(&buf)
	if err != nil {
		return nil, false, fmt.Errorf("crawlshare %s: decode generation %d: %w", c.cfg.Name, m.gen, err)
	}
	recs := make([]providers.Record, 0, m.records)
	if err := json.NewDecoder(zr).Decode(&recs); err != nil {
		return nil, false, fmt.Errorf("crawlshare %s: decode generation %d: %w", c.cfg.Name, m.gen, err)
	}
	return recs, true, nil
}

func (c *Coordinator) chunkKey(gen int64, i int) string {
	return c.keys.data + strconv.FormatInt(gen, 10) + ":" + strconv.Itoa(i)
}

// The lease's value is a random owner token. The fence is counted only
// when a lease is taken, so the newest lease always holds the newest
// fence; should the counter be lost (eviction), it restarts above the
// published generation.
var (
	// KEYS: lease, fence, meta. ARGV: token, lease ttl ms, fence ttl ms.
	acquireScript = redis.NewScript(`
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 0
end
local f = redis.call('INCR', KEYS[2])
local p = tonumber(redis.call('HGET', KEYS[3], 'gen') or '0')
if f <= p then
  f = p + 1
  redis.call('SET', KEYS[2], f)
end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return f`)
	// KEYS: lease. ARGV: token, ttl ms.
	renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`)
	// KEYS: lease. ARGV: token.
	releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)
	// KEYS: meta, fence. ARGV: fence, start ms, chunks, records, ttl ms.
	publishScript = redis.NewScript(`
if tonumber(redis.call('GET', KEYS[2]) or '0') ~= tonumber(ARGV[1]) then
  return 0
end
if tonumber(redis.call('HGET', KEYS[1], 'gen') or '0') >= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'gen', ARGV[1], 'at', ARGV[2], 'chunks', ARGV[3], 'records', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1`)
)

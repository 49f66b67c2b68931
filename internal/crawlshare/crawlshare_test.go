package crawlshare

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postured/postured/internal/redistest"
	"github.com/postured/postured/providers"
)

const (
	interval = 10 * time.Minute
	leaseTTL = 30 * time.Second
	poll     = time.Second
)

// clock is the replicas' injected clock: Now is set by the test, and
// every ticker is a channel the test sends on, the lease renewals' and
// the waits' apart.
type clock struct {
	mu     sync.Mutex
	now    time.Time
	renew  chan time.Time
	poll   chan time.Time
	polled chan struct{} // a replica started waiting for another's crawl
}

func newClock() *clock {
	return &clock{
		now:   time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC),
		renew: make(chan time.Time), poll: make(chan time.Time), polled: make(chan struct{}, 8),
	}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *clock) NewTicker(d time.Duration) (<-chan time.Time, func()) {
	if d == poll {
		c.polled <- struct{}{}
		return c.poll, func() {}
	}
	return c.renew, func() {}
}

// lister is a vendor crawl the test can hold open.
type lister struct {
	mu    sync.Mutex
	calls int
	recs  []providers.Record
	// started, if set, is closed on the first call, which then blocks
	// until release is closed or ctx ends.
	started, release chan struct{}
	// during runs inside the first call, e.g. to stop Redis mid-crawl.
	during func()
}

func (l *lister) List(ctx context.Context) ([]providers.Record, error) {
	l.mu.Lock()
	l.calls++
	first := l.calls == 1
	l.mu.Unlock()
	if first && l.during != nil {
		l.during()
	}
	if first && l.started != nil {
		close(l.started)
		select {
		case <-l.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	out := make([]providers.Record, len(l.recs))
	for i, r := range l.recs {
		out[i] = r.Clone()
	}
	return out, nil
}

func (l *lister) Calls() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.calls
}

func records(ids ...string) []providers.Record {
	out := make([]providers.Record, len(ids))
	for i, id := range ids {
		out[i] = providers.Record{ID: id, Serials: []string{"S-" + id}, Score: 70 + i, LastSeen: time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)}
	}
	return out
}

func ids(recs []providers.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

func newRedis(t *testing.T, url string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	// An outage must show at once, not after the client's retries.
	opts.MaxRetries = -1
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// replica is one postured replica's Coordinator for provider "jamf".
func replica(t *testing.T, rc *redis.Client, clk *clock) *Coordinator {
	t.Helper()
	c, err := New(Config{Client: rc, Prefix: "test:crawl:", Name: "jamf", Interval: interval, LeaseTTL: leaseTTL, Poll: poll, Now: clk.Now, NewTicker: clk.NewTicker})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type crawlResult struct {
	recs   []string
	source string
	shared bool
	err    error
}

func crawl(ctx context.Context, c *Coordinator, l *lister) crawlResult {
	cr, err := c.Crawl(ctx, l)
	return crawlResult{ids(cr.Records), cr.Source, cr.Shared, err}
}

func crawlAsync(ctx context.Context, c *Coordinator, l *lister) <-chan crawlResult {
	out := make(chan crawlResult, 1)
	go func() { out <- crawl(ctx, c, l) }()
	return out
}

func check(t *testing.T, what string, got crawlResult, wantIDs []string, wantSource string, wantErr error) {
	t.Helper()
	if !errors.Is(got.err, wantErr) || (wantErr == nil && got.err != nil) {
		t.Errorf("%s: error %v, want %v", what, got.err, wantErr)
	}
	if got.source != wantSource || got.shared != (wantSource != SourceLocal) {
		t.Errorf("%s: source %q shared %v, want %q", what, got.source, got.shared, wantSource)
	}
	if len(got.recs) != len(wantIDs) {
		t.Errorf("%s: records %v, want %v", what, got.recs, wantIDs)
		return
	}
	for i := range wantIDs {
		if got.recs[i] != wantIDs[i] {
			t.Errorf("%s: records %v, want %v", what, got.recs, wantIDs)
			return
		}
	}
}

// TestOneCrawlPerInterval: of two replicas, the one asking first crawls
// and publishes; the other loads that crawl, asks again without news, and
// only after an interval does a replica crawl again.
func TestOneCrawlPerInterval(t *testing.T) {
	srv := redistest.Start(t)
	clk := newClock()
	a, b := replica(t, newRedis(t, srv.URL), clk), replica(t, newRedis(t, srv.URL), clk)
	la, lb := &lister{recs: records("a1", "a2")}, &lister{recs: records("b1")}
	ctx := t.Context()

	check(t, "a first", crawl(ctx, a, la), []string{"a1", "a2"}, SourceLeader, nil)
	check(t, "b first", crawl(ctx, b, lb), []string{"a1", "a2"}, SourceFollower, nil)
	check(t, "b again", crawl(ctx, b, lb), nil, SourceFollower, providers.ErrUnchanged)
	check(t, "a again", crawl(ctx, a, la), nil, SourceFollower, providers.ErrUnchanged)
	clk.advance(interval)
	check(t, "b next interval", crawl(ctx, b, lb), []string{"b1"}, SourceLeader, nil)
	check(t, "a next interval", crawl(ctx, a, la), []string{"b1"}, SourceFollower, nil)
	if la.Calls() != 1 || lb.Calls() != 1 {
		t.Errorf("crawls: a %d, b %d; want one each, one per interval", la.Calls(), lb.Calls())
	}
}

// TestFollowerWaitsForLeader: a replica asking while another crawls waits
// for that crawl's records instead of crawling too.
func TestFollowerWaitsForLeader(t *testing.T) {
	srv := redistest.Start(t)
	clk := newClock()
	a, b := replica(t, newRedis(t, srv.URL), clk), replica(t, newRedis(t, srv.URL), clk)
	la := &lister{recs: records("a1"), started: make(chan struct{}), release: make(chan struct{})}
	lb := &lister{recs: records("b1")}
	ctx := t.Context()

	aDone := crawlAsync(ctx, a, la)
	<-la.started
	bDone := crawlAsync(ctx, b, lb)
	<-clk.polled // b found the lease taken and waits
	close(la.release)
	check(t, "leader", <-aDone, []string{"a1"}, SourceLeader, nil)
	clk.poll <- clk.Now()
	check(t, "follower", <-bDone, []string{"a1"}, SourceFollower, nil)
	if lb.Calls() != 0 {
		t.Errorf("the waiting replica crawled %d times", lb.Calls())
	}
}

// TestLeaseStolenAbortsCrawl: a crawl renews its lease while it holds
// it; a crawl whose lease another replica took over is cancelled at the
// next renewal and publishes nothing; the
// replica that now holds the lease publishes.
func TestLeaseStolenAbortsCrawl(t *testing.T) {
	srv := redistest.Start(t)
	clk := newClock()
	rc := newRedis(t, srv.URL)
	a := replica(t, rc, clk)
	la := &lister{recs: records("a1"), started: make(chan struct{}), release: make(chan struct{})}
	ctx := t.Context()

	aDone := crawlAsync(ctx, a, la)
	<-la.started
	// tick hands the renewal loop one tick. The deadline only turns a loop
	// that has stopped into a failure instead of a hung test.
	tick := func() {
		t.Helper()
		select {
		case clk.renew <- clk.Now():
		case <-time.After(time.Minute):
			t.Fatal("the renewal loop stopped taking ticks")
		}
	}
	// While the lease is the crawl's, a renewal extends it. Redis's clock
	// is real: the shortened TTL leaves a loaded machine room.
	const shortened = leaseTTL - 10*time.Second
	if err := rc.PExpire(ctx, a.keys.lease, shortened).Err(); err != nil {
		t.Fatal(err)
	}
	tick()
	tick() // taken only once the first renewal is done
	if ttl := rc.PTTL(ctx, a.keys.lease).Val(); ttl <= shortened {
		t.Errorf("lease ttl %s after renewal, want it extended to %s", ttl, leaseTTL)
	}
	if err := rc.Set(ctx, a.keys.lease, "someone else", leaseTTL).Err(); err != nil {
		t.Fatal(err)
	}
	// A renewal finds the lease someone else's (the one under way since
	// the second tick may already be it): the crawl ends with ErrLeaseLost.
	var robbed crawlResult
	for done := false; !done; {
		select {
		case clk.renew <- clk.Now():
		case robbed = <-aDone:
			done = true
		case <-time.After(time.Minute):
			t.Fatal("the robbed crawl did not end")
		}
	}
	check(t, "robbed crawl", robbed, nil, SourceLeader, ErrLeaseLost)
	m, err := a.readMeta(ctx)
	if err != nil || m.gen != 0 {
		t.Errorf("after the robbed crawl meta = %+v, %v; want nothing published", m, err)
	}
	if got := rc.Get(ctx, a.keys.lease).Val(); got != "someone else" {
		t.Errorf("the robbed crawl released a lease it no longer held: lease = %q", got)
	}
}

// TestFencingRejectsStalePublish: a leader paused past its lease (the
// lease expired, another replica took it) finishes its crawl but cannot
// overwrite the newer one, whether that one has published yet or not.
func TestFencingRejectsStalePublish(t *testing.T) {
	srv := redistest.Start(t)
	clk := newClock()
	rc := newRedis(t, srv.URL)
	a, b := replica(t, rc, clk), replica(t, rc, clk)
	ctx := t.Context()

	old, err := a.acquire(ctx)
	if err != nil || old.fence == 0 {
		t.Fatalf("acquire: %+v, %v", old, err)
	}
	if err := rc.Del(ctx, a.keys.lease).Err(); err != nil { // the lease expired while a was paused
		t.Fatal(err)
	}
	newer, err := b.acquire(ctx)
	if err != nil || newer.fence <= old.fence {
		t.Fatalf("acquire after expiry: %+v, %v; want a fence above %d", newer, err, old.fence)
	}
	if err := a.publish(ctx, old.fence, clk.Now(), records("stale")); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("stale publish before the newer one: %v, want ErrLeaseLost", err)
	}
	if err := b.publish(ctx, newer.fence, clk.Now(), records("new")); err != nil {
		t.Fatal(err)
	}
	if err := a.publish(ctx, old.fence, clk.Now(), records("stale")); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("stale publish after the newer one: %v, want ErrLeaseLost", err)
	}
	m, err := a.readMeta(ctx)
	if err != nil {
		t.Fatal(err)
	}
	recs, ok, err := a.load(ctx, m)
	if err != nil || !ok || m.gen != newer.fence || len(recs) != 1 || recs[0].ID != "new" {
		t.Errorf("published: gen %d %v %v %v; want generation %d with the newer crawl", m.gen, ids(recs), ok, err, newer.fence)
	}
}

// TestPausedLeaderCannotPublish: the whole story through Crawl: the
// lease of a crawl in progress expires, a second replica crawls and
// publishes, and the first crawl's result, when it comes, is dropped.
func TestPausedLeaderCannotPublish(t *testing.T) {
	srv := redistest.Start(t)
	clk := newClock()
	rc := newRedis(t, srv.URL)
	a, b := replica(t, rc, clk), replica(t, rc, clk)
	la := &lister{recs: records("stale"), started: make(chan struct{}), release: make(chan struct{})}
	lb := &lister{recs: records("new")}
	ctx := t.Context()

	aDone := crawlAsync(ctx, a, la)
	<-la.started
	if err := rc.Del(ctx, a.keys.lease).Err(); err != nil { // expired: a missed its renewals
		t.Fatal(err)
	}
	check(t, "second replica", crawl(ctx, b, lb), []string{"new"}, SourceLeader, nil)
	close(la.release)
	check(t, "paused leader", <-aDone, nil, SourceLeader, ErrLeaseLost)
	check(t, "paused leader next time", crawl(ctx, a, la), []string{"new"}, SourceFollower, nil)
}

// TestRedisDown: without Redis each replica crawls alone and says so, a
// crawl whose Redis went away mid-way keeps its records, and sharing
// resumes when Redis is back.
func TestRedisDown(t *testing.T) {
	t.Run("before the crawl", func(t *testing.T) {
		srv := redistest.Start(t)
		clk := newClock()
		a := replica(t, newRedis(t, srv.URL), clk)
		srv.Stop()
		la := &lister{recs: records("a1")}
		check(t, "alone", crawl(t.Context(), a, la), []string{"a1"}, SourceLocal, nil)
		check(t, "alone again", crawl(t.Context(), a, la), []string{"a1"}, SourceLocal, nil)
		if la.Calls() != 2 {
			t.Errorf("crawls without redis: %d, want every time asked", la.Calls())
		}
	})
	t.Run("during the crawl", func(t *testing.T) {
		srv := redistest.Start(t)
		clk := newClock()
		a := replica(t, newRedis(t, srv.URL), clk)
		la := &lister{recs: records("a1"), during: srv.Stop}
		check(t, "kept", crawl(t.Context(), a, la), []string{"a1"}, SourceLocal, nil)
	})
	t.Run("back again", func(t *testing.T) {
		srv := redistest.Start(t)
		clk := newClock()
		// A client whose connections can be cut: the replica outlives the
		// outage, as a pod does.
		opts, err := redis.ParseURL(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		var cut sync.Mutex
		down := true
		dial := opts.Dialer
		if dial == nil {
			var d net.Dialer
			dial = d.DialContext
		}
		opts.MaxRetries = -1
		opts.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
			cut.Lock()
			defer cut.Unlock()
			if down {
				return nil, errors.New("network unreachable")
			}
			return dial(ctx, network, addr)
		}
		rc := redis.NewClient(opts)
		t.Cleanup(func() { _ = rc.Close() })
		a, b := replica(t, rc, clk), replica(t, newRedis(t, srv.URL), clk)
		la, lb := &lister{recs: records("a1")}, &lister{recs: records("b1")}
		check(t, "down", crawl(t.Context(), a, la), []string{"a1"}, SourceLocal, nil)
		check(t, "other replica", crawl(t.Context(), b, lb), []string{"b1"}, SourceLeader, nil)
		cut.Lock()
		down = false
		cut.Unlock()
		check(t, "back", crawl(t.Context(), a, la), []string{"b1"}, SourceFollower, nil)
		if la.Calls() != 1 {
			t.Errorf("crawls of the recovered replica: %d, want only the one without redis", la.Calls())
		}
	})
}

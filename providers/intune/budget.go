package intune

import (
	"context"
	"sync"
	"time"

	"github.com/postured/postured/providers"
)

// Graph's throttle for Intune devices: 2000 requests per 20 seconds per app
// per tenant, each $batch item counted on its own (4000 per tenant for all
// apps together).
// https://learn.microsoft.com/graph/throttling-limits#intune-service-limits,
// https://learn.microsoft.com/graph/json-batching
const (
	appRequestLimit = 2000
	throttleWindow  = 20 * time.Second
)

// budget keeps one provider's Graph requests within the per-app limit: at
// most limit requests, each $batch item counting, in any window of span,
// shared by every lookup and crawl of the provider. It is a sliding window
// because a token bucket lets its burst and its refill through in the same
// window, twice the limit. After a 429 Graph wants the app to back off, not
// just the request it throttled: pause holds every request until then.
type budget struct {
	limit int
	span  time.Duration
	// now and sleep are the clock, replaced in tests.
	now   func() time.Time
	sleep func(context.Context, time.Duration) error

	mu     sync.Mutex
	spent  []spend // within the window, oldest first
	total  int     // sum of spent
	paused time.Time
}

// spend is n requests made at one time.
type spend struct {
	at time.Time
	n  int
}

func newBudget(limit int, span time.Duration) *budget {
	return &budget{limit: limit, span: span, now: time.Now, sleep: providers.Sleep}
}

// take waits until n more requests fit in the window and no pause holds
// them, then counts them. A wait that would outlast ctx's deadline is not
// started: take fails at once with a *providers.RateLimitedError saying
// how long it would have been, so a lookup does not spend its whole
// deadline on a wait that cannot end in time.
func (b *budget) take(ctx context.Context, n int) error {
	n = min(n, b.limit)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		wait := b.try(n)
		if wait <= 0 {
			return nil
		}
		if dl, ok := ctx.Deadline(); ok && b.now().Add(wait).After(dl) {
			return &providers.RateLimitedError{RetryAfter: wait}
		}
		if err := b.sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// try counts n requests now if they fit, returning 0; else it returns how
// long until they might.
func (b *budget) try(n int) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if now.Before(b.paused) {
		return b.paused.Sub(now)
	}
	cut := now.Add(-b.span)
	for len(b.spent) > 0 && !b.spent[0].at.After(cut) {
		b.total -= b.spent[0].n
		b.spent = b.spent[1:]
	}
	if b.total+n <= b.limit {
		b.spent = append(b.spent, spend{at: now, n: n})
		b.total += n
		return 0
	}
	// Room comes when enough of the oldest requests leave the window; n <=
	// limit, so at the latest when all have.
	left, i := b.total, 0
	for left+n > b.limit {
		left -= b.spent[i].n
		i++
	}
	return b.spent[i-1].at.Add(b.span).Sub(now)
}

// pause holds every take until t (or a later pause).
func (b *budget) pause(t time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t.After(b.paused) {
		b.paused = t
	}
}

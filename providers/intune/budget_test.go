package intune

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/postured/postured/providers"
)

// fakeClock is an injected clock: Sleep moves it on at once and records
// the wait, so tests see what a wait would have been without waiting. It
// starts at the real time, against which context deadlines are set.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	slept []time.Duration
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.slept = append(c.slept, d)
	return nil
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func (c *fakeClock) sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.slept)
}

func clockedBudget(c *fakeClock) *budget {
	b := newBudget(appRequestLimit, throttleWindow)
	b.now, b.sleep = c.Now, c.Sleep
	return b
}

// TestBudgetWindow: however the requests come, no window of 20 s holds more
// than 2000, $batch items counted one by one. A token bucket with a burst
// of the limit fails this: it lets the burst and the refill through in the
// first window.
func TestBudgetWindow(t *testing.T) {
	tests := []struct {
		name string
		cost int           // requests per take: 20 is a full $batch
		gap  time.Duration // clock moved between takes
	}{
		{name: "full batches at once", cost: maxBatchRequests},
		{name: "full batches, 50ms apart", cost: maxBatchRequests, gap: 50 * time.Millisecond},
		{name: "single GETs, 5ms apart", cost: 1, gap: 5 * time.Millisecond},
		{name: "odd batches, 30ms apart", cost: 7, gap: 30 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newFakeClock()
			start := c.Now()
			b := clockedBudget(c)
			type taken struct {
				at time.Time
				n  int
			}
			var log []taken
			for range 3 * appRequestLimit / tc.cost {
				if err := b.take(t.Context(), tc.cost); err != nil {
					t.Fatal(err)
				}
				log = append(log, taken{c.Now(), tc.cost})
				c.advance(tc.gap)
			}
			for i := range log {
				in := 0
				for _, l := range log[:i+1] {
					if l.at.After(log[i].at.Add(-throttleWindow)) {
						in += l.n
					}
				}
				if in > appRequestLimit {
					t.Fatalf("%d requests in the 20 s up to %s", in, log[i].at.Sub(start))
				}
			}
			if len(c.sleeps()) == 0 {
				t.Error("the budget never waited: it counts nothing")
			}
		})
	}
}

func TestBudgetWaits(t *testing.T) {
	fill := func(t *testing.T, b *budget) {
		t.Helper()
		for range appRequestLimit / maxBatchRequests {
			if err := b.take(t.Context(), maxBatchRequests); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Run("full window waits for its oldest requests", func(t *testing.T) {
		c := newFakeClock()
		b := clockedBudget(c)
		fill(t, b)
		c.advance(5 * time.Second)
		if err := b.take(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		if got := c.sleeps(); !slices.Equal(got, []time.Duration{15 * time.Second}) {
			t.Errorf("waits %v, want the 15 s until the first requests leave the window", got)
		}
	})
	t.Run("pause holds requests with room", func(t *testing.T) {
		c := newFakeClock()
		b := clockedBudget(c)
		b.pause(c.Now().Add(20 * time.Second))
		b.pause(c.Now().Add(3 * time.Second)) // an earlier end does not shorten it
		if err := b.take(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		if got := c.sleeps(); !slices.Equal(got, []time.Duration{20 * time.Second}) {
			t.Errorf("waits %v, want 20s", got)
		}
	})
	t.Run("wait past the deadline fails at once", func(t *testing.T) {
		c := newFakeClock()
		b := clockedBudget(c)
		fill(t, b)
		ctx, cancel := context.WithDeadline(t.Context(), c.Now().Add(10*time.Second))
		defer cancel()
		err := b.take(ctx, 1)
		var rl *providers.RateLimitedError
		if !errors.As(err, &rl) || rl.RetryAfter != throttleWindow {
			t.Fatalf("err = %v, want a RateLimitedError of 20s", err)
		}
		if got := c.sleeps(); len(got) != 0 {
			t.Errorf("waited %v", got)
		}
	})
	t.Run("wait within the deadline is waited", func(t *testing.T) {
		c := newFakeClock()
		b := clockedBudget(c)
		fill(t, b)
		ctx, cancel := context.WithDeadline(t.Context(), c.Now().Add(30*time.Second))
		defer cancel()
		if err := b.take(ctx, 1); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		b := clockedBudget(newFakeClock())
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := b.take(ctx, 1); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
	})
}

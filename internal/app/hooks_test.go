package app

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/cache"
	"github.com/postured/postured/internal/mockset"
	"github.com/postured/postured/providers"
)

// countingStore counts the reads a wrapped Store serves.
type countingStore struct {
	cache.Store[[]providers.Record]
	gets atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, key string) (cache.Entry[[]providers.Record], bool, error) {
	c.gets.Add(1)
	return c.Store.Get(ctx, key)
}

// TestBuildWithWrapsStore: the engine's lookups go through the store the
// hook returns, so a tool can count cache reads without a metric for them.
func TestBuildWithWrapsStore(t *testing.T) {
	set, err := mockset.New(50, 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	mocksURL := set.Serve(t)
	text, err := mockset.DemoConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse(text, Registry(), mockset.DemoEnv(mocksURL, "127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		hooks    func(*countingStore) Hooks
		wantGets bool
	}{
		{"no hook", func(*countingStore) Hooks { return Hooks{} }, false},
		{"store hook", func(c *countingStore) Hooks {
			return Hooks{Store: func(s cache.Store[[]providers.Record]) cache.Store[[]providers.Record] {
				c.Store = s
				return c
			}}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			counter := &countingStore{}
			a, err := BuildWith(cfg, Registry(), slog.New(slog.DiscardHandler), tc.hooks(counter))
			if err != nil {
				t.Fatal(err)
			}
			d := set.Fleet.Batch()[0]
			a.Engine().Evaluate(t.Context(), []aggregate.Device{{ID: d.DeviceID, Serial: d.SerialNumber, Hostname: d.Hostname}})
			if got := counter.gets.Load() > 0; got != tc.wantGets {
				t.Fatalf("store reads seen by the hook: %d, want some: %v", counter.gets.Load(), tc.wantGets)
			}
		})
	}
}

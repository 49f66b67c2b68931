package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postured/postured/internal/app"
	"github.com/postured/postured/internal/cfpoll"
	"github.com/postured/postured/internal/mockset"
)

// TestDriftMovesPostured is the demo configuration end to end: Cloudflare
// polls postured, the fleet drifts, and the next poll's answers differ,
// only for devices that drifted. Each cycle is answered by a freshly
// built postured whose sync has run and whose cache is empty, so every
// vendor is asked about the fleet as it is now. A last cycle runs while
// the fleet keeps drifting, for the race detector.
func TestDriftMovesPostured(t *testing.T) {
	ctx := t.Context()
	set, err := mockset.New(400, 6, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	mocksURL := set.Serve(t)
	text, err := mockset.DemoConfig()
	if err != nil {
		t.Fatal(err)
	}

	var current atomic.Pointer[http.Handler]
	posture := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*current.Load()).ServeHTTP(w, r)
	}))
	defer posture.Close()
	fresh := func() {
		t.Helper()
		cfg, err := app.Parse(text, app.Registry(), mockset.DemoEnv(mocksURL, "127.0.0.1:0"))
		if err != nil {
			t.Fatal(err)
		}
		a, err := app.Build(cfg, app.Registry(), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		a.SyncNow(ctx)
		srv, closeEval, err := a.NewServer(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = closeEval() })
		h := srv.Handler()
		current.Store(&h)
	}

	p, err := cfpoll.New(cfpoll.Config{
		Target: posture.URL + "/posture",
		Tokens: cfpoll.TokenFunc(func(context.Context) (string, error) {
			return set.Access.AppToken(mockset.AccessAudience, time.Minute)
		}),
		Devices:   set.Fleet.Batch(),
		BatchSize: 150,
	})
	if err != nil {
		t.Fatal(err)
	}
	poll := func() cfpoll.Cycle {
		t.Helper()
		fresh()
		c := p.Poll(ctx)
		if err := c.Err(); err != nil {
			t.Fatalf("cycle %d: %v", c.N, err)
		}
		return c
	}

	poll()
	if c := poll(); len(c.Changed) != 0 {
		t.Fatalf("no drift, yet %d scores changed: %q", len(c.Changed), c.Changed)
	}
	drifted := map[string]bool{}
	for _, ch := range set.Drift(10, time.Now()) {
		drifted[set.Fleet.Devices[ch.Index].CloudflareID] = true
	}
	c := poll()
	if len(c.Changed) == 0 {
		t.Fatalf("%d devices drifted, no score changed", len(drifted))
	}
	for _, id := range c.Changed {
		if !drifted[id] {
			t.Errorf("device %s changed score without drifting", id)
		}
	}
	t.Logf("%d devices drifted, %d scores changed", len(drifted), len(c.Changed))

	var wg sync.WaitGroup
	wg.Go(func() {
		for range 5 {
			set.Drift(10, time.Now())
		}
	})
	poll()
	wg.Wait()
}

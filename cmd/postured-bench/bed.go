package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/postured/postured/internal/app"
	"github.com/postured/postured/internal/cfpoll"
	"github.com/postured/postured/internal/mockset"
	"github.com/postured/postured/providers"
)

// bed is the fixed part of a run: one generated fleet and its vendor mocks,
// served on a loopback port. Every scenario starts its own postured against
// it, so caches never carry over, while the fleet is generated once.
type bed struct {
	set      *mockset.Set
	mocksURL string
	gate     *vendorGate
	close    func()
}

func newBed(devices int, seed uint64) (*bed, error) {
	set, err := mockset.New(devices, seed, time.Now())
	if err != nil {
		return nil, fmt.Errorf("bench: fleet: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: mocks: %w", err)
	}
	gate := newGate(set)
	srv := &http.Server{Handler: gate.wrap(set.Handler()), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return &bed{set: set, mocksURL: "http://" + ln.Addr().String(), gate: gate, close: func() { _ = srv.Close() }}, nil
}

// calls is the vendor calls served so far, in mock order.
func (b *bed) calls() []int {
	out := make([]int, len(b.set.Vendors))
	for i, v := range b.set.Vendors {
		out[i] = v.Calls.Total()
	}
	return out
}

// vendorGate sits in front of the mocks. It times every vendor request,
// so a report can tell the mocks' own cost from postured's (both share the
// CPUs), and it can make one vendor answer a share of its requests with a
// 5xx in the vendor's own error shape: mockkit's faults count requests
// ("the next n fail"), so arming one fault with probability p before each
// request to that vendor fails about p of them, token requests aside.
type vendorGate struct {
	set    *mockset.Set
	busy   map[string]*atomic.Int64 // ns spent in each vendor's handler
	vendor atomic.Pointer[string]
	rate   atomic.Uint64 // p scaled to 0..2^53, the range of the draw
}

func newGate(set *mockset.Set) *vendorGate {
	g := &vendorGate{set: set, busy: map[string]*atomic.Int64{}}
	for _, v := range set.Vendors {
		g.busy[v.Name] = new(atomic.Int64)
	}
	return g
}

func (g *vendorGate) set5xx(vendor string, p float64) {
	if vendor == "" || p <= 0 {
		g.vendor.Store(nil)
		return
	}
	g.rate.Store(uint64(p * float64(1<<53)))
	g.vendor.Store(&vendor)
}

// busyTime is the time spent serving each vendor so far, in mock order.
func (g *vendorGate) busyTime() []time.Duration {
	out := make([]time.Duration, len(g.set.Vendors))
	for i, v := range g.set.Vendors {
		out[i] = time.Duration(g.busy[v.Name].Load())
	}
	return out
}

func (g *vendorGate) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		busy := g.busy[name]
		if busy == nil {
			h.ServeHTTP(w, r)
			return
		}
		if faulty := g.vendor.Load(); faulty != nil && *faulty == name {
			if rand.Uint64N(1<<53) < g.rate.Load() { // #nosec G404 -- fault injection, nothing secret
				if v, ok := g.set.Vendor(name); ok {
					v.Faults.FailServer(1)
				}
			}
		}
		start := time.Now()
		h.ServeHTTP(w, r)
		busy.Add(int64(time.Since(start)))
	})
}

// mode is how the providers of a scenario get their data.
type mode string

const (
	// modeQuery: CrowdStrike and Jamf in query mode, Intune in sync (the
	// demo configuration, as the README recommends for Intune).
	modeQuery      mode = "query"
	modeSync       mode = "sync"
	modeSyncOnMiss mode = "sync+on_miss"
)

// config is the demo configuration against the bed's mocks, with every
// provider in m (and every key of extra set on each provider). Crawls run
// only when the caller asks; syncInterval is what a started app waits
// between them. The keys are set in the YAML before it is parsed, so the
// result is validated as a user's file would be.
func (b *bed) config(m mode, syncInterval time.Duration, extra map[string]string) (*app.Config, error) {
	text, err := mockset.DemoConfig()
	if err != nil {
		return nil, err
	}
	var root yaml.Node
	if err := yaml.Unmarshal(text, &root); err != nil {
		return nil, fmt.Errorf("bench: config: %w", err)
	}
	list := mapValue(root.Content[0], "providers")
	if list == nil {
		return nil, errors.New("bench: config: no providers")
	}
	for _, p := range list.Content {
		keys := map[string]string{}
		switch m {
		case modeQuery:
			// Intune stays in sync, as the README asks: Graph's throttling
			// makes its query mode a last resort.
			if v := mapValue(p, "type"); v == nil || v.Value != "intune" {
				keys["mode"] = string(providers.ModeQuery)
			}
		case modeSync:
			keys["mode"], keys["on_miss"] = string(providers.ModeSync), string(providers.OnMissNone)
		case modeSyncOnMiss:
			keys["mode"], keys["on_miss"] = string(providers.ModeSync), string(providers.OnMissQuery)
		}
		maps.Copy(keys, extra)
		if v, ok := keys["mode"]; (ok && v == string(providers.ModeSync)) || (!ok && mapValue(p, "sync_interval") != nil) {
			keys["sync_interval"] = syncInterval.String()
		}
		if v := keys["mode"]; v == string(providers.ModeQuery) {
			removeKey(p, "sync_interval")
		}
		for _, k := range slices.Sorted(maps.Keys(keys)) {
			setKey(p, k, keys[k])
		}
	}
	text, err = yaml.Marshal(&root)
	if err != nil {
		return nil, fmt.Errorf("bench: config: %w", err)
	}
	cfg, err := app.Parse(text, app.Registry(), mockset.DemoEnv(b.mocksURL, "127.0.0.1:0"))
	if err != nil {
		return nil, fmt.Errorf("bench: config: %w", err)
	}
	return cfg, nil
}

// mapValue is the value of key in mapping n, or nil.
func mapValue(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// setKey sets key in mapping n to the plain scalar v, typed as YAML reads it.
func setKey(n *yaml.Node, key, v string) {
	if cur := mapValue(n, key); cur != nil {
		cur.Kind, cur.Tag, cur.Value, cur.Style = yaml.ScalarNode, "", v, 0
		return
	}
	n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key},
		&yaml.Node{Kind: yaml.ScalarNode, Value: v})
}

// removeKey drops key from mapping n.
func removeKey(n *yaml.Node, key string) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			n.Content = slices.Delete(n.Content, i, i+2)
			return
		}
	}
}

// instance is one postured, built from a config and serving on loopback.
type instance struct {
	app    *app.App
	url    string
	hits   *hitCounter
	cancel context.CancelFunc
	done   chan error
}

// start builds postured from cfg, its lookup cache counted, and serves it.
// Its logs go to io.Discard through the configured handler, so a batch
// still pays for its log line.
func start(ctx context.Context, cfg *app.Config) (*instance, error) {
	hits := newHitCounter(time.Duration(cfg.Cache.TTL), time.Duration(cfg.Cache.NegativeTTL))
	a, err := app.BuildWith(cfg, app.Registry(), app.NewLogger(cfg.Log, io.Discard), app.Hooks{Store: hits.wrap})
	if err != nil {
		return nil, fmt.Errorf("bench: build postured: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	srv, closeEval, err := a.NewServer(ctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("bench: postured server: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		_ = closeEval()
		return nil, fmt.Errorf("bench: postured listen: %w", err)
	}
	done := make(chan error, 1)
	go func() {
		err := srv.Run(ctx, ln)
		_ = closeEval()
		done <- err
	}()
	return &instance{app: a, url: "http://" + ln.Addr().String(), hits: hits, cancel: cancel, done: done}, nil
}

// stop ends the server and waits for it.
func (in *instance) stop() error {
	in.cancel()
	return <-in.done
}

// poller plays Cloudflare against in: the whole fleet in 1000-device
// batches, concurrency at a time, each cycle with a freshly signed Access
// application token.
func (b *bed) poller(in *instance, concurrency int) (*cfpoll.Poller, error) {
	p, err := cfpoll.New(cfpoll.Config{
		Target: in.url + "/posture",
		Tokens: cfpoll.TokenFunc(func(context.Context) (string, error) {
			return b.set.Access.AppToken(mockset.AccessAudience, time.Hour)
		}),
		Devices:     b.set.Fleet.Batch(),
		Concurrency: concurrency,
		Client:      &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: max(concurrency, 2)}},
	})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return p, nil
}

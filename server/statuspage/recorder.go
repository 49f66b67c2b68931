package statuspage

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"net/http"
	"sync"
	"time"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/providers"
	"github.com/postured/postured/server"
)

// RecorderConfig configures a Recorder. Zero fields take the defaults.
type RecorderConfig struct {
	// Batches is how many recent batches are kept (default 20).
	Batches int
	// MaxDevices bounds the devices whose latest score the distribution
	// counts (default 100000); past it the device first seen longest ago
	// is forgotten.
	MaxDevices int
	// Window is how far back the per-provider counters reach (default one
	// hour), kept in one-minute buckets.
	Window time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Defaults of RecorderConfig.
const (
	defaultBatches    = 20
	defaultMaxDevices = 100_000
	defaultWindow     = time.Hour
	bucketWidth       = time.Minute
)

// Recorder is a server.BatchObserver keeping what the status page shows
// of the answered batches, in bounded memory: the last batches, the latest
// score of each device, and per-provider counters over a sliding window.
// It reads what the Prometheus metrics count, so the page and the metrics
// cannot disagree: a batch's aggregate.Stats (errors), and the vendor
// answers the providers report (429s, through ObserveResponse).
type Recorder struct {
	now func() time.Time

	mu      sync.Mutex
	batches []BatchSummary // ring, oldest at next once full
	next    int
	// scores is each device's latest score, keyed by a hash of its
	// device_id: the histogram needs no more, and a 100k fleet then costs
	// ~2 MB here instead of a third copy of every id (a collision, about
	// one in 10^9 for 100k ids, merges two devices' bars).
	scores  map[uint64]int8
	order   []uint64 // device id hashes, ring in first-seen order, for eviction
	evict   int      // the next index of order to evict
	seed    maphash.Seed
	maxDev  int
	deciles [10]int
	window  []bucket
}

// BatchSummary is one answered batch, as the page lists it.
type BatchSummary struct {
	At       time.Time
	Devices  int
	Duration time.Duration
	// Matched is devices matched per provider.
	Matched map[string]int
}

// ProviderCounts are one provider's lookups over the window.
type ProviderCounts struct {
	// Devices is how many devices the provider was asked about.
	Devices int
	// Errors are devices whose lookup failed, as
	// postured_provider_devices_total{outcome="error"} counts them.
	Errors int
	// RateLimited is the vendor's 429 answers, every retry and sync crawl
	// included, as postured_vendor_responses_total{status="429"} counts
	// them.
	RateLimited int
	// MatchedBy is devices matched per key kind (serial, mac, hostname,
	// email).
	MatchedBy map[string]int
}

// bucket holds the counters of one minute.
type bucket struct {
	minute    int64 // unix minutes; 0: unused
	providers map[string]*ProviderCounts
}

// NewRecorder builds a Recorder.
func NewRecorder(cfg RecorderConfig) (*Recorder, error) {
	switch {
	case cfg.Batches < 0:
		return nil, fmt.Errorf("status recorder: batches must be >= 0, got %d", cfg.Batches)
	case cfg.MaxDevices < 0:
		return nil, fmt.Errorf("status recorder: max devices must be >= 0, got %d", cfg.MaxDevices)
	case cfg.Window < 0:
		return nil, fmt.Errorf("status recorder: window must be >= 0, got %s", cfg.Window)
	case cfg.Window > 0 && cfg.Window < bucketWidth:
		return nil, errors.New("status recorder: window must be at least a minute")
	}
	if cfg.Batches == 0 {
		cfg.Batches = defaultBatches
	}
	if cfg.MaxDevices == 0 {
		cfg.MaxDevices = defaultMaxDevices
	}
	if cfg.Window == 0 {
		cfg.Window = defaultWindow
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Recorder{
		now:     cfg.Now,
		batches: make([]BatchSummary, 0, cfg.Batches),
		scores:  make(map[uint64]int8),
		seed:    maphash.MakeSeed(),
		maxDev:  cfg.MaxDevices,
		window:  make([]bucket, int(cfg.Window/bucketWidth)),
	}, nil
}

// ObserveBatch records b. It keeps nothing of b's slices.
func (r *Recorder) ObserveBatch(_ context.Context, b server.Batch) {
	matchedBy := make(map[string]map[string]int)
	for _, res := range b.Results {
		for _, p := range res.Providers {
			if p.Outcome != aggregate.OutcomeMatched && p.Outcome != aggregate.OutcomeStale {
				continue
			}
			if matchedBy[p.Provider] == nil {
				matchedBy[p.Provider] = make(map[string]int, len(providers.Kinds))
			}
			matchedBy[p.Provider][p.MatchedOn.String()]++ // a key kind: the counters stay bounded
		}
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	sum := BatchSummary{At: b.At, Devices: len(b.Devices), Duration: b.Stats.Duration, Matched: maps.Clone(b.Stats.Matched)}
	if len(r.batches) < cap(r.batches) {
		r.batches = append(r.batches, sum)
	} else {
		r.batches[r.next] = sum
		r.next = (r.next + 1) % len(r.batches)
	}
	for _, res := range b.Results {
		r.setScore(res.DeviceID, res.Score)
	}
	bk := r.bucket(now)
	names := make(map[string]bool)
	for _, m := range []map[string]int{b.Stats.Matched, b.Stats.Errors, b.Stats.Stale} {
		for name := range m {
			names[name] = true
		}
	}
	for name := range matchedBy {
		names[name] = true
	}
	if len(b.Results) > 0 {
		for _, p := range b.Results[0].Providers {
			names[p.Provider] = true // asked, though nothing matched
		}
	}
	for name := range names {
		pc := bk.provider(name)
		pc.Devices += b.Stats.Devices
		pc.Errors += b.Stats.Errors[name]
		for k, n := range matchedBy[name] {
			pc.MatchedBy[k] += n
		}
	}
}

// ObserveResponse is told the HTTP status of every answer a provider's
// vendor API gives (providers.Deps.ObserveResponse); it counts the 429s.
// provider must be a configured provider's name: it keys the counters.
func (r *Recorder) ObserveResponse(provider string, status int) {
	if status != http.StatusTooManyRequests {
		return
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bucket(now).provider(provider).RateLimited++
}

// provider is name's counters in b, created on first use.
func (b *bucket) provider(name string) *ProviderCounts {
	pc := b.providers[name]
	if pc == nil {
		pc = &ProviderCounts{MatchedBy: make(map[string]int, len(providers.Kinds))}
		b.providers[name] = pc
	}
	return pc
}

// setScore records a device's latest score; r.mu is held.
func (r *Recorder) setScore(deviceID string, score int) {
	id := maphash.String(r.seed, deviceID)
	if old, ok := r.scores[id]; ok {
		r.deciles[decile(old)]--
	} else {
		if len(r.scores) >= r.maxDev {
			gone := r.order[r.evict]
			r.deciles[decile(r.scores[gone])]--
			delete(r.scores, gone)
			r.order[r.evict] = id
			r.evict = (r.evict + 1) % len(r.order)
		} else {
			r.order = append(r.order, id)
		}
	}
	r.scores[id] = int8(providers.Clamp(score)) // #nosec G115 -- clamped to 0..100
	r.deciles[decile(score)]++
}

// decile is a score's bar: 0-9 is 0, ..., 90-100 is 9.
func decile[T int | int8](score T) int {
	return min(max(int(score), 0)/10, 9)
}

// bucket is the counters of now's minute, reset if it last held an older
// minute; r.mu is held.
func (r *Recorder) bucket(now time.Time) *bucket {
	m := now.Unix() / int64(bucketWidth/time.Second)
	b := &r.window[int(m%int64(len(r.window)))]
	if b.minute != m {
		*b = bucket{minute: m, providers: make(map[string]*ProviderCounts)}
	}
	return b
}

// Snapshot is a copy of what the Recorder holds.
type Snapshot struct {
	// Batches are the last batches, newest first.
	Batches []BatchSummary
	// Deciles count devices by their latest score: [0] is 0-9, [9] 90-100.
	Deciles [10]int
	// Providers are the counters over the window, by provider name.
	Providers map[string]ProviderCounts
	// Window is how far back Providers reach.
	Window time.Duration
}

// Snapshot copies the Recorder's state.
func (r *Recorder) Snapshot() Snapshot {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Snapshot{Deciles: r.deciles, Providers: map[string]ProviderCounts{}, Window: time.Duration(len(r.window)) * bucketWidth}
	for i := range r.batches {
		b := r.batches[(r.next+len(r.batches)-1-i)%len(r.batches)]
		b.Matched = maps.Clone(b.Matched)
		s.Batches = append(s.Batches, b)
	}
	cur := now.Unix() / int64(bucketWidth/time.Second)
	for _, b := range r.window {
		if b.minute == 0 || b.minute <= cur-int64(len(r.window)) || b.minute > cur {
			continue
		}
		for name, pc := range b.providers {
			t := s.Providers[name]
			if t.MatchedBy == nil {
				t.MatchedBy = make(map[string]int, len(providers.Kinds))
			}
			t.Devices += pc.Devices
			t.Errors += pc.Errors
			t.RateLimited += pc.RateLimited
			for k, n := range pc.MatchedBy {
				t.MatchedBy[k] += n
			}
			s.Providers[name] = t
		}
	}
	return s
}

package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/postured/postured/internal/conf"
)

// Soak settings: the demo's provider modes (CrowdStrike and Jamf query,
// Intune sync), crawls and cache expiry short enough to recur many times
// in a 10-minute soak, and the fleet drifting so scores keep moving.
const (
	soakSyncInterval = time.Minute
	soakCacheTTL     = time.Minute
	soakConcurrency  = 4
	soakFaultEvery   = 2 * time.Second
	soakDriftEvery   = 30 * time.Second
	soakDriftPercent = 1.0
)

type soakSample struct {
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	RSSMB          float64 `json:"rss_mb"`
	HeapMB         float64 `json:"heap_mb"`
	Goroutines     int     `json:"goroutines"`
	Cycles         int     `json:"cycles"`
	FailedBatches  int     `json:"failed_batches"`
}

type soakReport struct {
	Seconds       float64        `json:"seconds"`
	SampleSeconds float64        `json:"sample_seconds"`
	Concurrency   int            `json:"concurrency"`
	Cycles        int            `json:"cycles"`
	Batches       int            `json:"batches"`
	FailedBatches int            `json:"failed_batches"`
	Faults        map[string]int `json:"faults"`
	Samples       []soakSample   `json:"samples"`
	// Growth is the last sample less the baseline: the first sample taken
	// after the first whole cycle (cache filled, every crawl done once).
	Baseline        int     `json:"baseline_sample"`
	RSSGrowthMB     float64 `json:"rss_growth_mb"`
	HeapGrowthMB    float64 `json:"heap_growth_mb"`
	GoroutineGrowth int     `json:"goroutine_growth"`
}

// soak polls the fleet back to back for d while a fault injector hits a
// random vendor every soakFaultEvery (5xx bursts, 429s, malformed bodies,
// latency up to 100 ms) and the fleet drifts, sampling memory and
// goroutines every sample. Samples print as they come.
func (b *bed) soak(ctx context.Context, d, sample time.Duration, w io.Writer) (*soakReport, error) {
	cfg, err := b.config(modeQuery, soakSyncInterval, nil)
	if err != nil {
		return nil, err
	}
	cfg.Cache.TTL = conf.Duration(soakCacheTTL)
	in, err := start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer func() { _ = in.stop() }()
	if err := b.warmKeys(ctx, in); err != nil {
		return nil, err
	}
	p, err := b.poller(in, soakConcurrency)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	in.app.Start(ctx)

	rep := &soakReport{SampleSeconds: sample.Seconds(), Concurrency: soakConcurrency, Faults: map[string]int{}, Baseline: -1}
	var mu sync.Mutex // guards rep's counters while the loops run
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			c := p.Poll(ctx)
			if ctx.Err() != nil {
				return // a cycle cut short by the end of the soak does not count
			}
			mu.Lock()
			rep.Cycles++
			rep.Batches += c.Batches
			rep.FailedBatches += len(c.Errors)
			mu.Unlock()
		}
	})
	wg.Go(func() {
		r := rand.New(rand.NewPCG(b.set.Fleet.Seed, 0x50a4)) // #nosec G404 -- fault schedule, reproducible on purpose
		every(ctx, soakFaultEvery, func() {
			kind := b.injectFault(r)
			mu.Lock()
			rep.Faults[kind]++
			mu.Unlock()
		})
	})
	wg.Go(func() {
		every(ctx, soakDriftEvery, func() { b.set.Drift(soakDriftPercent, time.Now()) })
	})

	start := time.Now()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "elapsed\tRSS MB\theap MB\tgoroutines\tcycles\tfailed batches\t")
	_ = tw.Flush()
	take := func() {
		mu.Lock()
		s := soakSample{ElapsedSeconds: time.Since(start).Seconds(), RSSMB: mb(int64(procStatus("VmRSS"))),
			HeapMB: mb(int64(readMetrics(mHeapObjects)[0])), Goroutines: runtime.NumGoroutine(),
			Cycles: rep.Cycles, FailedBatches: rep.FailedBatches}
		rep.Samples = append(rep.Samples, s)
		if rep.Baseline < 0 && s.Cycles > 0 {
			rep.Baseline = len(rep.Samples) - 1
		}
		mu.Unlock()
		fmt.Fprintf(tw, "%.0fs\t%.0f\t%.0f\t%d\t%d\t%d\t\n", s.ElapsedSeconds, s.RSSMB, s.HeapMB, s.Goroutines, s.Cycles, s.FailedBatches)
		_ = tw.Flush()
	}
	take()
	every(ctx, sample, take)
	wg.Wait()
	for _, v := range b.set.Vendors {
		v.Faults.Reset()
	}
	rep.Seconds = time.Since(start).Seconds()
	if rep.Baseline >= 0 {
		first, last := rep.Samples[rep.Baseline], rep.Samples[len(rep.Samples)-1]
		rep.RSSGrowthMB = last.RSSMB - first.RSSMB
		rep.HeapGrowthMB = last.HeapMB - first.HeapMB
		rep.GoroutineGrowth = last.Goroutines - first.Goroutines
	}
	return rep, nil
}

// every calls f every interval until ctx ends.
func every(ctx context.Context, interval time.Duration, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

// injectFault arms one random fault on one random vendor and names it.
func (b *bed) injectFault(r *rand.Rand) string {
	v := b.set.Vendors[r.IntN(len(b.set.Vendors))]
	switch r.IntN(5) {
	case 0:
		v.Faults.FailServer(1 + r.IntN(5))
		return "5xx"
	case 1:
		v.Faults.RateLimit(1+r.IntN(3), time.Second)
		return "429"
	case 2:
		v.Faults.Malform(1 + r.IntN(2))
		return "malformed"
	case 3:
		v.Faults.SetLatency(time.Duration(r.IntN(100)) * time.Millisecond)
		return "latency"
	default:
		v.Faults.SetLatency(0)
		return "latency cleared"
	}
}

func printSoak(w io.Writer, s *soakReport) {
	fmt.Fprintf(w, "\nsoak: %.0f s, %d cycles (%d batches, %d failed), faults %v\n", s.Seconds, s.Cycles, s.Batches, s.FailedBatches, s.Faults)
	if s.Baseline < 0 {
		fmt.Fprintln(w, "no cycle completed: no growth to report")
		return
	}
	b := s.Samples[s.Baseline]
	fmt.Fprintf(w, "growth since %.0f s (after the first cycle): RSS %+.1f MB, heap %+.1f MB, goroutines %+d\n",
		b.ElapsedSeconds, s.RSSGrowthMB, s.HeapGrowthMB, s.GoroutineGrowth)
}

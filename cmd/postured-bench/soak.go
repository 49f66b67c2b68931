package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
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
	// HeapMB is the live heap, after a forced collection: garbage
	// waiting for the next cycle would hide or fake a trend.
	HeapMB        float64 `json:"heap_mb"`
	Goroutines    int     `json:"goroutines"`
	Cycles        int     `json:"cycles"`
	FailedBatches int     `json:"failed_batches"`
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
	// Growth is the last sample less the baseline: the first sample a
	// quarter into the soak and after the first whole cycle (cache filled,
	// every crawl done once). The slopes are least-squares fits over the
	// samples from the baseline on, per minute.
	Baseline          int     `json:"baseline_sample"`
	RSSGrowthMB       float64 `json:"rss_growth_mb"`
	HeapGrowthMB      float64 `json:"heap_growth_mb"`
	GoroutineGrowth   int     `json:"goroutine_growth"`
	RSSSlopeMBPerMin  float64 `json:"rss_slope_mb_per_min"`
	HeapSlopeMBPerMin float64 `json:"heap_slope_mb_per_min"`
}

// soak polls the fleet back to back for d while a fault injector hits a
// random vendor every soakFaultEvery (5xx bursts, 429s, malformed bodies,
// latency up to 100 ms) and the fleet drifts, sampling memory and
// goroutines every sample, between two cycles. Samples print as they
// come. With memProfile set, heap profiles are written at the baseline
// sample (memProfile + ".base") and at the end.
func (b *bed) soak(ctx context.Context, d, sample time.Duration, memProfile string, w io.Writer) (*soakReport, error) {
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
	// Samples are taken between cycles: with batches in flight the live
	// heap swings by the size of their requests, answers and vendor pages,
	// and that noise would hide a trend.
	var between sync.Mutex
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			between.Lock()
			c := p.Poll(ctx)
			between.Unlock()
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
	fmt.Fprintln(tw, "elapsed\tRSS MB\tlive heap MB\tgoroutines\tcycles\tfailed batches\t")
	_ = tw.Flush()
	var profileErr error // of the baseline's profile, written in take
	take := func() {
		between.Lock()
		defer between.Unlock()
		mu.Lock()
		s := soakSample{ElapsedSeconds: time.Since(start).Seconds(), RSSMB: mb(procStatus("VmRSS")),
			HeapMB: mb(liveHeap()), Goroutines: runtime.NumGoroutine(),
			Cycles: rep.Cycles, FailedBatches: rep.FailedBatches}
		rep.Samples = append(rep.Samples, s)
		baseline := rep.Baseline < 0 && s.Cycles > 0 && time.Since(start) >= d/4
		if baseline {
			rep.Baseline = len(rep.Samples) - 1
		}
		mu.Unlock()
		if baseline && memProfile != "" {
			profileErr = errors.Join(profileErr, writeHeapProfile(memProfile+".base"))
		}
		fmt.Fprintf(tw, "%.0fs\t%.0f\t%.0f\t%d\t%d\t%d\t\n", s.ElapsedSeconds, s.RSSMB, s.HeapMB, s.Goroutines, s.Cycles, s.FailedBatches)
		_ = tw.Flush()
	}
	take()
	every(ctx, sample, take)
	wg.Wait()
	if memProfile != "" {
		if err := errors.Join(profileErr, writeHeapProfile(memProfile)); err != nil {
			return nil, err
		}
	}
	for _, v := range b.set.Vendors {
		v.Faults.Reset()
	}
	rep.Seconds = time.Since(start).Seconds()
	if rep.Baseline >= 0 {
		first, last := rep.Samples[rep.Baseline], rep.Samples[len(rep.Samples)-1]
		rep.RSSGrowthMB = last.RSSMB - first.RSSMB
		rep.HeapGrowthMB = last.HeapMB - first.HeapMB
		rep.GoroutineGrowth = last.Goroutines - first.Goroutines
		tail := rep.Samples[rep.Baseline:]
		rep.RSSSlopeMBPerMin = slope(tail, func(s soakSample) float64 { return s.RSSMB })
		rep.HeapSlopeMBPerMin = slope(tail, func(s soakSample) float64 { return s.HeapMB })
	}
	return rep, nil
}

// slope is the least-squares slope of y over the samples' elapsed time,
// per minute; 0 for fewer than two samples.
func slope(samples []soakSample, y func(soakSample) float64) float64 {
	n := float64(len(samples))
	if n < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for _, s := range samples {
		x := s.ElapsedSeconds / 60
		sx, sy, sxx, sxy = sx+x, sy+y(s), sxx+x*x, sxy+x*y(s)
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / den
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
	fmt.Fprintf(w, "growth since %.0f s: RSS %+.1f MB, live heap %+.1f MB, goroutines %+d; trend RSS %+.2f MB/min, live heap %+.2f MB/min\n",
		b.ElapsedSeconds, s.RSSGrowthMB, s.HeapGrowthMB, s.GoroutineGrowth, s.RSSSlopeMBPerMin, s.HeapSlopeMBPerMin)
}

// writeHeapProfile writes the heap profile, after a collection, to path.
func writeHeapProfile(path string) error {
	runtime.GC()
	f, err := os.Create(path) // #nosec G304 -- the operator's -memprofile
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("heap profile: %w", err)
	}
	return f.Close()
}

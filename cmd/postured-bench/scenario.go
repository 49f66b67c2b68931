package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/postured/postured/internal/cfpoll"
	"github.com/postured/postured/internal/mockset"
)

// scenario is one postured configuration under one load; it yields a cold
// row (first polling cycle, empty cache) and a warm one (the next cycle).
type scenario struct {
	Name        string
	Mode        mode
	Latency     time.Duration // added to every vendor API call
	Concurrency int           // batches in flight
	Fail5xx     string        // vendor answering 5% of its calls with a 5xx
	// Budgets keeps the vendor clients' request budgets as shipped
	// (CrowdStrike 20/s, Intune 5/s, Jamf 200/s). Other scenarios lift
	// them, so they time postured rather than its pacing.
	Budgets bool
	Quick   bool // part of -quick
}

// liftedBudget are the provider keys every scenario but the Budgets ones
// sets.
var liftedBudget = map[string]string{"requests_per_second": "100000", "burst": "100000"}

// errorShare is the share of the faulty vendor's calls that fail.
const errorShare = 0.05

// plan is every scenario, in the order they run.
func plan() []scenario {
	return []scenario{
		{Name: "query", Mode: modeQuery, Concurrency: 4, Quick: true},
		{Name: "sync", Mode: modeSync, Concurrency: 4, Quick: true},
		{Name: "sync-onmiss", Mode: modeSyncOnMiss, Concurrency: 4, Quick: true},
		{Name: "query-c1", Mode: modeQuery, Concurrency: 1, Quick: true},
		{Name: "query-c16", Mode: modeQuery, Concurrency: 16},
		{Name: "query-50ms", Mode: modeQuery, Latency: 50 * time.Millisecond, Concurrency: 4, Quick: true},
		{Name: "query-200ms", Mode: modeQuery, Latency: 200 * time.Millisecond, Concurrency: 4},
		{Name: "query-5xx", Mode: modeQuery, Concurrency: 4, Fail5xx: "crowdstrike", Quick: true},
		{Name: "query-budgets", Mode: modeQuery, Concurrency: 4, Budgets: true, Quick: true},
	}
}

// row is one polling cycle of one scenario, as printed and written.
type row struct {
	Scenario        string `json:"scenario"`
	Phase           string `json:"phase"` // cold or warm
	Mode            mode   `json:"mode"`
	VendorLatencyMS int    `json:"vendor_latency_ms"`
	Concurrency     int    `json:"concurrency"`
	Fault           string `json:"fault,omitempty"`
	// Budgets: the vendor clients' request budgets as shipped.
	Budgets bool `json:"shipped_budgets"`

	Devices       int `json:"devices"`
	Batches       int `json:"batches"`
	FailedBatches int `json:"failed_batches"`

	P50MS         float64 `json:"p50_ms"`
	P90MS         float64 `json:"p90_ms"`
	P99MS         float64 `json:"p99_ms"`
	CycleSeconds  float64 `json:"cycle_seconds"`
	BatchesPerSec float64 `json:"batches_per_second"`

	// VendorCallsPerBatch counts every request each mock served during the
	// cycle (tokens included), divided by the batches.
	VendorCallsPerBatch map[string]float64 `json:"vendor_calls_per_batch"`
	// MockMSPerBatch is the time the mocks spent serving each vendor,
	// injected latency left out: they run in this process, on the same
	// CPUs as postured.
	MockMSPerBatch map[string]float64 `json:"mock_ms_per_batch"`
	// CacheHitRatio is fresh lookup-cache reads over all reads; null when
	// nothing read the cache (every provider answered from its index).
	CacheHitRatio *float64 `json:"cache_hit_ratio"`
	CacheReads    int64    `json:"cache_reads"`
	// Device outcomes in the cycle per provider, from postured's /metrics.
	DeviceErrors  map[string]int `json:"device_errors"`
	StaleDevices  map[string]int `json:"stale_devices"`
	MatchedDevice map[string]int `json:"matched_devices"`

	// Memory of the whole process (mocks and poller included): VmHWM over
	// the cycle, the highest Go heap sampled, and allocations per batch.
	PeakRSSMB       float64 `json:"peak_rss_mb"`
	PeakHeapMB      float64 `json:"peak_heap_mb"`
	AllocsPerBatch  float64 `json:"allocs_per_batch"`
	AllocMBPerBatch float64 `json:"alloc_mb_per_batch"`

	// Ratios of p50 to the baselines measured in the same run.
	FloorRatio float64  `json:"floor_ratio"`
	NaiveRatio *float64 `json:"naive_ratio"`
}

// scenarioResult is a scenario's rows and what it cost to set up.
type scenarioResult struct {
	Name string `json:"name"`
	// CrawlSeconds and CrawlCalls: the start-up crawl of the sync-mode
	// providers (before the cold cycle).
	CrawlSeconds float64        `json:"crawl_seconds,omitempty"`
	CrawlCalls   map[string]int `json:"crawl_calls,omitempty"`
	// RetainedHeapMB is the live heap after the warm cycle less the live
	// heap of the fleet and mocks alone: what postured keeps.
	RetainedHeapMB float64 `json:"retained_heap_mb"`
	Rows           []row   `json:"rows"`
}

// runScenario starts a fresh postured for sc against the bed and polls the
// fleet twice.
func (b *bed) runScenario(ctx context.Context, sc scenario, bedHeap uint64) (scenarioResult, error) {
	res := scenarioResult{Name: sc.Name}
	b.set.SetLatency(sc.Latency)
	b.gate.set5xx(sc.Fail5xx, errorShare)
	defer func() {
		b.gate.set5xx("", 0)
		for _, v := range b.set.Vendors {
			v.Faults.Reset()
		}
	}()
	extra := liftedBudget
	if sc.Budgets {
		extra = nil
	}
	cfg, err := b.config(sc.Mode, time.Hour, extra)
	if err != nil {
		return res, err
	}
	in, err := start(ctx, cfg)
	if err != nil {
		return res, err
	}
	defer func() { _ = in.stop() }()
	if err := b.warmKeys(ctx, in); err != nil {
		return res, err
	}
	// The start-up crawl of the sync-mode providers, before the clock of
	// the cold cycle starts, as postured is not ready before it.
	before := b.calls()
	t0 := time.Now()
	in.app.SyncNow(ctx)
	res.CrawlSeconds = time.Since(t0).Seconds()
	res.CrawlCalls = map[string]int{}
	for i, n := range b.calls() {
		res.CrawlCalls[b.set.Vendors[i].Name] = n - before[i]
	}
	p, err := b.poller(in, sc.Concurrency)
	if err != nil {
		return res, err
	}
	for _, phase := range []string{"cold", "warm"} {
		r, err := b.cycle(ctx, in, p, sc.Latency)
		if err != nil {
			return res, fmt.Errorf("bench: %s %s: %w", sc.Name, phase, err)
		}
		r.Scenario, r.Phase, r.Mode, r.Concurrency = sc.Name, phase, sc.Mode, sc.Concurrency
		r.VendorLatencyMS, r.Budgets = int(sc.Latency.Milliseconds()), sc.Budgets
		if sc.Fail5xx != "" {
			r.Fault = fmt.Sprintf("%s %.0f%% 5xx", sc.Fail5xx, errorShare*100)
		}
		res.Rows = append(res.Rows, r)
	}
	res.RetainedHeapMB = max(mb(liveHeap())-mb(bedHeap), 0)
	return res, nil
}

// warmKeys sends one empty batch so postured has fetched the Access certs
// before the clock starts, as it has in service.
func (b *bed) warmKeys(ctx context.Context, in *instance) error {
	tok, err := b.set.Access.AppToken(mockset.AccessAudience, time.Minute)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.url+"/posture", bytes.NewReader([]byte(`{"devices":[]}`)))
	if err != nil {
		return err
	}
	req.Header.Set("Cf-Access-Jwt-Assertion", tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("bench: warm access keys: %w", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("bench: warm access keys: status %d", resp.StatusCode)
	}
	return nil
}

// cycle polls the whole fleet once and measures it; latency is what the
// mocks add to each call.
func (b *bed) cycle(ctx context.Context, in *instance, p *cfpoll.Poller, latency time.Duration) (row, error) {
	outBefore, err := deviceOutcomes(ctx, in.url)
	if err != nil {
		return row{}, err
	}
	callsBefore, busyBefore := b.calls(), b.gate.busyTime()
	hits0, misses0 := in.hits.counts()
	resetPeakRSS()
	heap := watchHeap(20 * time.Millisecond)
	alloc0 := readMetrics(mAllocObjects, mAllocBytes)

	c := p.Poll(ctx)

	alloc1 := readMetrics(mAllocObjects, mAllocBytes)
	peakHeap := heap.done()
	peakRSS := procStatus("VmHWM")
	hits1, misses1 := in.hits.counts()
	outAfter, err := deviceOutcomes(ctx, in.url)
	if err != nil {
		return row{}, err
	}

	r := row{
		Devices: c.Devices, Batches: c.Batches, FailedBatches: len(c.Errors),
		CycleSeconds:        c.Duration.Seconds(),
		VendorCallsPerBatch: map[string]float64{}, MockMSPerBatch: map[string]float64{},
		PeakRSSMB: mb(peakRSS), PeakHeapMB: mb(peakHeap),
		DeviceErrors: map[string]int{}, StaleDevices: map[string]int{}, MatchedDevice: map[string]int{},
	}
	if c.Batches == 0 {
		return r, nil
	}
	var answered []time.Duration
	for _, l := range c.Latencies {
		if l > 0 {
			answered = append(answered, l)
		}
	}
	lat := sortedCopy(answered)
	r.P50MS, r.P90MS, r.P99MS = ms(percentile(lat, .5)), ms(percentile(lat, .9)), ms(percentile(lat, .99))
	if c.Duration > 0 {
		r.BatchesPerSec = float64(c.Batches) / c.Duration.Seconds()
	}
	busy := b.gate.busyTime()
	for i, n := range b.calls() {
		name := b.set.Vendors[i].Name
		r.VendorCallsPerBatch[name] = float64(n-callsBefore[i]) / float64(c.Batches)
		spent := busy[i] - busyBefore[i] - time.Duration(n-callsBefore[i])*latency
		r.MockMSPerBatch[name] = ms(max(spent, 0)) / float64(c.Batches)
	}
	if reads := (hits1 - hits0) + (misses1 - misses0); reads > 0 {
		ratio := float64(hits1-hits0) / float64(reads)
		r.CacheHitRatio, r.CacheReads = &ratio, reads
	}
	for _, v := range b.set.Vendors {
		r.DeviceErrors[v.Name] = int(outAfter[v.Name+"/error"] - outBefore[v.Name+"/error"])
		r.StaleDevices[v.Name] = int(outAfter[v.Name+"/stale"] - outBefore[v.Name+"/stale"])
		r.MatchedDevice[v.Name] = int(outAfter[v.Name+"/matched"] - outBefore[v.Name+"/matched"])
	}
	r.AllocsPerBatch = float64(alloc1[0]-alloc0[0]) / float64(c.Batches)
	r.AllocMBPerBatch = mb(alloc1[1]-alloc0[1]) / float64(c.Batches)
	return r, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func mb(n uint64) float64 { return float64(n) / (1 << 20) }

package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postured/postured/cache"
	"github.com/postured/postured/providers"
)

// hitCounter wraps postured's lookup cache store and sorts its reads as
// the cache's Loader does: a hit is an entry still fresh (ttl for a found
// record, negative ttl for "not found"); anything else makes the Loader ask
// the vendor.
type hitCounter struct {
	ttl, negTTL  time.Duration
	hits, misses atomic.Int64
}

func newHitCounter(ttl, negTTL time.Duration) *hitCounter {
	return &hitCounter{ttl: ttl, negTTL: negTTL}
}

func (h *hitCounter) wrap(s cache.Store[[]providers.Record]) cache.Store[[]providers.Record] {
	return &countedStore{Store: s, h: h}
}

// counts returns the hits and misses so far.
func (h *hitCounter) counts() (int64, int64) { return h.hits.Load(), h.misses.Load() }

type countedStore struct {
	cache.Store[[]providers.Record]
	h *hitCounter
}

func (c *countedStore) Get(ctx context.Context, key string) (cache.Entry[[]providers.Record], bool, error) {
	e, ok, err := c.Store.Get(ctx, key)
	ttl := c.h.ttl
	if !e.Found {
		ttl = c.h.negTTL
	}
	if err == nil && ok && time.Since(e.Stored) < ttl {
		c.h.hits.Add(1)
	} else {
		c.h.misses.Add(1)
	}
	return e, ok, err
}

// procStatus reads a kB field of /proc/self/status (VmRSS, VmHWM) in
// bytes; 0 where there is no /proc.
func procStatus(field string) uint64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
}

// resetPeakRSS starts a new VmHWM period (Linux 4.0+), so each scenario's
// peak is its own; it reports whether the kernel allowed it.
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// runtime/metrics names read by the samplers.
const (
	mHeapObjects  = "/memory/classes/heap/objects:bytes"
	mAllocObjects = "/gc/heap/allocs:objects"
	mAllocBytes   = "/gc/heap/allocs:bytes"
)

// readMetrics reads runtime/metrics samples by name.
func readMetrics(names ...string) []uint64 {
	s := make([]metrics.Sample, len(names))
	for i, n := range names {
		s[i].Name = n
	}
	metrics.Read(s)
	out := make([]uint64, len(names))
	for i := range s {
		if s[i].Value.Kind() == metrics.KindUint64 {
			out[i] = s[i].Value.Uint64()
		}
	}
	return out
}

// liveHeap is the heap left after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	return readMetrics(mHeapObjects)[0]
}

// heapPeak samples the Go heap every interval until stopped and keeps the
// highest value: runtime/metrics has no high-water mark of its own.
type heapPeak struct {
	peak atomic.Uint64
	stop chan struct{}
	wg   sync.WaitGroup
}

func watchHeap(interval time.Duration) *heapPeak {
	h := &heapPeak{stop: make(chan struct{})}
	h.wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if v := readMetrics(mHeapObjects)[0]; v > h.peak.Load() {
				h.peak.Store(v)
			}
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
		}
	})
	return h
}

// done stops the sampling and returns the peak.
func (h *heapPeak) done() uint64 {
	close(h.stop)
	h.wg.Wait()
	return h.peak.Load()
}

// percentile is the q-quantile (nearest rank) of sorted d.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// deviceOutcomes scrapes postured's /metrics for its per-provider device
// outcome counters (postured_provider_devices_total), keyed
// "provider/outcome".
func deviceOutcomes(ctx context.Context, base string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("scrape metrics: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape metrics: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("scrape metrics: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape metrics: status %d", resp.StatusCode)
	}
	return parseOutcomes(body), nil
}

// parseOutcomes reads the postured_provider_devices_total samples of a
// Prometheus text exposition.
func parseOutcomes(text []byte) map[string]float64 {
	const name = "postured_provider_devices_total{"
	out := map[string]float64{}
	for line := range strings.SplitSeq(string(text), "\n") {
		labels, ok := strings.CutPrefix(line, name)
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(labels, "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		var prov, outcome string
		for kv := range strings.SplitSeq(labels, ",") {
			k, val, _ := strings.Cut(kv, "=")
			val = strings.Trim(val, `"`)
			switch k {
			case "provider":
				prov = val
			case "outcome":
				outcome = val
			}
		}
		out[prov+"/"+outcome] = v
	}
	return out
}

// sortedCopy returns d sorted, leaving d as it was.
func sortedCopy(d []time.Duration) []time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postured/postured/cache"
	"github.com/postured/postured/providers"
)

// TestQuickRun runs the quick mode end to end against a small fleet and
// checks the JSON is complete and its counts add up. Timings are machine
// dependent and never asserted; counts that only a slow machine could
// change (vendor calls after a batch ran out of time) are not either.
func TestQuickRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the mocks and six postured instances")
	}
	dir := t.TempDir()
	out, chart := filepath.Join(dir, "bench.json"), filepath.Join(dir, "chart.svg")
	const devices = 1200
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"-devices", "1200", "-quick", "-naive-sample", "3", "-out", out, "-chart", chart}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	const batches = 2 // 1200 devices in batches of 1000
	vendors := []string{"crowdstrike", "intune", "jamf"}

	if rep.Devices != devices || rep.Floor.Batches != batches {
		t.Errorf("devices %d, floor batches %d; want %d, %d", rep.Devices, rep.Floor.Batches, devices, batches)
	}
	var wantNames []string
	for _, sc := range plan() {
		if sc.Quick {
			wantNames = append(wantNames, sc.Name)
		}
	}
	if len(rep.Scenarios) != len(wantNames) {
		t.Fatalf("%d scenarios, want the %d quick ones %v", len(rep.Scenarios), len(wantNames), wantNames)
	}
	if len(rep.Naive) != 2 || rep.Naive[0].Devices != 1000 || rep.Naive[1].Devices != 3 {
		t.Errorf("naive baselines = %+v; want 1000 devices at 0 ms and 3 at 50 ms", rep.Naive)
	}
	for _, n := range rep.Naive {
		for _, v := range vendors {
			// One lookup per device per vendor at least (Jamf asks
			// computers and mobile devices).
			if n.VendorCallsPerBatch[v] < 1000 {
				t.Errorf("naive at %d ms: %s %.0f calls per 1000 devices, want >= 1000", n.VendorLatencyMS, v, n.VendorCallsPerBatch[v])
			}
		}
	}
	for i, s := range rep.Scenarios {
		t.Run(s.Name, func(t *testing.T) {
			if s.Name != wantNames[i] {
				t.Fatalf("scenario %d is %q, want %q", i, s.Name, wantNames[i])
			}
			if s.CrawlCalls["intune"] == 0 {
				t.Errorf("no start-up crawl of Intune (sync in every scenario): %v", s.CrawlCalls)
			}
			if len(s.Rows) != 2 || s.Rows[0].Phase != "cold" || s.Rows[1].Phase != "warm" {
				t.Fatalf("rows %+v, want cold then warm", s.Rows)
			}
			for _, r := range s.Rows {
				if r.Devices != devices || r.Batches != batches || r.FailedBatches != 0 {
					t.Errorf("%s: %d devices, %d batches, %d failed; want %d, %d, 0", r.Phase, r.Devices, r.Batches, r.FailedBatches, devices, batches)
				}
				if r.AllocsPerBatch <= 0 || r.FloorRatio <= 0 || r.NaiveRatio == nil || r.PeakHeapMB <= 0 {
					t.Errorf("%s: allocs %v, floor ratio %v, naive ratio %v, peak heap %v: want all set", r.Phase, r.AllocsPerBatch, r.FloorRatio, r.NaiveRatio, r.PeakHeapMB)
				}
				matched := 0
				for _, v := range vendors {
					if _, ok := r.VendorCallsPerBatch[v]; !ok {
						t.Errorf("%s: no vendor call count for %s", r.Phase, v)
					}
					matched += r.MatchedDevice[v]
				}
				if matched == 0 {
					t.Errorf("%s: no device matched any vendor", r.Phase)
				}
			}
			cold := s.Rows[0]
			switch s.Name {
			case "sync":
				for _, r := range s.Rows {
					if r.CacheHitRatio != nil || r.CacheReads != 0 {
						t.Errorf("%s: sync mode read the lookup cache %d times", r.Phase, r.CacheReads)
					}
					for _, v := range vendors {
						if r.VendorCallsPerBatch[v] != 0 {
							t.Errorf("%s: sync mode called %s %.1f times per batch", r.Phase, v, r.VendorCallsPerBatch[v])
						}
					}
				}
			case "query", "query-c1", "query-50ms", "query-5xx", "query-budgets":
				if cold.CacheHitRatio == nil || *cold.CacheHitRatio > 0.5 {
					t.Errorf("cold cache hit ratio %v, want mostly misses", cold.CacheHitRatio)
				}
				if cold.VendorCallsPerBatch["crowdstrike"] == 0 || cold.VendorCallsPerBatch["jamf"] == 0 || cold.VendorCallsPerBatch["intune"] != 0 {
					t.Errorf("cold calls %v: want CrowdStrike and Jamf asked, Intune (sync) not", cold.VendorCallsPerBatch)
				}
				if s.Rows[1].CacheHitRatio == nil {
					t.Error("warm cycle read no cache")
				}
			}
		})
	}
	svg, err := os.ReadFile(chart)
	if err != nil || !bytes.Contains(svg, []byte("<svg")) || !bytes.Contains(svg, []byte("batches in flight")) {
		t.Errorf("chart: %v, %d bytes: want an SVG with its panels", err, len(svg))
	}
	if !strings.Contains(stdout.String(), "x floor") {
		t.Errorf("no table printed:\n%s", stdout.String())
	}
}

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		want    []string // scenarios selected
		wantErr string
	}{
		{"default runs all", nil, names(plan()), ""},
		{"quick", []string{"-quick"}, []string{"query", "sync", "sync-onmiss", "query-c1", "query-50ms", "query-5xx", "query-budgets"}, ""},
		{"named, in plan order", []string{"-scenarios", "query-c16, sync"}, []string{"sync", "query-c16"}, ""},
		{"unknown scenario", []string{"-scenarios", "nope"}, nil, `no scenario "nope"`},
		{"no devices", []string{"-devices", "0"}, nil, "-devices must be >= 1"},
		{"stray argument", []string{"extra"}, nil, "unexpected arguments"},
		{"soak without samples", []string{"-soak", "1m", "-sample", "0s"}, nil, "-sample > 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseFlags(tc.args, &bytes.Buffer{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := names(o.selected()); strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("selected %v, want %v", got, tc.want)
			}
		})
	}
}

func names(scs []scenario) []string {
	var out []string
	for _, sc := range scs {
		out = append(out, sc.Name)
	}
	return out
}

func TestParseOutcomes(t *testing.T) {
	text := `# HELP postured_provider_devices_total Devices per provider and lookup outcome.
# TYPE postured_provider_devices_total counter
postured_provider_devices_total{outcome="error",provider="crowdstrike"} 12
postured_provider_devices_total{outcome="matched",provider="jamf"} 1.5e+03
postured_batch_devices_count 3
`
	got := parseOutcomes([]byte(text))
	want := map[string]float64{"crowdstrike/error": 12, "jamf/matched": 1500}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

// stubStore answers every Get with its one entry.
type stubStore struct {
	e  cache.Entry[[]providers.Record]
	ok bool
}

func (s stubStore) Get(context.Context, string) (cache.Entry[[]providers.Record], bool, error) {
	return s.e, s.ok, nil
}

func (stubStore) Set(context.Context, string, cache.Entry[[]providers.Record], time.Duration) error {
	return nil
}

func TestHitCounter(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name string
		s    stubStore
		hit  bool
	}{
		{"fresh record", stubStore{cache.Entry[[]providers.Record]{Found: true, Stored: now}, true}, true},
		{"record past ttl (stale)", stubStore{cache.Entry[[]providers.Record]{Found: true, Stored: now.Add(-10 * time.Minute)}, true}, false},
		{"fresh not-found", stubStore{cache.Entry[[]providers.Record]{Stored: now.Add(-30 * time.Second)}, true}, true},
		{"not-found past negative ttl", stubStore{cache.Entry[[]providers.Record]{Stored: now.Add(-2 * time.Minute)}, true}, false},
		{"absent", stubStore{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHitCounter(5*time.Minute, time.Minute)
			if _, _, err := h.wrap(tc.s).Get(t.Context(), "k"); err != nil {
				t.Fatal(err)
			}
			hits, misses := h.counts()
			if (hits == 1) != tc.hit || hits+misses != 1 {
				t.Fatalf("hits %d, misses %d; want hit: %v", hits, misses, tc.hit)
			}
		})
	}
}

// TestSoakReports: a short soak writes its samples and fault counts. How
// many cycles fit in it depends on the machine, so none is required.
func TestSoakReports(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the mocks and postured")
	}
	out := filepath.Join(t.TempDir(), "soak.json")
	var stdout bytes.Buffer
	if err := run(t.Context(), []string{"-devices", "300", "-soak", "3s", "-sample", "1s", "-out", out}, &stdout, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	s := rep.Soak
	if s == nil || len(s.Samples) < 2 || len(rep.Scenarios) != 0 {
		t.Fatalf("soak report %+v with %d scenarios: want samples at start and after, no scenarios", s, len(rep.Scenarios))
	}
	if s.Samples[0].Goroutines == 0 || s.Samples[0].HeapMB <= 0 {
		t.Errorf("first sample %+v: want goroutines and heap", s.Samples[0])
	}
	faults := 0
	for _, n := range s.Faults {
		faults += n
	}
	if faults == 0 {
		t.Errorf("no fault injected in 3 s (one every %s)", soakFaultEvery)
	}
	if !strings.Contains(stdout.String(), "soak:") {
		t.Errorf("no soak summary printed:\n%s", stdout.String())
	}
}

func TestSlope(t *testing.T) {
	for _, tc := range []struct {
		name string
		ys   []float64 // one sample a minute
		want float64
	}{
		{"flat", []float64{100, 100, 100}, 0},
		{"one MB a minute", []float64{100, 101, 102, 103}, 1},
		{"noise around a plateau", []float64{200, 210, 190, 210, 190, 200}, -20.0 / 17.5},
		{"one sample", []float64{5}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s []soakSample
			for i, y := range tc.ys {
				s = append(s, soakSample{ElapsedSeconds: float64(60 * i), RSSMB: y})
			}
			got := slope(s, func(s soakSample) float64 { return s.RSSMB })
			if d := got - tc.want; d > 1e-5 || d < -1e-5 {
				t.Fatalf("slope = %v, want %v", got, tc.want)
			}
		})
	}
}

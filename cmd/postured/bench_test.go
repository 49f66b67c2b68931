package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/internal/app"
	"github.com/postured/postured/internal/mockset"
	"github.com/postured/postured/server"
)

// benchServer wires the demo configuration (each vendor in its demo mode,
// or all in sync mode) against an in-process mockvendors fleet and returns
// the postured handler with a token and one 1000-device batch.
func benchServer(b *testing.B, latency time.Duration, allSync bool) (http.Handler, string, []byte, *mockset.Set) {
	b.Helper()
	set, err := mockset.New(5000, 1, fleetNow)
	if err != nil {
		b.Fatal(err)
	}
	set.SetLatency(latency)
	mocksURL := set.Serve(b)
	text, err := mockset.DemoConfig()
	if err != nil {
		b.Fatal(err)
	}
	if allSync {
		text = bytes.ReplaceAll(text, []byte("mode: query"), []byte("mode: sync"))
	}
	cfg, err := app.Parse(text, app.Registry(), mockset.DemoEnv(mocksURL, "127.0.0.1:0"))
	if err != nil {
		b.Fatal(err)
	}
	a, err := app.Build(cfg, app.Registry(), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	a.SyncNow(b.Context())
	srv, _, err := a.NewServer(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	tok, err := set.Access.AppToken(mockset.AccessAudience, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"devices": set.Batches(1000)[0]})
	return srv.Handler(), tok, body, set
}

func postOnce(b *testing.B, h http.Handler, tok string, body []byte) {
	req := httptest.NewRequest(http.MethodPost, "/posture", bytes.NewReader(body))
	req.Header.Set("Cf-Access-Jwt-Assertion", tok)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		b.Fatalf("status %d: %s", w.Code, w.Body)
	}
	_, _ = io.Copy(io.Discard, w.Body)
}

// BenchmarkPostureWarm: one 1000-device batch whose lookups are all cached
// (the steady state between vendor TTLs), through the full handler: token
// check, decode, aggregation, encode.
func BenchmarkPostureWarm(b *testing.B) {
	h, tok, body, set := benchServer(b, 0, false)
	warmUp(b, h, tok, body, set)
	before := set.Calls()
	durations := make([]time.Duration, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		postOnce(b, h, tok, body)
		durations = append(durations, time.Since(start))
	}
	reportPercentiles(b, durations)
	for vendor, n := range diffCalls(set.Calls(), before) {
		if n != 0 {
			b.Fatalf("warm batches made %d %s calls", n, vendor)
		}
	}
}

// warmUp posts body until two batches in a row make no vendor call: on a
// loaded machine the first, cold batch can outlast its deadline, and the
// lookups it left unfinished (they finish detached, for the next batch)
// would be counted against the warm batches.
func warmUp(b *testing.B, h http.Handler, tok string, body []byte, set *mockset.Set) {
	b.Helper()
	quiet := 0
	for range 8 {
		before := set.Calls()
		postOnce(b, h, tok, body)
		if quiet++; !maps.Equal(set.Calls(), before) {
			quiet = 0
		}
		if quiet == 2 {
			return
		}
	}
	b.Fatal("the cache does not warm: batches keep making vendor calls")
}

// BenchmarkJSONFloor: what the warm batch cannot go below, the same
// 1000-device batch decoded and its answer encoded by the server's own
// codec, nothing else. The ratio BenchmarkPostureWarm / BenchmarkJSONFloor
// is the figure of merit (issue 11: within 3x).
func BenchmarkJSONFloor(b *testing.B) {
	h, tok, body, _ := benchServer(b, 0, false)
	results := answerOf(b, h, tok, body)
	durations := make([]time.Duration, 0, 1024)
	var out []byte
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		devices, err := server.DecodeBatch(body, 1000)
		if err != nil || len(devices) != len(results) {
			b.Fatalf("decoded %d devices (%v), want %d", len(devices), err, len(results))
		}
		out = server.AppendResults(out[:0], results)
		durations = append(durations, time.Since(start))
	}
	reportPercentiles(b, durations)
}

// answerOf posts body once and returns the answer as results in the
// order of the batch.
func answerOf(b *testing.B, h http.Handler, tok string, body []byte) []aggregate.Result {
	b.Helper()
	req := httptest.NewRequest(http.MethodPost, "/posture", bytes.NewReader(body))
	req.Header.Set("Cf-Access-Jwt-Assertion", tok)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	var resp struct {
		Result map[string]struct {
			S2SID string `json:"s2s_id"`
			Score int    `json:"score"`
		} `json:"result"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &resp); w.Code != http.StatusOK || err != nil {
		b.Fatalf("status %d (%v): %s", w.Code, err, w.Body)
	}
	devices, err := server.DecodeBatch(body, 1000)
	if err != nil {
		b.Fatal(err)
	}
	results := make([]aggregate.Result, len(devices))
	for i, d := range devices {
		r := resp.Result[d.ID]
		results[i] = aggregate.Result{DeviceID: d.ID, S2SID: r.S2SID, Score: r.Score}
	}
	return results
}

// BenchmarkPostureCold50ms: the same batch with an empty cache and 50 ms
// added to every vendor API call; in all-sync mode the crawl happens before
// the clock starts, as it does at start-up.
func BenchmarkPostureCold50ms(b *testing.B) {
	for _, bc := range []struct {
		name    string
		allSync bool
	}{{"demo-modes", false}, {"all-sync", true}} {
		b.Run(bc.name, func(b *testing.B) { benchCold(b, bc.allSync) })
	}
}

func benchCold(b *testing.B, allSync bool) {
	durations := make([]time.Duration, 0, 16)
	for b.Loop() {
		b.StopTimer()
		h, tok, body, _ := benchServer(b, 50*time.Millisecond, allSync)
		warmKeys(b, h, tok) // certs fetched; the vendors stay cold
		b.StartTimer()
		start := time.Now()
		postOnce(b, h, tok, body)
		durations = append(durations, time.Since(start))
	}
	reportPercentiles(b, durations)
}

// warmKeys makes one empty request so the Access certs are fetched before
// timing.
func warmKeys(b *testing.B, h http.Handler, tok string) {
	postOnce(b, h, tok, []byte(`{"devices":[]}`))
}

func reportPercentiles(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	p := func(q float64) float64 {
		return float64(d[min(len(d)-1, int(q*float64(len(d))))].Microseconds()) / 1000
	}
	b.ReportMetric(p(0.50), "p50-ms")
	b.ReportMetric(p(0.99), "p99-ms")
}

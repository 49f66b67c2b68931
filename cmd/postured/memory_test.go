package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postured/postured/internal/app"
	"github.com/postured/postured/internal/mockset"
)

// memoryFleet is the fleet TestMemory100k measures: 100k Cloudflare
// devices, ~166k vendor records across the three vendors.
const memoryFleet = 100_000

// TestMemory100k measures postured's memory for a 100k-device fleet with
// every vendor in sync mode and External Evaluation's posture memory on:
// after the crawl, after a full polling cycle (100 batches of 1000), and
// after a second crawl.
// postured runs in a child process of its own, so the mocks' fleet is not
// counted. It takes a minute and a few hundred MB, so it runs only when
// POSTURED_MEMORY_TEST is set:
//
//	POSTURED_MEMORY_TEST=1 go test -count=1 -run TestMemory100k -v ./cmd/postured
//
// With POSTURED_MEMORY_GOMEMLIMIT=150MiB, postured runs with that soft
// limit, as `postured serve` sets one in a container with a memory limit
// (90% of it).
//
// With POSTURED_MEMORY_PROFILE=<dir>, the child also writes heap profiles
// (crawl.heap, cycle.heap, recrawl.heap) there, for go tool pprof.
//
// admin_listen is set, so what-if is on too: it reads the same posture
// memory as External Evaluation, so a device's identifiers are held once.
//
// It reports; BENCHMARKS.md records. It asserts what must hold whatever
// the machine: every provider synced, every batch answered, every device
// remembered.
func TestMemory100k(t *testing.T) {
	if url := os.Getenv("POSTURED_MEMORY_CHILD"); url != "" {
		memoryChild(t, url)
		return
	}
	if os.Getenv("POSTURED_MEMORY_TEST") == "" {
		t.Skip("set POSTURED_MEMORY_TEST=1 to measure a 100k-device fleet")
	}
	set, err := mockset.New(memoryFleet, 1, fleetNow)
	if err != nil {
		t.Fatal(err)
	}
	mocksURL := set.Serve(t)
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestMemory100k$", "-test.v", "-test.count=1") // #nosec G204 -- this test binary
	cmd.Env = append(os.Environ(), "POSTURED_MEMORY_CHILD="+mocksURL)
	if limit := os.Getenv("POSTURED_MEMORY_GOMEMLIMIT"); limit != "" {
		cmd.Env = append(cmd.Env, "GOMEMLIMIT="+limit) // postured's only: the mocks hold the fleet
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	reported := 0
	for sc.Scan() {
		if strings.Contains(sc.Text(), `msg="inventory synced"`) {
			t.Log(sc.Text())
		}
		if _, line, ok := strings.Cut(sc.Text(), "memory: "); ok {
			t.Log(line)
			reported++
		}
	}
	if reported != 3 {
		t.Fatalf("child reported %d measurements, want 3:\n%s", reported, out)
	}
}

// memoryChild is postured's side of TestMemory100k.
func memoryChild(t *testing.T, mocksURL string) {
	demo, err := mockset.DemoConfig()
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(demo), "mode: query", "mode: sync")
	text = strings.Replace(text, "  deadline: 4s\n", "  deadline: 60s\n", 1)
	text += fmt.Sprintf(`admin_listen: "127.0.0.1:0"
external_evaluation:
  enabled: true
  key_file: %q
  rules:
    - {name: healthy, action: allow, when: {score: {min: 50}}}
`, t.TempDir()+"/ee-key.pem")
	cfg, err := app.Parse([]byte(text), app.Registry(), mockset.DemoEnv(mocksURL, "127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	// The syncers' log lines say how long each crawl took; the parent
	// reports them.
	a, err := app.Build(cfg, app.Registry(), slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	a.SyncNow(t.Context())
	crawl := time.Since(start)
	srv, closeSrv, err := a.NewServer(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = closeSrv() }()
	// Every provider synced; the syncers' log lines say how many records.
	var ready struct {
		Providers map[string]struct{ Ready bool }
	}
	serveJSON(t, srv.Handler(), "/readyz", &ready)
	for name, p := range ready.Providers {
		if !p.Ready {
			t.Fatalf("%s not ready after the crawl", name)
		}
	}
	reportMemory(t, fmt.Sprintf("after the crawl (%s)", crawl.Round(time.Millisecond)), "crawl.heap")
	tok := get(t, mocksURL+mockset.PrefixAccess+"/token")
	h := srv.Handler()
	answered := 0
	for offset := 0; offset < memoryFleet; offset += 1000 {
		body := get(t, mocksURL+"/cloudflare/batch.json?limit=1000&offset="+strconv.Itoa(offset))
		req := httptest.NewRequest(http.MethodPost, "/posture", strings.NewReader(body))
		req.Header.Set("Cf-Access-Jwt-Assertion", tok)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		var resp struct{ Result map[string]json.RawMessage }
		if err := json.Unmarshal(w.Body.Bytes(), &resp); w.Code != http.StatusOK || err != nil {
			t.Fatalf("batch at %d: status %d (%v)", offset, w.Code, err)
		}
		answered += len(resp.Result)
	}
	if answered != memoryFleet {
		t.Fatalf("answered %d devices, want %d", answered, memoryFleet)
	}
	w := httptest.NewRecorder()
	srv.AdminHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil)) // admin_listen serves it
	if want := fmt.Sprintf("\npostured_posture_memory_devices %d\n", memoryFleet); !strings.Contains(w.Body.String(), want) {
		t.Fatalf("posture memory: want %q in /metrics", strings.TrimSpace(want))
	}
	reportMemory(t, fmt.Sprintf("after a polling cycle (%d batches)", memoryFleet/1000), "cycle.heap")
	// The steady state: every crawl after the first builds its index
	// while the old one serves and the posture memory is full.
	start = time.Now()
	a.SyncNow(t.Context())
	reportMemory(t, fmt.Sprintf("after a second crawl (%s)", time.Since(start).Round(time.Millisecond)), "recrawl.heap")
}

// reportMemory logs the process's resident set (now and peak) and the Go
// heap after a collection, and writes a heap profile named profile if
// POSTURED_MEMORY_PROFILE is set.
func reportMemory(t *testing.T, when, profile string) {
	runtime.GC()
	if dir := os.Getenv("POSTURED_MEMORY_PROFILE"); dir != "" {
		f, err := os.Create(filepath.Join(dir, profile))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := pprof.WriteHeapProfile(f); err != nil {
			t.Fatal(err)
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	field := func(name string) string {
		for line := range strings.SplitSeq(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, name+":"); ok {
				return strings.TrimSpace(v)
			}
		}
		return "?"
	}
	t.Logf("memory: %s: VmRSS %s, VmHWM %s, Go heap in use %d MB (live %d MB), Go sys %d MB",
		when, field("VmRSS"), field("VmHWM"), ms.HeapInuse>>20, ms.HeapAlloc>>20, ms.Sys>>20)
}

// serveJSON decodes h's answer to GET path into v.
func serveJSON(t *testing.T, h http.Handler, path string, v any) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
	if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
		t.Fatalf("GET %s: %d %v", path, w.Code, err)
	}
}

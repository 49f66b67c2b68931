package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postured/postured/internal/app"
	"github.com/postured/postured/internal/cfpoll"
	"github.com/postured/postured/internal/crawlshare"
	"github.com/postured/postured/internal/mockset"
	"github.com/postured/postured/internal/redistest"
)

// buildPostured compiles this command once into a temporary directory, so
// replicas can run as separate processes.
func buildPostured(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "postured")
	// #nosec G204 -- the test builds its own package
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// replicaConfig is the demo configuration with mode replaced as asked
// ("" keeps the demo's), the lookup cache in redisURL, and crawls every
// 10m so that none is due during the test.
func replicaConfig(t *testing.T, mode, redisURL string) string {
	t.Helper()
	demo, err := mockset.DemoConfig()
	if err != nil {
		t.Fatal(err)
	}
	text := string(demo)
	if mode != "" {
		text = strings.ReplaceAll(text, "mode: query", "mode: "+mode)
		text = strings.ReplaceAll(text, "mode: sync", "mode: "+mode)
	}
	text = regexp.MustCompile(`sync_interval: \S+`).ReplaceAllString(text, "sync_interval: 10m")
	// Answers, not speed: see startDemo.
	text = strings.Replace(text, "  deadline: 4s\n", "  deadline: 60s\n", 1)
	if !strings.Contains(text, "cache:\n  backend: memory\n") {
		t.Fatal("demo config no longer has cache.backend: memory; update this test")
	}
	return strings.Replace(text, "cache:\n  backend: memory\n", "cache:\n  backend: redis\n  redis_url: "+redisURL+"\n", 1)
}

// startReplicas runs n postured processes from bin with cfgText, and
// returns them once they listen.
func startReplicas(t *testing.T, bin, cfgText, mocksURL string, n int) []*instance {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "postured.yaml")
	if err := os.WriteFile(path, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	listening := regexp.MustCompile(`"msg":"postured listening","addr":"([^"]+)"`)
	out := make([]*instance, n)
	for i := range out {
		logs := &syncBuffer{}
		// #nosec G204 -- the test's own binary and config
		cmd := exec.Command(bin, "serve", "-c", path)
		cmd.Env = append(os.Environ(), "MOCKVENDORS_URL="+mocksURL, "POSTURED_LISTEN=127.0.0.1:0")
		cmd.Stderr = logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			_ = cmd.Process.Signal(os.Interrupt)
			<-exited
			if t.Failed() {
				t.Logf("replica %d logs:\n%s", i, logs.String())
			}
		})
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		err := logs.waitFor(ctx, "postured listening", 1)
		cancel()
		if err != nil {
			t.Fatalf("replica %d: %v\n%s", i, err, logs.String())
		}
		m := listening.FindStringSubmatch(logs.String())
		if m == nil {
			t.Fatalf("replica %d: no address in %s", i, logs.String())
		}
		out[i] = &instance{url: "http://" + m[1], logs: logs}
	}
	return out
}

// pollEach runs one cfpoll cycle of the whole fleet against every
// replica at once, as Cloudflare spread over replicas with the same
// devices would.
func pollEach(t *testing.T, set *mockset.Set, token string, replicas []*instance) {
	t.Helper()
	var wg sync.WaitGroup
	for i, in := range replicas {
		p, err := cfpoll.New(cfpoll.Config{
			Target: in.url + "/posture", Devices: set.Fleet.Batch(), BatchSize: 1000,
			Tokens: cfpoll.TokenFunc(func(context.Context) (string, error) { return token, nil }),
		})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			if c := p.Poll(t.Context()); c.Err() != nil {
				t.Errorf("replica %d: polling cycle: %v", i, c.Err())
			}
		})
	}
	wg.Wait()
}

// scores are every device's answer from one replica.
func scores(t *testing.T, set *mockset.Set, token string, in *instance) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, b := range set.Batches(1000) {
		for id, r := range postBatch(t, in.url, token, b).Result {
			out[id] = fmt.Sprintf("score %d s2s_id %q", r.Score, r.S2SID)
		}
	}
	return out
}

// crawledBy reads each replica's /readyz and counts, per provider, the
// replicas that crawled it themselves.
func crawledBy(t *testing.T, replicas []*instance) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, in := range replicas {
		resp, err := http.Get(in.url + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			Providers map[string]struct {
				Crawl string `json:"crawl"`
			} `json:"providers"`
		}
		err = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for name, p := range r.Providers {
			if p.Crawl == crawlshare.SourceLeader {
				out[name]++
			}
		}
	}
	return out
}

// TestReplicasShareVendorCalls: three postured processes sharing one
// Redis make the vendor calls of one for start-up and a polling cycle
// against each of them, and answer every device as a single replica does:
// sync-mode providers are crawled by one replica and loaded by the
// others, and query-mode lookups are asked once and read from the cache.
func TestReplicasShareVendorCalls(t *testing.T) {
	if testing.Short() {
		t.Skip("builds postured and runs four processes over a 5000-device fleet")
	}
	set, err := mockset.New(5000, 1, fleetNow)
	if err != nil {
		t.Fatal(err)
	}
	mocksURL := set.Serve(t)
	token, err := set.Access.AppToken(mockset.AccessAudience, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bin := buildPostured(t)

	for _, tc := range []struct{ name, mode string }{{"all sync", "sync"}, {"demo modes", ""}} {
		t.Run(tc.name, func(t *testing.T) {
			// One replica alone: the vendor calls to match, and the answers.
			before := set.Calls()
			single := startReplicas(t, bin, replicaConfig(t, tc.mode, redistest.Start(t).URL), mocksURL, 1)
			waitReady(t, single[0])
			pollEach(t, set, token, single)
			want := diffCalls(set.Calls(), before)
			wantScores := scores(t, set, token, single[0])

			before = set.Calls()
			replicas := startReplicas(t, bin, replicaConfig(t, tc.mode, redistest.Start(t).URL), mocksURL, 3)
			for _, in := range replicas {
				waitReady(t, in)
			}
			pollEach(t, set, token, replicas)
			got := diffCalls(set.Calls(), before)
			t.Logf("vendor calls for start-up and a polling cycle: one replica %v, three replicas %v", want, got)
			for vendor, n := range want {
				if math.Abs(float64(got[vendor]-n)) > 0.1*float64(n) {
					t.Errorf("%s: three replicas made %d vendor calls, one replica %d: want within 10%%", vendor, got[vendor], n)
				}
			}
			for name, n := range crawledBy(t, replicas) {
				if n != 1 {
					t.Errorf("provider %s: crawled by %d replicas, want 1", name, n)
				}
			}
			for i, in := range replicas {
				if want := "postured_sync_shared{provider=\"intune\"} 1\n"; !strings.Contains(get(t, in.url+"/metrics"), want) {
					t.Errorf("replica %d: /metrics lacks %q", i, want)
				}
			}
			for i, in := range replicas {
				got := scores(t, set, token, in)
				var diff []string
				for id, w := range wantScores {
					if got[id] != w {
						diff = append(diff, fmt.Sprintf("%s: %s, single replica %s", id, got[id], w))
					}
				}
				if len(diff) > 0 || len(got) != len(wantScores) {
					t.Errorf("replica %d: %d of %d devices answered differently from a single replica, e.g. %v", i, len(diff), len(wantScores), diff[:min(5, len(diff))])
				}
			}
		})
	}
}

// TestReplicaWithoutRedisCrawlsAlone: a replica whose Redis is down
// crawls every sync-mode provider itself, serves, and says so in /readyz
// and in postured_sync_shared.
func TestReplicaWithoutRedisCrawlsAlone(t *testing.T) {
	set, err := mockset.New(300, 1, fleetNow)
	if err != nil {
		t.Fatal(err)
	}
	mocksURL := set.Serve(t)
	down := redistest.Start(t)
	down.Stop()
	cfg, err := app.Parse([]byte(replicaConfig(t, "sync", down.URL)), app.Registry(), mockset.DemoEnv(mocksURL, "127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	in := runServe(t, cfg)
	waitReady(t, in)

	resp, err := http.Get(in.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	var ready struct {
		Providers map[string]struct {
			Crawl  string `json:"crawl"`
			Shared *bool  `json:"shared"`
		} `json:"providers"`
	}
	err = json.NewDecoder(resp.Body).Decode(&ready)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	metrics := get(t, in.url+"/metrics")
	for _, name := range mockset.Names() {
		p := ready.Providers[name]
		if p.Crawl != crawlshare.SourceLocal || p.Shared == nil || *p.Shared {
			t.Errorf("/readyz %s: crawl %q shared %v, want %q and false", name, p.Crawl, p.Shared, crawlshare.SourceLocal)
		}
		if want := fmt.Sprintf("postured_sync_shared{provider=%q} 0\n", name); !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	token, err := set.Access.AppToken(mockset.AccessAudience, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if r := postBatch(t, in.url, token, set.Batches(300)[0]); len(r.Result) != 300 {
		t.Errorf("%d answers for 300 devices", len(r.Result))
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

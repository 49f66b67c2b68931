package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/internal/app"
	"github.com/postured/postured/internal/cfpoll"
	"github.com/postured/postured/server"
)

// manualClock hands out tickers the test fires by hand, one channel per
// period, so the poller and the drift (different periods) are driven
// apart.
type manualClock struct {
	mu    sync.Mutex
	ticks map[time.Duration]chan time.Time
	// eager periods are always due (waiting for readiness).
	eager map[time.Duration]bool
}

func (m *manualClock) ch(d time.Duration) chan time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ticks == nil {
		m.ticks = map[time.Duration]chan time.Time{}
	}
	if m.ticks[d] == nil {
		m.ticks[d] = make(chan time.Time)
	}
	return m.ticks[d]
}

func (m *manualClock) ticker(d time.Duration) (<-chan time.Time, func()) {
	if m.eager[d] {
		return eager(d)
	}
	return m.ch(d), func() {}
}

// fire delivers one tick of period d; it returns once the loop took it.
func (m *manualClock) fire(d time.Duration, at time.Time) { m.ch(d) <- at }

// eager is a ticker that is always due: loops run cycle after cycle.
func eager(time.Duration) (<-chan time.Time, func()) {
	c := make(chan time.Time)
	close(c)
	return c, func() {}
}

// lines streams what a command writes, line by line.
func lines(t *testing.T) (io.Writer, <-chan string) {
	t.Helper()
	pr, pw := io.Pipe()
	out := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			out <- sc.Text()
		}
		close(out)
	}()
	t.Cleanup(func() { pw.Close() })
	return pw, out
}

// expectLine reads lines until one matches re, failing if the output ends
// first; it returns the submatches.
func expectLine(t *testing.T, out <-chan string, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	var seen []string
	for l := range out {
		if m := rx.FindStringSubmatch(l); m != nil {
			return m
		}
		seen = append(seen, l)
	}
	t.Fatalf("no line matching %q; output was:\n%s", re, strings.Join(seen, "\n"))
	return nil
}

// TestDemoPolls runs the demo as a user would: its own poller prints a
// cycle line at once, then one per poll tick, drift ticks print theirs,
// and a separate `mockvendors poll --cycles 2` against the running demo
// exits 0 after two valid cycles.
func TestDemoPolls(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	clock := &manualClock{eager: map[time.Duration]bool{readyPoll: true}}
	stdout, out := lines(t)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"demo", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--devices", "300", "--seed", "4", "--dir", t.TempDir(),
			"--poll-interval", "20s", "--drift", "10", "--drift-interval", "30s"}, stdout, io.Discard, clock.ticker)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("demo: %v", err)
		}
	})

	m := expectLine(t, out, `^postured demo is running on (http://\S+) against 300 mock devices \(mocks at (http://\S+)\)\.$`)
	posture, mocks := m[1]+"/posture", m[2]
	statusPage := expectLine(t, out, `^Status page, in a browser: (http://\S+/status)$`)[1]
	explain := demoExplainLines(t, out)
	expectLine(t, out, `^poll cycle 1: devices=300 batches=1 .* changed=0 errors=0$`)
	// After the first cycle, which waits for readiness: before Intune's
	// first sync the running postured could not answer for it yet.
	explain.check(t)
	checkStatusPage(t, statusPage)
	clock.fire(30*time.Second, time.Now())
	expectLine(t, out, `^drift tick 1: [1-9]\d* devices changed in their vendors \(\d+ re-enrolled\)$`)
	clock.fire(20*time.Second, time.Now())
	expectLine(t, out, `^poll cycle 2: devices=300 batches=1 .* errors=0$`)

	var pollOut bytes.Buffer
	err := run(ctx, []string{"poll", "--target", posture, "--token-url", mocks + "/access/token",
		"--devices", "300", "--seed", "4", "--cycles", "2", "--batch", "120", "--concurrency", "2", "--ready", m[1] + "/readyz"}, &pollOut, io.Discard, eager)
	if err != nil {
		t.Fatalf("poll --cycles 2: %v\n%s", err, pollOut.String())
	}
	got := strings.Split(strings.TrimSpace(pollOut.String()), "\n")
	if len(got) != 2 {
		t.Fatalf("poll printed %d lines, want 2:\n%s", len(got), pollOut.String())
	}
	for i, l := range got {
		if want := fmt.Sprintf("poll cycle %d: devices=300 batches=3 ", i+1); !strings.HasPrefix(l, want) || !strings.HasSuffix(l, " errors=0") {
			t.Errorf("line %q, want %q... errors=0", l, want)
		}
	}
}

// checkStatusPage: the printed status page URL answers without a token,
// and shows the batches of the first cycle.
func checkStatusPage(t *testing.T, url string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `<tr class="batch">`) {
		t.Errorf("status page: %d\n%s", resp.StatusCode, body)
	}
}

// demoExplain is what the demo prints for explaining a device.
type demoExplain struct{ cfgFile, serial, tokenFile, url string }

func demoExplainLines(t *testing.T, out <-chan string) demoExplain {
	t.Helper()
	m := expectLine(t, out, `^  go run \./cmd/postured explain -c (\S+) --serial (\S+)$`)
	cfgFile, serial := m[1], m[2]
	m = expectLine(t, out, `^  curl -s -H "Cf-Access-Jwt-Assertion: \$\(cat (\S+)\)" "(http://\S+/v1/explain\?serial=(\S+))"$`)
	if m[3] != serial {
		t.Errorf("curl explains %q, the explain command %q", m[3], serial)
	}
	return demoExplain{cfgFile: cfgFile, serial: serial, tokenFile: m[1], url: m[2]}
}

// check runs both: the explain command's config loads with no environment
// and explains the serial with a match, and the curl with the demo's token
// gets the same JSON from the running postured.
func (e demoExplain) check(t *testing.T) {
	t.Helper()
	cfgFile, serial, tokenFile, explainURL := e.cfgFile, e.serial, e.tokenFile, e.url
	cfg, err := app.Load(cfgFile, app.Registry(), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("the printed config: %v", err)
	}
	a, err := app.Build(cfg, app.Registry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	a.SyncNow(t.Context())
	var cli bytes.Buffer
	if err := server.WriteExplanation(&cli, a.Explain(t.Context(), aggregate.Device{Serial: serial})); err != nil {
		t.Fatal(err)
	}

	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, explainURL, nil)
	req.Header.Set("Cf-Access-Jwt-Assertion", string(tok))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	api, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("curl: status %d: %s", resp.StatusCode, api)
	}
	if !bytes.Equal(api, cli.Bytes()) {
		t.Errorf("/v1/explain:\n%s\nexplain with the printed config:\n%s", api, cli.Bytes())
	}
	if !strings.Contains(string(api), `"outcome": "matched"`) {
		t.Errorf("the demo's serial matched no provider:\n%s", api)
	}
}

// TestPollExit: an answer Cloudflare would reject ends poll at once with
// an error naming it; failed requests do not, but fail a bounded run.
func TestPollExit(t *testing.T) {
	token := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "tok") }))
	defer token.Close()
	tests := []struct {
		name   string
		answer func(w http.ResponseWriter, ids []string)
		lines  int
		want   string
	}{
		{"score out of range", func(w http.ResponseWriter, ids []string) {
			res := map[string]any{}
			for _, id := range ids {
				res[id] = map[string]any{"s2s_id": "", "score": 101}
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"result": res})
		}, 1, "poll cycle 1: cfpoll: batch 1: invalid answer: device"},
		{"server down", func(w http.ResponseWriter, _ []string) {
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
		}, 3, "poll: 3 requests failed in 3 cycles"},
		{"good", func(w http.ResponseWriter, ids []string) {
			res := map[string]any{}
			for _, id := range ids {
				res[id] = map[string]any{"s2s_id": "", "score": 0}
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"result": res})
		}, 3, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var req struct {
					Devices []struct {
						ID string `json:"device_id"`
					} `json:"devices"`
				}
				if r.Header.Get("Cf-Access-Jwt-Assertion") != "tok" || json.NewDecoder(r.Body).Decode(&req) != nil {
					http.Error(w, "bad request", http.StatusBadRequest)
					return
				}
				var ids []string
				for _, d := range req.Devices {
					ids = append(ids, d.ID)
				}
				tc.answer(w, ids)
			}))
			defer srv.Close()
			var out bytes.Buffer
			err := run(t.Context(), []string{"poll", "--target", srv.URL, "--token-url", token.URL, "--devices", "50", "--cycles", "3"}, &out, io.Discard, eager)
			if (err == nil) != (tc.want == "") || (err != nil && !strings.HasPrefix(err.Error(), tc.want)) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
			if n := strings.Count(out.String(), "poll cycle "); n != tc.lines {
				t.Errorf("%d cycle lines, want %d:\n%s", n, tc.lines, out.String())
			}
		})
	}
}

func TestPollFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"poll"}, "--target is required"},
		{[]string{"poll", "--target", "http://x", "--interval", "0s"}, "--interval must be > 0"},
		{[]string{"poll", "--target", "http://x", "--batch", "1001"}, "batch size 1001"},
		{[]string{"--drift", "120"}, "--drift 120: must be a percentage"},
		{[]string{"demo", "--drift-interval", "0s"}, "--drift-interval must be > 0"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			err := run(t.Context(), tc.args, io.Discard, io.Discard, eager)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestCycleLine(t *testing.T) {
	tests := []struct {
		name string
		c    cfpoll.Cycle
		want string
	}{
		{"first cycle", cfpoll.Cycle{N: 1, Devices: 2000, Batches: 2, Duration: 1234567 * time.Microsecond,
			Latencies: []time.Duration{300 * time.Millisecond, 700 * time.Millisecond}, Histogram: [10]int{500, 0, 0, 0, 0, 700, 0, 0, 0, 800}},
			"poll cycle 1: devices=2000 batches=2 duration=1.235s slowest_batch=700ms scores=[0-9:500 10-19:0 20-29:0 30-39:0 40-49:0 50-59:700 60-69:0 70-79:0 80-89:0 90-100:800] changed=0 errors=0"},
		{"changes and an error", cfpoll.Cycle{N: 7, Devices: 10, Batches: 1, Latencies: []time.Duration{0},
			Changed: []string{"a", "b", "c", "d", "e"}, Errors: []error{errors.New("cfpoll: batch 1: status 503: down")}},
			"poll cycle 7: devices=10 batches=1 duration=0s slowest_batch=0s scores=[0-9:0 10-19:0 20-29:0 30-39:0 40-49:0 50-59:0 60-69:0 70-79:0 80-89:0 90-100:0] changed=5 (a b c +2 more) errors=1 (first: cfpoll: batch 1: status 503: down)"},
		{"few changes", cfpoll.Cycle{N: 2, Changed: []string{"x", "y"}},
			"poll cycle 2: devices=0 batches=0 duration=0s slowest_batch=0s scores=[0-9:0 10-19:0 20-29:0 30-39:0 40-49:0 50-59:0 60-69:0 70-79:0 80-89:0 90-100:0] changed=2 (x y) errors=0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := cycleLine(&tc.c); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// TestWaitReady: the poller asks once per tick until the URL answers 200,
// and gives up when stopped.
func TestWaitReady(t *testing.T) {
	tests := []struct {
		name     string
		notReady int // answers 503 this many times
		stopAt   int // cancels on this request (0: never)
		wantErr  bool
	}{
		{"ready at once", 0, 0, false},
		{"ready on the third ask", 2, 0, false},
		{"stopped while waiting", 1000, 4, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var mu sync.Mutex
			asked := 0
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				mu.Lock()
				defer mu.Unlock()
				asked++
				if asked == tc.stopAt {
					cancel()
				}
				if asked <= tc.notReady {
					w.WriteHeader(http.StatusServiceUnavailable)
				}
			}))
			defer srv.Close()
			err := waitReady(ctx, srv.URL, eager)
			mu.Lock()
			defer mu.Unlock()
			if (err != nil) != tc.wantErr {
				t.Errorf("err %v, want error %v", err, tc.wantErr)
			}
			if want := tc.notReady + 1; !tc.wantErr && asked != want {
				t.Errorf("asked %d times, want %d", asked, want)
			}
		})
	}
}

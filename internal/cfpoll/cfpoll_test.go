package cfpoll

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/postured/postured/internal/fleet"
)

// devices makes n Cloudflare devices with ids dev-0000...
func devices(n int) []fleet.CloudflareDevice {
	out := make([]fleet.CloudflareDevice, n)
	for i := range out {
		out[i] = fleet.CloudflareDevice{DeviceID: fmt.Sprintf("dev-%04d", i), SerialNumber: fmt.Sprintf("SER%04d", i)}
	}
	return out
}

// fakePosture is a posture endpoint under test control: it checks the
// request as postured would, then lets answer write the body for the
// batch it got.
type fakePosture struct {
	token  string
	answer func(w http.ResponseWriter, batch []fleet.CloudflareDevice)

	mu      sync.Mutex
	batches [][]fleet.CloudflareDevice
}

// sent is the batches received so far.
func (f *fakePosture) sent() [][]fleet.CloudflareDevice {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.batches)
}

func (f *fakePosture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "want a JSON POST", http.StatusBadRequest)
		return
	}
	if got := r.Header.Get("Cf-Access-Jwt-Assertion"); got != f.token {
		http.Error(w, `{"success":false,"error":"bad token"}`, http.StatusForbidden)
		return
	}
	var req struct {
		Devices []fleet.CloudflareDevice `json:"devices"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.batches = append(f.batches, req.Devices)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	f.answer(w, req.Devices)
}

// scoreAll answers every device with score(id) as a well-formed result.
func scoreAll(score func(id string) int) func(http.ResponseWriter, []fleet.CloudflareDevice) {
	return func(w http.ResponseWriter, batch []fleet.CloudflareDevice) {
		res := map[string]any{}
		for _, d := range batch {
			res[d.DeviceID] = map[string]any{"s2s_id": "ext-" + d.DeviceID, "score": score(d.DeviceID)}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"result": res})
	}
}

// raw answers a hand-written body built from the batch.
func raw(body func(batch []fleet.CloudflareDevice) string) func(http.ResponseWriter, []fleet.CloudflareDevice) {
	return func(w http.ResponseWriter, batch []fleet.CloudflareDevice) { fmt.Fprint(w, body(batch)) }
}

// entries renders well-formed entries for devices, score 50.
func entries(ds []fleet.CloudflareDevice) []string {
	var out []string
	for _, d := range ds {
		out = append(out, fmt.Sprintf(`%q:{"s2s_id":"x","score":50}`, d.DeviceID))
	}
	return out
}

func staticToken(tok string) TokenSource {
	return TokenFunc(func(context.Context) (string, error) { return tok, nil })
}

func newPoller(t *testing.T, target string, n, batch int) *Poller {
	t.Helper()
	p, err := New(Config{Target: target, Tokens: staticToken("tok"), Devices: devices(n), BatchSize: batch})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestInvalidAnswers: every answer Cloudflare's side of the protocol
// rejects fails its batch with an InvalidAnswerError that says what is
// wrong with which device.
func TestInvalidAnswers(t *testing.T) {
	tests := []struct {
		name   string
		answer func(http.ResponseWriter, []fleet.CloudflareDevice)
		want   string
	}{
		{"missing device", raw(func(b []fleet.CloudflareDevice) string {
			return `{"result":{` + strings.Join(entries(b[1:]), ",") + `}}`
		}), `device "dev-0000" missing from result`},
		{"duplicate device", raw(func(b []fleet.CloudflareDevice) string {
			e := entries(b)
			return `{"result":{` + strings.Join(append(e, e[2]), ",") + `}}`
		}), `device "dev-0002" appears more than once in result`},
		{"device not in the batch", raw(func(b []fleet.CloudflareDevice) string {
			return `{"result":{` + strings.Join(append(entries(b), `"stranger":{"s2s_id":"","score":1}`), ",") + `}}`
		}), `device "stranger" was not in the batch`},
		{"score 101", raw(func(b []fleet.CloudflareDevice) string {
			e := entries(b)
			e[1] = `"dev-0001":{"s2s_id":"x","score":101}`
			return `{"result":{` + strings.Join(e, ",") + `}}`
		}), `device "dev-0001": score 101 is out of range 0..100`},
		{"negative score", raw(func(b []fleet.CloudflareDevice) string {
			e := entries(b)
			e[1] = `"dev-0001":{"s2s_id":"x","score":-1}`
			return `{"result":{` + strings.Join(e, ",") + `}}`
		}), `device "dev-0001": score -1 is out of range 0..100`},
		{"float score", raw(func(b []fleet.CloudflareDevice) string {
			e := entries(b)
			e[3] = `"dev-0003":{"s2s_id":"x","score":99.5}`
			return `{"result":{` + strings.Join(e, ",") + `}}`
		}), `device "dev-0003": score 99.5 is not an integer`},
		{"score as a string", raw(func(b []fleet.CloudflareDevice) string {
			e := entries(b)
			e[3] = `"dev-0003":{"s2s_id":"x","score":"50"}`
			return `{"result":{` + strings.Join(e, ",") + `}}`
		}), `device "dev-0003": score "50" is not an integer`},
		{"numeric s2s_id", raw(func(b []fleet.CloudflareDevice) string {
			e := entries(b)
			e[0] = `"dev-0000":{"s2s_id":123,"score":50}`
			return `{"result":{` + strings.Join(e, ",") + `}}`
		}), `device "dev-0000": s2s_id 123 is not a string`},
		{"null s2s_id", raw(func(b []fleet.CloudflareDevice) string {
			e := entries(b)
			e[0] = `"dev-0000":{"s2s_id":null,"score":50}`
			return `{"result":{` + strings.Join(e, ",") + `}}`
		}), `device "dev-0000": s2s_id null is not a string`},
		{"extra field", raw(func(b []fleet.CloudflareDevice) string {
			e := entries(b)
			e[0] = `"dev-0000":{"s2s_id":"x","score":50,"reason":"ok"}`
			return `{"result":{` + strings.Join(e, ",") + `}}`
		}), `device "dev-0000": unexpected field "reason"`},
		{"extra top-level key", raw(func(b []fleet.CloudflareDevice) string {
			return `{"result":{` + strings.Join(entries(b), ",") + `},"success":true}`
		}), `unexpected top-level key "success"`},
		{"result is an array", raw(func([]fleet.CloudflareDevice) string { return `{"result":[]}` }), `result: want an object`},
		{"no result", raw(func([]fleet.CloudflareDevice) string { return `{}` }), `no "result" object`},
		{"not JSON", raw(func([]fleet.CloudflareDevice) string { return `<html>` }), `not a JSON answer object`},
		{"trailing data", raw(func(b []fleet.CloudflareDevice) string {
			return `{"result":{` + strings.Join(entries(b), ",") + `}} {}`
		}), `data after the answer object`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(&fakePosture{token: "tok", answer: tc.answer})
			defer srv.Close()
			c := newPoller(t, srv.URL, 5, 5).Poll(t.Context())
			var inv *InvalidAnswerError
			if !errors.As(c.Err(), &inv) {
				t.Fatalf("errors %v, want an InvalidAnswerError", c.Errors)
			}
			if inv.Batch != 1 || !strings.Contains(inv.Error(), tc.want) {
				t.Errorf("error %q (batch %d), want batch 1 and %q", inv, inv.Batch, tc.want)
			}
			if got := sum(c.Histogram); got != 0 {
				t.Errorf("histogram counts %d scores of a rejected batch", got)
			}
		})
	}
}

// TestInvalidAnswerCapsProblems: an answer wrong for every device names a
// few and counts the rest.
func TestInvalidAnswerCapsProblems(t *testing.T) {
	srv := httptest.NewServer(&fakePosture{token: "tok", answer: raw(func([]fleet.CloudflareDevice) string { return `{"result":{}}` })})
	defer srv.Close()
	c := newPoller(t, srv.URL, 20, 20).Poll(t.Context())
	var inv *InvalidAnswerError
	if !errors.As(c.Err(), &inv) {
		t.Fatalf("errors %v", c.Errors)
	}
	if len(inv.Problems) != maxProblems || inv.Total != 20 || !strings.HasSuffix(inv.Error(), "(and 15 more)") {
		t.Errorf("%d problems of %d: %q", len(inv.Problems), inv.Total, inv)
	}
}

func TestFailedBatches(t *testing.T) {
	tests := []struct {
		name  string
		token string
		want  string
	}{
		{"non-200", "other", "cfpoll: batch 1: status 403: " + `{"success":false,"error":"bad token"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(&fakePosture{token: tc.token, answer: scoreAll(func(string) int { return 1 })})
			defer srv.Close()
			c := newPoller(t, srv.URL, 3, 3).Poll(t.Context())
			var inv *InvalidAnswerError
			if len(c.Errors) != 1 || errors.As(c.Err(), &inv) || c.Errors[0].Error() != tc.want {
				t.Errorf("errors %v, want one plain error %q", c.Errors, tc.want)
			}
		})
	}
	t.Run("token failure sends nothing", func(t *testing.T) {
		fp := &fakePosture{token: "tok", answer: scoreAll(func(string) int { return 1 })}
		srv := httptest.NewServer(fp)
		defer srv.Close()
		p, err := New(Config{Target: srv.URL, Devices: devices(3),
			Tokens: TokenFunc(func(context.Context) (string, error) { return "", errors.New("issuer down") })})
		if err != nil {
			t.Fatal(err)
		}
		c := p.Poll(t.Context())
		if c.Err() == nil || !strings.Contains(c.Err().Error(), "issuer down") || len(fp.sent()) != 0 {
			t.Errorf("errors %v, %d batches sent", c.Errors, len(fp.sent()))
		}
	})
}

// TestGoodServer: a correct endpoint passes; every device is sent once,
// in batches of the configured size, and scored into its decile.
func TestGoodServer(t *testing.T) {
	fp := &fakePosture{token: "tok", answer: scoreAll(func(id string) int {
		var n int
		fmt.Sscanf(id, "dev-%d", &n)
		return n % 101
	})}
	srv := httptest.NewServer(fp)
	defer srv.Close()
	c := newPoller(t, srv.URL, 2500, 1000).Poll(t.Context())
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
	if c.N != 1 || c.Devices != 2500 || c.Batches != 3 || len(c.Latencies) != 3 || len(c.Changed) != 0 {
		t.Errorf("cycle %d: %d devices, %d batches, %d latencies, changed %q", c.N, c.Devices, c.Batches, len(c.Latencies), c.Changed)
	}
	var sizes []int
	sent := map[string]int{}
	for _, b := range fp.sent() {
		sizes = append(sizes, len(b))
		for _, d := range b {
			sent[d.DeviceID]++
		}
	}
	if !slices.Equal(sizes, []int{1000, 1000, 500}) || len(sent) != 2500 {
		t.Errorf("batch sizes %v, %d distinct devices", sizes, len(sent))
	}
	// Scores 0..100 cycle over the ids: 2500 = 24 full rounds of 101 plus
	// 0..75, so decile k has 24*10 (+10 while it is under 76) and 90..100
	// has 24*11.
	want := [10]int{250, 250, 250, 250, 250, 250, 250, 246, 240, 264}
	if c.Histogram != want {
		t.Errorf("histogram %v, want %v", c.Histogram, want)
	}
}

// TestChangedDevices: the second cycle reports exactly the devices whose
// score moved, and a batch that fails hides nothing it has not seen.
func TestChangedDevices(t *testing.T) {
	var mu sync.Mutex
	scores := map[string]int{}
	fail := false
	fp := &fakePosture{token: "tok"}
	fp.answer = func(w http.ResponseWriter, batch []fleet.CloudflareDevice) {
		mu.Lock()
		defer mu.Unlock()
		if fail && batch[0].DeviceID == "dev-0000" {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		scoreAll(func(id string) int { return scores[id] })(w, batch)
	}
	srv := httptest.NewServer(fp)
	defer srv.Close()
	p := newPoller(t, srv.URL, 30, 10)
	set := func(s map[string]int, failFirst bool) {
		mu.Lock()
		defer mu.Unlock()
		for k, v := range s {
			scores[k] = v
		}
		fail = failFirst
	}

	cycles := []struct {
		name      string
		scores    map[string]int
		failFirst bool
		changed   []string
	}{
		{"first cycle: nothing to compare with", nil, false, nil},
		{"three scores move", map[string]int{"dev-0021": 100, "dev-0003": 40, "dev-0012": 7}, false, []string{"dev-0003", "dev-0012", "dev-0021"}},
		{"no change", nil, false, nil},
		{"first batch fails: its change waits", map[string]int{"dev-0004": 90, "dev-0015": 1}, true, []string{"dev-0015"}},
		{"first batch back", nil, false, []string{"dev-0004"}},
	}
	for i, cy := range cycles {
		t.Run(cy.name, func(t *testing.T) {
			set(cy.scores, cy.failFirst)
			c := p.Poll(t.Context())
			if c.N != i+1 {
				t.Errorf("cycle number %d, want %d", c.N, i+1)
			}
			if cy.failFirst != (c.Err() != nil) {
				t.Errorf("errors %v", c.Errors)
			}
			if !slices.Equal(c.Changed, cy.changed) {
				t.Errorf("changed %q, want %q", c.Changed, cy.changed)
			}
		})
	}
}

// roundTripper serves requests with a handler in-process, so the test
// runs inside a synctest bubble.
type roundTripper struct{ h http.Handler }

func (rt roundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	rt.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// TestConcurrency: batches go out Concurrency at a time, never more, and
// one token serves the whole cycle.
func TestConcurrency(t *testing.T) {
	for _, conc := range []int{1, 3} {
		t.Run(fmt.Sprint(conc), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				release := make(chan struct{})
				var inFlight, peak atomic.Int32
				fp := &fakePosture{token: "tok"}
				fp.answer = func(w http.ResponseWriter, batch []fleet.CloudflareDevice) {
					n := inFlight.Add(1)
					for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
					}
					<-release
					inFlight.Add(-1)
					scoreAll(func(string) int { return 5 })(w, batch)
				}
				var mints atomic.Int32
				p, err := New(Config{Target: "http://posture.test/posture", Devices: devices(50), BatchSize: 10, Concurrency: conc,
					Client: &http.Client{Transport: roundTripper{fp}},
					Tokens: TokenFunc(func(context.Context) (string, error) { mints.Add(1); return "tok", nil })})
				if err != nil {
					t.Fatal(err)
				}
				done := make(chan Cycle)
				go func() { done <- p.Poll(context.Background()) }()
				for released := range 5 {
					synctest.Wait() // every sender that can start is blocked in the handler
					if got, want := inFlight.Load(), int32(min(conc, 5-released)); got != want {
						t.Errorf("after %d answers: %d batches in flight, want %d", released, got, want)
					}
					release <- struct{}{}
				}
				c := <-done
				if err := c.Err(); err != nil || c.Batches != 5 || sum(c.Histogram) != 50 {
					t.Errorf("cycle: %v, %d batches, %d scores", err, c.Batches, sum(c.Histogram))
				}
				if peak.Load() != int32(conc) || mints.Load() != 1 {
					t.Errorf("peak %d in flight (concurrency %d), %d tokens minted", peak.Load(), conc, mints.Load())
				}
			})
		})
	}
}

func TestURLToken(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/access/token" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, "token-%d\n", n.Add(1))
	}))
	defer srv.Close()
	tests := []struct {
		name, url, want, wantErr string
	}{
		{"fresh token each call", srv.URL + "/access/token", "token-1", ""},
		{"and again", srv.URL + "/access/token", "token-2", ""},
		{"not found", srv.URL + "/nope", "", "answered 404"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := URLToken(tc.url, nil).Token(t.Context())
			if got != tc.want || (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("token %q, %v; want %q, %q", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	ok := Config{Target: "http://x", Tokens: staticToken("t"), Devices: devices(2)}
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"no target", func(c *Config) { c.Target = "" }, "no target"},
		{"no tokens", func(c *Config) { c.Tokens = nil }, "no token source"},
		{"no devices", func(c *Config) { c.Devices = nil }, "no devices"},
		{"batch too large", func(c *Config) { c.BatchSize = 1001 }, "batch size 1001"},
		{"negative concurrency", func(c *Config) { c.Concurrency = -1 }, "concurrency -1"},
		{"repeated device", func(c *Config) { c.Devices = append(devices(2), devices(1)...) }, `"dev-0000" empty or repeated`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.change(&c)
			if _, err := New(c); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := New(ok); err != nil {
		t.Errorf("valid config: %v", err)
	}
}

func sum(h [10]int) int {
	n := 0
	for _, v := range h {
		n += v
	}
	return n
}

package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/server/access"
)

// echoEngine scores each device by the length of its serial, so tests can
// see which devices reached the engine.
type echoEngine struct {
	calls   atomic.Int64
	devices atomic.Int64
	// entered, if set, is told of each batch; the batch then waits for
	// release to be closed.
	entered chan struct{}
	release chan struct{}
	panic   bool
}

func (e *echoEngine) Evaluate(ctx context.Context, ds []aggregate.Device) ([]aggregate.Result, aggregate.Stats) {
	e.calls.Add(1)
	e.devices.Add(int64(len(ds)))
	if e.panic {
		panic("engine bug")
	}
	if e.entered != nil {
		e.entered <- struct{}{}
		<-e.release
	}
	out := make([]aggregate.Result, len(ds))
	for i, d := range ds {
		out[i] = aggregate.Result{DeviceID: d.ID, S2SID: "v-" + d.Serial, Score: len(d.Serial)}
	}
	return out, aggregate.Stats{Devices: len(ds)}
}

type testServer struct {
	*Server
	engine *echoEngine
	reg    *prometheus.Registry
	logs   *bytes.Buffer
}

func newInsecure(t *testing.T, mods ...func(*Config)) *testServer {
	t.Helper()
	eng := &echoEngine{}
	logs := &bytes.Buffer{}
	cfg := Config{
		Listen: "127.0.0.1:0", InsecureSkipVerify: true, MaxDevices: 5, Engine: eng,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Registry: prometheus.NewRegistry(),
		ShutdownTimeout: 5 * time.Second,
	}
	for _, m := range mods {
		m(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &testServer{Server: s, engine: eng, reg: cfg.Registry, logs: logs}
}

func (ts *testServer) do(method, path, body string, hdr ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	ts.Handler().ServeHTTP(w, req)
	return w
}

func devicesJSON(n int) string {
	var b strings.Builder
	b.WriteString(`{"devices":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"device_id":"d%d","serial_number":"S%d"}`, i, i)
	}
	b.WriteString(`]}`)
	return b.String()
}

func TestPostureBadInput(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		wantStatus int
		wantError  string
	}{
		{"syntax error", "POST", "/posture", `{"devices":[{"device_id":"a",}]}`, 400, "invalid JSON at byte 30: invalid character '}' looking for beginning of object key string"},
		{"truncated", "POST", "/posture", `{"devices":[{"device_id":"a"`, 400, "invalid JSON: body ends unexpectedly"},
		{"devices is an object", "POST", "/posture", `{"devices":{"device_id":"a"}}`, 400, "devices: expected an array, got JSON object"},
		{"docs typo body", "POST", "/", `{"devices": {[{"device_id":"a"}]}}`, 400, "invalid JSON at byte 14: invalid character '[' looking for beginning of object key string"},
		{"serial is a number", "POST", "/posture", `{"devices":[{"device_id":"a","serial_number":123}]}`, 400, "devices.serial_number: expected a string, got JSON number"},
		{"device_id is a number", "POST", "/posture", `{"devices":[{"device_id":7}]}`, 400, "devices.device_id: expected a string, got JSON number"},
		{"top level array", "POST", "/posture", `[{"device_id":"a"}]`, 400, "request body: expected an object, got JSON array"},
		{"missing device_id", "POST", "/posture", `{"devices":[{"device_id":"a"},{"serial_number":"X"}]}`, 400, "devices[1]: device_id is required"},
		{"blank device_id", "POST", "/posture", `{"devices":[{"device_id":"  "}]}`, 400, "devices[0]: device_id is required"},
		{"null device", "POST", "/posture", `{"devices":[null]}`, 400, "devices[0]: must be an object, got null"},
		{"trailing data", "POST", "/posture", `{"devices":[]} {"devices":[]}`, 400, "invalid JSON: unexpected data after the top-level object"},
		{"not json", "POST", "/posture", `hello`, 400, "invalid JSON at byte 1: invalid character 'h' looking for beginning of value"},
		{"too many devices", "POST", "/posture", devicesJSON(6), 413, "6 devices in one request, at most 5 allowed"},
		{"body over the limit", "POST", "/posture", `{"devices":[],"pad":"` + strings.Repeat("x", 5*2048+64<<10) + `"}`, 413, "request body larger than 75776 bytes"},
		{"GET", "GET", "/posture", ``, 405, "method not allowed"},
		{"PUT root", "PUT", "/", `{}`, 405, "method not allowed"},
		{"OPTIONS", "OPTIONS", "/posture", ``, 405, "method not allowed"},
		{"HEAD", "HEAD", "/", ``, 405, ""},
		{"unknown path", "POST", "/devices", `{}`, 404, "not found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newInsecure(t)
			w := ts.do(tc.method, tc.path, tc.body)
			if w.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.wantStatus, w.Body)
			}
			if tc.method != "HEAD" {
				var got struct {
					Success *bool  `json:"success"`
					Error   string `json:"error"`
				}
				if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || got.Success == nil || *got.Success {
					t.Fatalf("body %q is not a JSON error (%v)", w.Body, err)
				}
				if got.Error != tc.wantError {
					t.Errorf("error %q, want %q", got.Error, tc.wantError)
				}
				if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
					t.Errorf("content type %q", ct)
				}
			}
			if ts.engine.calls.Load() != 0 {
				t.Errorf("engine called for a rejected request")
			}
			if n := testutil.ToFloat64(ts.Server.metrics.panics); n != 0 {
				t.Errorf("%v panics", n)
			}
			if strings.Contains(w.Body.String(), "goroutine") || strings.Contains(ts.logs.String(), `"S1"`) {
				t.Errorf("stack or device data leaked: %s / %s", w.Body, ts.logs)
			}
		})
	}
}

func TestPostureAnswers(t *testing.T) {
	tests := []struct {
		name string
		body string
		want string
	}{
		{"empty body", ``, `{"result":{}}`},
		{"null", `null`, `{"result":{}}`},
		{"empty object", `{}`, `{"result":{}}`},
		{"null devices", `{"devices":null}`, `{"result":{}}`},
		{"empty list", `{"devices":[]}`, `{"result":{}}`},
		{"capital Devices", `{"Devices":[{"device_id":"a","serial_number":"XY"}]}`, `{"result":{"a":{"s2s_id":"v-XY","score":2}}}`},
		{"sparse and unknown fields", `{"devices":[{"device_id":"a","new_field":{"x":1}},{"device_id":"b","serial_number":"","mac_address":null}]}`,
			`{"result":{"a":{"s2s_id":"v-","score":0},"b":{"s2s_id":"v-","score":0}}}`},
		{"duplicate ids collapse", `{"devices":[{"device_id":"a","serial_number":"ONE"},{"device_id":"a","serial_number":"LONGER"}]}`,
			`{"result":{"a":{"s2s_id":"v-ONE","score":3}}}`},
		{"exactly max devices", devicesJSON(5), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newInsecure(t)
			for _, path := range []string{"/", "/posture"} {
				w := ts.do("POST", path, tc.body, "Content-Type", "application/json")
				if w.Code != 200 {
					t.Fatalf("%s: status %d: %s", path, w.Code, w.Body)
				}
				if tc.want != "" && w.Body.String() != tc.want {
					t.Errorf("%s: body %s, want %s", path, w.Body, tc.want)
				}
				var out struct {
					Result map[string]struct {
						S2SID *string `json:"s2s_id"`
						Score *int    `json:"score"`
					} `json:"result"`
				}
				if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || out.Result == nil {
					t.Fatalf("bad body %s", w.Body)
				}
				for id, r := range out.Result {
					if r.S2SID == nil || r.Score == nil || *r.Score < 0 || *r.Score > 100 {
						t.Errorf("%s: entry %s = %+v", path, id, r)
					}
				}
			}
		})
	}
}

func TestPanicIsA500WithoutStack(t *testing.T) {
	ts := newInsecure(t)
	ts.engine.panic = true
	w := ts.do("POST", "/posture", devicesJSON(1))
	if w.Code != 500 || w.Body.String() != `{"error":"internal error","success":false}` {
		t.Errorf("got %d %s", w.Code, w.Body)
	}
	if testutil.ToFloat64(ts.Server.metrics.panics) != 1 {
		t.Error("panic not counted")
	}
}

func TestOversizedContentLengthRefusedUnread(t *testing.T) {
	ts := newInsecure(t)
	var read atomic.Int64
	body := &countingReader{r: strings.NewReader(strings.Repeat(" ", 1<<20)), n: &read}
	req := httptest.NewRequest("POST", "/posture", body)
	req.ContentLength = 1 << 20
	w := httptest.NewRecorder()
	ts.Handler().ServeHTTP(w, req)
	if w.Code != 413 || read.Load() != 0 {
		t.Errorf("status %d after reading %d bytes", w.Code, read.Load())
	}
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func TestInsecureOnlyOnLoopback(t *testing.T) {
	for _, listen := range []string{":8080", "0.0.0.0:8080", "10.0.0.5:80", "[::]:80", "example.com:80"} {
		_, err := New(Config{Listen: listen, InsecureSkipVerify: true, MaxDevices: 1, Engine: &echoEngine{}})
		if err == nil || !strings.Contains(err.Error(), "only allowed when listen is a loopback address") {
			t.Errorf("%s: err = %v", listen, err)
		}
	}
	for _, listen := range []string{"127.0.0.1:8080", "[::1]:80", "localhost:9"} {
		if _, err := New(Config{Listen: listen, InsecureSkipVerify: true, MaxDevices: 1, Engine: &echoEngine{}}); err != nil {
			t.Errorf("%s: %v", listen, err)
		}
	}
}

// TestAccessNeedsKeys: with token checks on, the key set is the caller's
// (built once, shared with External Evaluation); without it New refuses.
func TestAccessNeedsKeys(t *testing.T) {
	cfg := access.Config{TeamDomain: "team.cloudflareaccess.com", Audiences: []string{"aud"}}
	keys, err := access.NewKeySet(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		keys *access.KeySet
		err  string
	}{
		{"keys given", keys, ""},
		{"no keys", nil, "Keys is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Config{Listen: ":8080", Access: cfg, Keys: tc.keys, MaxDevices: 1, Engine: &echoEngine{}})
			if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("err %v, want %q", err, tc.err)
			}
		})
	}
}

func TestRequestIDAndLogsCarryNoBody(t *testing.T) {
	ts := newInsecure(t)
	w := ts.do("POST", "/posture", `{"devices":[{"device_id":"a","serial_number":"SECRETSERIAL","email":"jdoe@example.com"}]}`,
		"X-Request-Id", "abc-123")
	if w.Header().Get("X-Request-Id") != "abc-123" {
		t.Errorf("request id %q", w.Header().Get("X-Request-Id"))
	}
	logs := ts.logs.String()
	if !strings.Contains(logs, `"request_id":"abc-123"`) || !strings.Contains(logs, `"msg":"posture batch"`) {
		t.Errorf("logs lack the request id or batch line: %s", logs)
	}
	if strings.Contains(logs, "SECRETSERIAL") || strings.Contains(logs, "jdoe@") {
		t.Errorf("logs carry device data: %s", logs)
	}
	w = ts.do("POST", "/posture", `{}`, "X-Request-Id", "bad id\nwith newline")
	if id := w.Header().Get("X-Request-Id"); len(id) != 16 {
		t.Errorf("unsafe request id echoed: %q", id)
	}
}

type fixedStatus aggregate.Status

func (f fixedStatus) Status() aggregate.Status { return aggregate.Status(f) }

func TestReadiness(t *testing.T) {
	ready := fixedStatus{Ready: true, Records: 3, LastSuccess: time.Now()}
	ts := newInsecure(t, func(c *Config) { c.Statuses = map[string]aggregate.StatusReporter{"inv": ready} })
	if w := ts.do("GET", "/readyz", ""); w.Code != 200 || !strings.Contains(w.Body.String(), `"last_success"`) || strings.Contains(w.Body.String(), "records") {
		t.Errorf("ready: %d %s", w.Code, w.Body)
	}
	ts = newInsecure(t, func(c *Config) {
		c.Statuses = map[string]aggregate.StatusReporter{"inv": fixedStatus{LastError: "static: inventory.yaml: line 3: bad"}}
	})
	if w := ts.do("GET", "/readyz", ""); w.Code != 503 || !strings.Contains(w.Body.String(), `"inv":{"error":"last load failed","ready":false}`) {
		t.Errorf("not ready: %d %s", w.Code, w.Body)
	}
	if w := ts.do("GET", "/healthz", ""); w.Code != 200 {
		t.Errorf("healthz %d", w.Code)
	}
	// A replica crawling alone because Redis is down is still ready, and
	// says why it does not share.
	ts = newInsecure(t, func(c *Config) {
		c.Statuses = map[string]aggregate.StatusReporter{"jamf": fixedStatus{Ready: true, Crawl: "local (redis unavailable)"}}
	})
	if w := ts.do("GET", "/readyz", ""); w.Code != 200 || !strings.Contains(w.Body.String(), `"jamf":{"crawl":"local (redis unavailable)","ready":true,"shared":false}`) {
		t.Errorf("crawling alone: %d %s", w.Code, w.Body)
	}
}

// closeNotifier is a listener that says when it is closed: the first thing
// a graceful shutdown does.
type closeNotifier struct {
	net.Listener
	once   sync.Once
	closed chan struct{}
}

func (l *closeNotifier) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

func TestGracefulShutdownFinishesInFlightBatch(t *testing.T) {
	ts := newInsecure(t)
	ts.engine.entered, ts.engine.release = make(chan struct{}, 1), make(chan struct{})
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &closeNotifier{Listener: inner, closed: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ts.Run(ctx, ln) }()
	type reply struct {
		code int
		body string
		err  error
	}
	got := make(chan reply, 1)
	go func() {
		resp, err := http.Post("http://"+ln.Addr().String()+"/posture", "application/json", strings.NewReader(devicesJSON(2)))
		if err != nil {
			got <- reply{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- reply{code: resp.StatusCode, body: string(b)}
	}()
	<-ts.engine.entered // the batch is being scored
	cancel()            // SIGTERM
	<-ln.closed         // shutdown has begun: no new connections
	close(ts.engine.release)
	r := <-got
	if r.err != nil || r.code != 200 || !strings.Contains(r.body, `"d1":{"s2s_id":"v-S1","score":2}`) {
		t.Errorf("in-flight batch: %+v", r)
	}
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/healthz"); err == nil {
		t.Error("server still accepting after shutdown")
	}
}

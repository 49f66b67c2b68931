package providers

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/postured/postured/internal/conf"
)

// reply is one scripted vendor answer.
type reply struct {
	status int // 0 means 200
	header map[string]string
	body   string
}

// seen is what the fake vendor received.
type seen struct {
	method, path, query, auth, accept, contentType, custom string
	body                                                   []byte
}

// vendor is an httptest handler answering from a script; the last reply
// repeats.
type vendor struct {
	mu      sync.Mutex
	replies []reply
	reqs    []seen
	// byToken, if set, picks the reply from the bearer token instead.
	byToken map[string]reply
}

func (v *vendor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	v.mu.Lock()
	s := seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization"), r.Header.Get("Accept"),
		r.Header.Get("Content-Type"), r.Header.Get("X-Custom"), b}
	v.reqs = append(v.reqs, s)
	var rep reply
	if v.byToken != nil {
		rep = v.byToken[strings.TrimPrefix(s.auth, "Bearer ")]
		if rep.status == 0 && rep.body == "" {
			rep = reply{status: http.StatusUnauthorized, body: `{"error":"invalid token"}`}
		}
	} else {
		rep = v.replies[min(len(v.reqs)-1, len(v.replies)-1)]
	}
	v.mu.Unlock()
	for k, val := range rep.header {
		w.Header().Set(k, val)
	}
	if rep.status == 0 {
		rep.status = http.StatusOK
	}
	w.WriteHeader(rep.status)
	io.WriteString(w, rep.body)
}

func (v *vendor) hits() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.reqs)
}

func (v *vendor) requests() []seen {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.reqs)
}

func startVendor(t *testing.T, replies ...reply) (*vendor, *httptest.Server) {
	t.Helper()
	v := &vendor{replies: replies}
	srv := httptest.NewServer(v)
	t.Cleanup(srv.Close)
	return v, srv
}

// fastHTTP is a valid HTTPConfig that keeps tests quick: tiny backoff, a
// 1s cap on waits, an ample budget.
func fastHTTP() HTTPConfig {
	return HTTPConfig{
		MaxConcurrency:    4,
		RequestsPerSecond: 10000,
		Burst:             1000,
		RetryMax:          3,
		RetryWaitMin:      conf.Duration(time.Millisecond),
		RetryWaitMax:      conf.Duration(time.Second),
		RequestTimeout:    conf.Duration(5 * time.Second),
	}
}

// retryLog records OnRetry calls.
type retryLog struct {
	mu       sync.Mutex
	statuses []int
	waits    []time.Duration
}

func (r *retryLog) on(status int, wait time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.statuses = append(r.statuses, status)
	r.waits = append(r.waits, wait)
}

func (r *retryLog) get() ([]int, []time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.statuses), slices.Clone(r.waits)
}

func newClient(t *testing.T, opts ClientOptions) *Client {
	t.Helper()
	if opts.Provider == "" {
		opts.Provider = "vendorx"
	}
	c, err := NewClient(opts)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c
}

const (
	secretQuery = "SECRETQ-C02XK1ZZJGH5"
	bearerValue = "tok-SECRET-BEARER"
)

func TestNewClientRejectsInvalidHTTP(t *testing.T) {
	h := fastHTTP()
	h.MaxConcurrency = 0
	_, err := NewClient(ClientOptions{Provider: "jamf", HTTP: h})
	if err == nil || !strings.HasPrefix(err.Error(), "jamf: http: max_concurrency") {
		t.Fatalf("NewClient = %v", err)
	}
}

func TestClientRetries(t *testing.T) {
	r500 := reply{status: 500, body: "boom"}
	tests := []struct {
		name        string
		retryMax    int
		replies     []reply
		wantHits    int
		wantStatus  int // of the returned response
		wantErr     string
		wantRetries []int // statuses OnRetry saw
	}{
		{"success first time", 3, []reply{{body: `{}`}}, 1, 200, "", nil},
		{"5xx then success", 3, []reply{r500, {status: 502}, {body: `{}`}}, 3, 200, "", []int{500, 502}},
		{"503 without Retry-After is retried", 3, []reply{{status: 503}, {body: `{}`}}, 2, 200, "", []int{503}},
		{"429 without Retry-After is retried", 3, []reply{{status: 429}, {body: `{}`}}, 2, 200, "", []int{429}},
		{"5xx exhaustion", 2, []reply{r500}, 3, 500, "vendorx: list devices: status 500: boom", []int{500, 500}},
		{"no retries configured", 0, []reply{r500}, 1, 500, "vendorx: list devices: status 500: boom", nil},
		{"429 exhaustion without Retry-After", 1, []reply{{status: 429, body: "slow down"}}, 2, 429, "vendorx: list devices: status 429: slow down", []int{429}},
		{"501 is not retried", 3, []reply{{status: 501}}, 1, 501, "vendorx: list devices: status 501", nil},
		{"404 is not retried", 3, []reply{{status: 404, body: " not found \n"}}, 1, 404, "vendorx: list devices: status 404: not found", nil},
		{"400 is not retried", 3, []reply{{status: 400}}, 1, 400, "vendorx: list devices: status 400", nil},
		{"403 is not retried", 3, []reply{{status: 403}}, 1, 403, "vendorx: list devices: status 403", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, srv := startVendor(t, tc.replies...)
			var rl, observed retryLog
			h := fastHTTP()
			h.RetryMax = tc.retryMax
			c := newClient(t, ClientOptions{HTTP: h, OnRetry: rl.on, ObserveResponse: func(s int) { observed.on(s, 0) }})
			resp, err := c.Do(t.Context(), "list devices", Request{Method: http.MethodGet, URL: srv.URL + "/devices"})
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Do = %v", err)
				}
			} else {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("Do error = %v, want prefix %q", err, tc.wantErr)
				}
				var se *StatusError
				if !errors.As(err, &se) || se.Status != tc.wantStatus {
					t.Fatalf("error %v is not a *StatusError with status %d", err, tc.wantStatus)
				}
			}
			if resp == nil || resp.Status != tc.wantStatus {
				t.Fatalf("resp = %+v, want status %d", resp, tc.wantStatus)
			}
			if got := v.hits(); got != tc.wantHits {
				t.Errorf("vendor hits = %d, want %d", got, tc.wantHits)
			}
			if statuses, _ := rl.get(); !slices.Equal(statuses, tc.wantRetries) {
				t.Errorf("OnRetry statuses = %v, want %v", statuses, tc.wantRetries)
			}
			// Every attempt is observed: the retried ones and the last.
			if got, want := first(observed.get()), append(slices.Clone(tc.wantRetries), tc.wantStatus); !slices.Equal(got, want) {
				t.Errorf("ObserveResponse statuses = %v, want %v", got, want)
			}
		})
	}
}

func first[A, B any](a A, _ B) A { return a }

// TestClientObservesUnreachableVendor: an attempt that reached no vendor
// is observed as status 0, one per attempt.
func TestClientObservesUnreachableVendor(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	var observed retryLog
	h := fastHTTP()
	h.RetryMax = 1
	c := newClient(t, ClientOptions{HTTP: h, ObserveResponse: func(s int) { observed.on(s, 0) }})
	if _, err := c.Do(t.Context(), "list devices", Request{Method: http.MethodGet, URL: srv.URL + "/devices"}); err == nil {
		t.Fatal("Do succeeded against a closed server")
	}
	if got := first(observed.get()); !slices.Equal(got, []int{0, 0}) {
		t.Errorf("ObserveResponse statuses = %v, want [0 0]", got)
	}
}

func TestClientRetryAfter(t *testing.T) {
	farDate := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name       string
		waitMax    time.Duration
		retryMax   int
		replies    []reply
		retryAfter func(*http.Response) (time.Duration, bool)
		wantHits   int
		wantWaits  []time.Duration
		wantOK     bool
		// For a *RateLimitedError: its RetryAfter lies in [rlMin, rlMax].
		rlMin, rlMax time.Duration
	}{
		{
			name:    "429 short Retry-After is waited exactly",
			waitMax: time.Second, retryMax: 3,
			replies:   []reply{{status: 429, header: map[string]string{"Retry-After": "0.05"}}, {body: "{}"}},
			wantHits:  2,
			wantWaits: []time.Duration{50 * time.Millisecond},
			wantOK:    true,
		},
		{
			name:    "503 short fractional Retry-After is waited exactly",
			waitMax: time.Second, retryMax: 3,
			replies:   []reply{{status: 503, header: map[string]string{"Retry-After": "0.125"}}, {body: "{}"}},
			wantHits:  2,
			wantWaits: []time.Duration{125 * time.Millisecond},
			wantOK:    true,
		},
		{
			name:    "integer seconds Retry-After equal to the cap is waited",
			waitMax: time.Second, retryMax: 3,
			replies:   []reply{{status: 429, header: map[string]string{"Retry-After": "1"}}, {body: "{}"}},
			wantHits:  2,
			wantWaits: []time.Duration{time.Second},
			wantOK:    true,
		},
		{
			name:    "Retry-After zero retries at once",
			waitMax: time.Second, retryMax: 3,
			replies:   []reply{{status: 429, header: map[string]string{"Retry-After": "0"}}, {body: "{}"}},
			wantHits:  2,
			wantWaits: []time.Duration{0},
			wantOK:    true,
		},
		{
			name:    "429 long Retry-After is not waited",
			waitMax: time.Second, retryMax: 3,
			replies:  []reply{{status: 429, header: map[string]string{"Retry-After": "120"}}},
			wantHits: 1,
			rlMin:    120 * time.Second, rlMax: 120 * time.Second,
		},
		{
			name:    "429 just above the cap is not waited",
			waitMax: time.Second, retryMax: 3,
			replies:  []reply{{status: 429, header: map[string]string{"Retry-After": "1.5"}}},
			wantHits: 1,
			rlMin:    1500 * time.Millisecond, rlMax: 1500 * time.Millisecond,
		},
		{
			name:    "503 long Retry-After is not waited",
			waitMax: time.Second, retryMax: 3,
			replies:  []reply{{status: 503, header: map[string]string{"Retry-After": "3600"}}},
			wantHits: 1,
			rlMin:    time.Hour, rlMax: time.Hour,
		},
		{
			name:    "HTTP-date Retry-After beyond the cap is not waited",
			waitMax: time.Second, retryMax: 3,
			replies:  []reply{{status: 429, header: map[string]string{"Retry-After": farDate}}},
			wantHits: 1,
			rlMin:    60 * time.Second, rlMax: 91 * time.Second,
		},
		{
			name:    "short Retry-After that persists ends as RateLimitedError",
			waitMax: time.Second, retryMax: 2,
			replies:   []reply{{status: 429, header: map[string]string{"Retry-After": "0.01"}}},
			wantHits:  3,
			wantWaits: []time.Duration{10 * time.Millisecond, 10 * time.Millisecond},
			rlMin:     10 * time.Millisecond, rlMax: 10 * time.Millisecond,
		},
		{
			name:    "vendor-specific signal (epoch header) via ClientOptions.RetryAfter",
			waitMax: time.Second, retryMax: 3,
			replies: []reply{{status: 429, header: map[string]string{
				"X-RateLimit-RetryAfter": strconv.FormatInt(time.Now().Add(2*time.Minute).Unix(), 10)}}},
			retryAfter: func(r *http.Response) (time.Duration, bool) {
				sec, err := strconv.ParseInt(r.Header.Get("X-RateLimit-RetryAfter"), 10, 64)
				if err != nil {
					return 0, false
				}
				return time.Until(time.Unix(sec, 0)), true
			},
			wantHits: 1,
			rlMin:    100 * time.Second, rlMax: 121 * time.Second,
		},
		{
			name:    "custom RetryAfter ignores standard header",
			waitMax: time.Second, retryMax: 1,
			replies:    []reply{{status: 429, header: map[string]string{"Retry-After": "3600"}}, {body: "{}"}},
			retryAfter: func(*http.Response) (time.Duration, bool) { return 0, false },
			wantHits:   2,
			wantOK:     true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // some cases really wait up to 1s
			v, srv := startVendor(t, tc.replies...)
			var rl retryLog
			h := fastHTTP()
			h.RetryWaitMax = conf.Duration(tc.waitMax)
			h.RetryMax = tc.retryMax
			c := newClient(t, ClientOptions{HTTP: h, OnRetry: rl.on, RetryAfter: tc.retryAfter})
			start := time.Now()
			resp, err := c.Do(t.Context(), "search", Request{Method: http.MethodGet, URL: srv.URL + "/q"})
			elapsed := time.Since(start)
			if got := v.hits(); got != tc.wantHits {
				t.Errorf("vendor hits = %d, want %d", got, tc.wantHits)
			}
			_, waits := rl.get()
			if tc.wantWaits != nil && !slices.Equal(waits, tc.wantWaits) {
				t.Errorf("OnRetry waits = %v, want %v", waits, tc.wantWaits)
			}
			var total time.Duration
			for _, w := range tc.wantWaits {
				total += w
			}
			if elapsed < total {
				t.Errorf("Do returned after %v, before the %v it had to wait", elapsed, total)
			}
			if tc.wantOK {
				if err != nil || resp.Status != 200 {
					t.Fatalf("Do = %+v, %v", resp, err)
				}
				return
			}
			var rle *RateLimitedError
			if !errors.As(err, &rle) {
				t.Fatalf("Do error = %v, want *RateLimitedError", err)
			}
			if rle.RetryAfter < tc.rlMin || rle.RetryAfter > tc.rlMax {
				t.Errorf("RetryAfter = %v, want in [%v, %v]", rle.RetryAfter, tc.rlMin, tc.rlMax)
			}
			if !strings.HasPrefix(err.Error(), "vendorx: search: rate limited by vendor, retry after ") {
				t.Errorf("error text = %q", err)
			}
			if resp == nil || (resp.Status != 429 && resp.Status != 503) {
				t.Errorf("resp = %+v, want the 429/503 answer", resp)
			}
			if tc.wantWaits == nil && len(waits) != 0 {
				t.Errorf("waited %v before reporting a long rate limit", waits)
			}
		})
	}
}

func TestStandardRetryAfter(t *testing.T) {
	tests := []struct {
		name   string
		header string
		want   time.Duration
		ok     bool
	}{
		{"absent", "", 0, false},
		{"seconds", "5", 5 * time.Second, true},
		{"padded", " 5 ", 5 * time.Second, true},
		{"zero", "0", 0, true},
		{"fraction", "0.5", 500 * time.Millisecond, true},
		{"graph fraction", "2.25", 2250 * time.Millisecond, true},
		{"capped at a day", "100000000", 24 * time.Hour, true},
		{"negative", "-1", 0, false},
		{"NaN", "NaN", 0, false},
		{"Inf", "+Inf", 0, false},
		{"garbage", "soon", 0, false},
		{"past date", time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat), 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := StandardRetryAfter(&http.Response{Header: http.Header{"Retry-After": {tc.header}}})
			if got != tc.want || ok != tc.ok {
				t.Fatalf("StandardRetryAfter(%q) = %v, %v; want %v, %v", tc.header, got, ok, tc.want, tc.ok)
			}
		})
	}
	t.Run("future date", func(t *testing.T) {
		h := time.Now().Add(time.Minute).UTC().Format(http.TimeFormat)
		got, ok := StandardRetryAfter(&http.Response{Header: http.Header{"Retry-After": {h}}})
		if !ok || got <= 50*time.Second || got > time.Minute {
			t.Fatalf("StandardRetryAfter(%q) = %v, %v", h, got, ok)
		}
	})
}

func TestStandardRetryAfterMillisecondPrecision(t *testing.T) {
	for ms := 1; ms < 3000; ms++ {
		v := strconv.Itoa(ms/1000) + "." + strconv.Itoa(1000 + ms%1000)[1:]
		got, ok := StandardRetryAfter(&http.Response{Header: http.Header{"Retry-After": {v}}})
		if want := time.Duration(ms) * time.Millisecond; !ok || got != want {
			t.Fatalf("StandardRetryAfter(%q) = %v, %v; want %v", v, got, ok, want)
		}
	}
}

// tokenSourceFrom returns a TokenSource that hands out the given values in
// turn (the last repeats) and counts fetches.
func tokenSourceFrom(values ...string) (*TokenSource, *atomic.Int32) {
	var n atomic.Int32
	ts := NewTokenSource(func(context.Context) (Token, error) {
		i := int(n.Add(1)) - 1
		return Token{Value: values[min(i, len(values)-1)], Expiry: time.Now().Add(time.Hour)}, nil
	}, time.Minute)
	return ts, &n
}

func TestClientUnauthorized(t *testing.T) {
	ok := reply{body: `{"ok":true}`}
	tests := []struct {
		name        string
		tokens      []string // nil: no TokenSource
		byToken     map[string]reply
		replies     []reply
		wantHits    int
		wantFetches int32
		wantAuth    []string
		wantStatus  int
	}{
		{
			name:   "revoked token is refetched once and the call retried",
			tokens: []string{"t1", "t2"}, byToken: map[string]reply{"t2": ok},
			wantHits: 2, wantFetches: 2, wantAuth: []string{"Bearer t1", "Bearer t2"}, wantStatus: 200,
		},
		{
			name:   "persistent 401 refetches exactly once",
			tokens: []string{"t1", "t2", "t3"}, byToken: map[string]reply{},
			wantHits: 2, wantFetches: 2, wantAuth: []string{"Bearer t1", "Bearer t2"}, wantStatus: 401,
		},
		{
			name:   "valid token fetched once",
			tokens: []string{"t1"}, byToken: map[string]reply{"t1": ok},
			wantHits: 1, wantFetches: 1, wantAuth: []string{"Bearer t1"}, wantStatus: 200,
		},
		{
			name:   "403 does not invalidate",
			tokens: []string{"t1", "t2"}, byToken: map[string]reply{"t1": {status: 403}},
			wantHits: 1, wantFetches: 1, wantAuth: []string{"Bearer t1"}, wantStatus: 403,
		},
		{
			name:     "401 without a TokenSource is not retried",
			replies:  []reply{{status: 401}},
			wantHits: 1, wantAuth: []string{""}, wantStatus: 401,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := &vendor{replies: tc.replies, byToken: tc.byToken}
			srv := httptest.NewServer(v)
			defer srv.Close()
			opts := ClientOptions{HTTP: fastHTTP()}
			var fetches *atomic.Int32
			if tc.tokens != nil {
				opts.Token, fetches = tokenSourceFrom(tc.tokens...)
			}
			c := newClient(t, opts)
			resp, err := c.Do(t.Context(), "get", Request{Method: http.MethodGet, URL: srv.URL + "/x"})
			if resp == nil || resp.Status != tc.wantStatus {
				t.Fatalf("Do = %+v, %v; want status %d", resp, err, tc.wantStatus)
			}
			if tc.wantStatus == 200 && err != nil {
				t.Fatalf("Do error = %v", err)
			}
			if tc.wantStatus != 200 {
				var se *StatusError
				if !errors.As(err, &se) || se.Status != tc.wantStatus {
					t.Fatalf("Do error = %v, want *StatusError %d", err, tc.wantStatus)
				}
			}
			if got := v.hits(); got != tc.wantHits {
				t.Errorf("vendor hits = %d, want %d", got, tc.wantHits)
			}
			if fetches != nil && fetches.Load() != tc.wantFetches {
				t.Errorf("token fetches = %d, want %d", fetches.Load(), tc.wantFetches)
			}
			var auth []string
			for _, r := range v.requests() {
				auth = append(auth, r.auth)
			}
			if !slices.Equal(auth, tc.wantAuth) {
				t.Errorf("Authorization headers = %q, want %q", auth, tc.wantAuth)
			}
		})
	}

	t.Run("refetch failure is reported", func(t *testing.T) {
		v := &vendor{byToken: map[string]reply{}}
		srv := httptest.NewServer(v)
		defer srv.Close()
		var n atomic.Int32
		ts := NewTokenSource(func(context.Context) (Token, error) {
			if n.Add(1) == 1 {
				return Token{Value: "t1"}, nil
			}
			return Token{}, errors.New("idp unreachable")
		}, 0)
		c := newClient(t, ClientOptions{Provider: "intune", HTTP: fastHTTP(), Token: ts})
		_, err := c.Do(t.Context(), "list", Request{Method: http.MethodGet, URL: srv.URL})
		if err == nil || !strings.HasPrefix(err.Error(), "intune: list: fetch token: idp unreachable") {
			t.Fatalf("Do error = %v", err)
		}
		if v.hits() != 1 || n.Load() != 2 {
			t.Fatalf("hits = %d, fetches = %d", v.hits(), n.Load())
		}
	})

	t.Run("initial token failure makes no vendor call", func(t *testing.T) {
		v, srv := startVendor(t, ok)
		ts := NewTokenSource(func(context.Context) (Token, error) { return Token{}, errors.New("bad credentials") }, 0)
		c := newClient(t, ClientOptions{Provider: "jamf", HTTP: fastHTTP(), Token: ts})
		_, err := c.Do(t.Context(), "list", Request{Method: http.MethodGet, URL: srv.URL})
		if err == nil || !strings.HasPrefix(err.Error(), "jamf: list: fetch token: bad credentials") || v.hits() != 0 {
			t.Fatalf("Do error = %v, hits = %d", err, v.hits())
		}
	})
}

func TestClientRetryRefreshesToken(t *testing.T) {
	// The first token is already expired when the retry is prepared: the
	// retry must carry a fresh one.
	var n atomic.Int32
	ts := NewTokenSource(func(context.Context) (Token, error) {
		i := n.Add(1)
		return Token{Value: "t" + strconv.Itoa(int(i)), Expiry: time.Now().Add(-time.Second + time.Duration(i-1)*time.Hour)}, nil
	}, 0)
	v, srv := startVendor(t, reply{status: 500}, reply{body: "{}"})
	c := newClient(t, ClientOptions{HTTP: fastHTTP(), Token: ts})
	if _, err := c.Do(t.Context(), "get", Request{Method: http.MethodGet, URL: srv.URL}); err != nil {
		t.Fatal(err)
	}
	reqs := v.requests()
	if len(reqs) != 2 || reqs[0].auth != "Bearer t1" || reqs[1].auth != "Bearer t2" {
		t.Fatalf("requests = %+v", reqs)
	}
}

func TestClientRetryTokenFailureIsReported(t *testing.T) {
	var n atomic.Int32
	ts := NewTokenSource(func(context.Context) (Token, error) {
		if n.Add(1) == 1 {
			return Token{Value: "t1", Expiry: time.Now().Add(-time.Second)}, nil // expired by the retry
		}
		return Token{}, errors.New("idp unreachable")
	}, 0)
	_, srv := startVendor(t, reply{status: 500, body: "boom"})
	c := newClient(t, ClientOptions{Provider: "p", HTTP: fastHTTP(), Token: ts})
	_, err := c.Do(t.Context(), "get", Request{Method: http.MethodGet, URL: srv.URL})
	if err == nil || !strings.Contains(err.Error(), "idp unreachable") {
		t.Fatalf("Do error = %v, want the token fetch failure", err)
	}
}

// heldTransport stands in for the network in a synctest bubble: every
// request is held until release is closed (or its context ends), and the
// requests in flight are counted.
type heldTransport struct {
	release               chan struct{}
	hits                  atomic.Int32
	inFlight, maxInFlight atomic.Int32
}

func (h *heldTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	h.hits.Add(1)
	n := h.inFlight.Add(1)
	defer h.inFlight.Add(-1)
	for {
		m := h.maxInFlight.Load()
		if n <= m || h.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	select {
	case <-h.release:
	case <-r.Context().Done():
		return nil, r.Context().Err()
	}
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("{}")), Request: r}, nil
}

// newHeldClient is a Client whose requests go to a heldTransport instead
// of the network.
func newHeldClient(t *testing.T, opts ClientOptions) (*Client, *heldTransport) {
	t.Helper()
	c := newClient(t, opts)
	h := &heldTransport{release: make(chan struct{})}
	c.rc.HTTPClient.Transport.(*budgetTransport).next = h
	return c, h
}

func TestClientConcurrencyLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const limit = 3
		h := fastHTTP()
		h.MaxConcurrency = limit
		c, vendor := newHeldClient(t, ClientOptions{HTTP: h})
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				if _, err := c.Do(t.Context(), "get", Request{Method: http.MethodGet, URL: "https://vendor.example/api"}); err != nil {
					t.Errorf("Do: %v", err)
				}
			})
		}
		// Every caller is now either at the vendor or queued for a slot.
		synctest.Wait()
		if n := vendor.inFlight.Load(); n != limit {
			t.Fatalf("%d requests in flight with 20 callers, want the limit %d", n, limit)
		}
		close(vendor.release)
		wg.Wait()
		if m, n := vendor.maxInFlight.Load(), vendor.hits.Load(); m != limit || n != 20 {
			t.Fatalf("max in flight %d (limit %d), %d requests (want 20)", m, limit, n)
		}
	})
}

func TestClientConcurrencyWaitHonoursContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := fastHTTP()
		h.MaxConcurrency = 1
		c, vendor := newHeldClient(t, ClientOptions{Provider: "p", HTTP: h})
		first := make(chan error, 1)
		go func() {
			_, err := c.Do(t.Context(), "slow", Request{Method: http.MethodGet, URL: "https://vendor.example/slow"})
			first <- err
		}()
		synctest.Wait() // the first call holds the only slot
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		_, err := c.Do(ctx, "queued", Request{Method: http.MethodGet, URL: "https://vendor.example/queued"})
		if !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "p: queued: ") {
			t.Fatalf("Do error = %v, want the ctx error wrapped", err)
		}
		if n := vendor.hits.Load(); n != 1 {
			t.Fatalf("%d requests reached the vendor, want only the first", n)
		}
		close(vendor.release)
		if err := <-first; err != nil {
			t.Fatalf("first call: %v", err)
		}
	})
}

func TestSleep(t *testing.T) {
	tests := []struct {
		name     string
		d        time.Duration
		cancelAt time.Duration // 0: never
		want     error
		took     time.Duration
	}{
		{"waits the whole duration", time.Minute, 0, nil, time.Minute},
		{"stops when the caller goes", time.Minute, time.Second, context.Canceled, time.Second},
		{"no wait", 0, 0, nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				if tc.cancelAt > 0 {
					time.AfterFunc(tc.cancelAt, cancel)
				}
				start := time.Now()
				if err := Sleep(ctx, tc.d); !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
					t.Fatalf("Sleep = %v, want %v", err, tc.want)
				}
				if took := time.Since(start); took != tc.took {
					t.Fatalf("Sleep returned after %s on the bubble's clock, want %s", took, tc.took)
				}
			})
		})
	}
	t.Run("a gone caller does not wait", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := Sleep(ctx, 0); !errors.Is(err, context.Canceled) {
			t.Fatalf("Sleep(cancelled, 0) = %v, want context.Canceled", err)
		}
	})
}

func TestClientBudget(t *testing.T) {
	tests := []struct {
		name     string
		burst    int
		retryMax int
		replies  []reply
		calls    int
		wantOK   int
		wantHits int
	}{
		{"calls beyond the burst are refused", 2, 0, []reply{{body: "{}"}}, 4, 2, 2},
		{"every retry spends budget", 3, 5, []reply{{status: 500}}, 1, 0, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, srv := startVendor(t, tc.replies...)
			h := fastHTTP()
			h.Burst = tc.burst
			h.RequestsPerSecond = 0.001 // next token in ~17 minutes
			h.RetryMax = tc.retryMax
			c := newClient(t, ClientOptions{Provider: "p", HTTP: h})
			// With a deadline the limiter refuses at once instead of waiting.
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			okCalls := 0
			for range tc.calls {
				_, err := c.Do(ctx, "get", Request{Method: http.MethodGet, URL: srv.URL + "/x?filter=" + secretQuery})
				if err == nil {
					okCalls++
					continue
				}
				if !strings.HasPrefix(err.Error(), "p: get: ") || strings.Contains(err.Error(), secretQuery) {
					t.Errorf("error = %q", err)
				}
			}
			if okCalls != tc.wantOK || v.hits() != tc.wantHits {
				t.Fatalf("ok calls = %d, vendor hits = %d; want %d, %d", okCalls, v.hits(), tc.wantOK, tc.wantHits)
			}
		})
	}
}

func TestClientRedirectNotFollowed(t *testing.T) {
	for _, status := range []int{301, 302, 303, 307, 308} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			var targetHits atomic.Int32
			mux := http.NewServeMux()
			mux.HandleFunc("/target", func(w http.ResponseWriter, r *http.Request) { targetHits.Add(1) })
			mux.HandleFunc("/start", func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "/target?stolen="+r.Header.Get("Authorization"), status)
			})
			srv := httptest.NewServer(mux)
			defer srv.Close()
			ts, _ := tokenSourceFrom(bearerValue)
			c := newClient(t, ClientOptions{Provider: "p", HTTP: fastHTTP(), Token: ts})
			resp, err := c.Do(t.Context(), "get", Request{Method: http.MethodGet, URL: srv.URL + "/start"})
			var se *StatusError
			if !errors.As(err, &se) || se.Status != status {
				t.Fatalf("Do error = %v, want *StatusError %d", err, status)
			}
			if resp == nil || resp.Status != status || !strings.HasPrefix(resp.Header.Get("Location"), "/target") {
				t.Fatalf("resp = %+v", resp)
			}
			if targetHits.Load() != 0 {
				t.Fatal("redirect was followed")
			}
		})
	}
}

func TestClientErrorsHideURLAndSecrets(t *testing.T) {
	blockUntilGone := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	tests := []struct {
		name    string
		handler http.Handler // nil: use url as is
		url     string       // appended to the server URL when handler is set
		ctx     func(context.Context) (context.Context, context.CancelFunc)
		http    func(*HTTPConfig)
		want    string // error must contain
		is      func(error) bool
	}{
		{name: "5xx exhaustion", handler: &vendor{replies: []reply{{status: 500, body: "internal"}}}, url: "/api?filter=" + secretQuery, want: "status 500"},
		{name: "long rate limit", handler: &vendor{replies: []reply{{status: 429, header: map[string]string{"Retry-After": "600"}}}}, url: "/api?filter=" + secretQuery, want: "rate limited"},
		{name: "connection refused", url: closedURL + "/api?filter=" + secretQuery, http: func(h *HTTPConfig) { h.RetryMax = 1 }, want: "/api"},
		{name: "per-attempt timeout", handler: blockUntilGone, url: "/api?filter=" + secretQuery,
			http: func(h *HTTPConfig) { h.RetryMax = 0; h.RequestTimeout = conf.Duration(50 * time.Millisecond) }, is: isTimeout},
		{name: "context deadline", handler: blockUntilGone, url: "/api?filter=" + secretQuery,
			ctx: func(ctx context.Context) (context.Context, context.CancelFunc) {
				return context.WithTimeout(ctx, 50*time.Millisecond)
			}, want: "deadline exceeded"},
		{name: "cancelled before the call", handler: &vendor{replies: []reply{{}}}, url: "/api?filter=" + secretQuery,
			ctx: func(ctx context.Context) (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(ctx)
				cancel()
				return ctx, cancel
			}, want: "canceled"},
		{name: "unparseable URL", url: "http://127.0.0.1:1/a\x7f?filter=" + secretQuery, want: "build request"},
		{name: "unsupported scheme", url: "gopher://127.0.0.1:1/api?filter=" + secretQuery, want: "unsupported protocol scheme"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			url := tc.url
			if tc.handler != nil {
				srv := httptest.NewServer(tc.handler)
				defer srv.Close()
				url = srv.URL + tc.url
			}
			h := fastHTTP()
			if tc.http != nil {
				tc.http(&h)
			}
			ctx := t.Context()
			if tc.ctx != nil {
				var cancel context.CancelFunc
				ctx, cancel = tc.ctx(ctx)
				defer cancel()
			}
			ts, _ := tokenSourceFrom(bearerValue)
			c := newClient(t, ClientOptions{Provider: "crowdstrike", HTTP: h, Token: ts})
			_, err := c.Do(ctx, "query devices", Request{Method: http.MethodGet, URL: url})
			if err == nil {
				t.Fatal("Do succeeded")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "crowdstrike: query devices: ") {
				t.Errorf("error %q lacks the provider and op", msg)
			}
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not contain %q", msg, tc.want)
			}
			if tc.is != nil && !tc.is(err) {
				t.Errorf("error %q is not of the expected kind", msg)
			}
			for _, bad := range []string{secretQuery, "filter=", bearerValue, "?"} {
				if strings.Contains(msg, bad) {
					t.Errorf("error %q contains %q", msg, bad)
				}
			}
		})
	}
}

// isTimeout reports whether err is an attempt timeout; net/http words it
// differently depending on where the timer fired.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

func TestClientCancelDuringBackoff(t *testing.T) {
	v, srv := startVendor(t, reply{status: 500})
	h := fastHTTP()
	h.RetryWaitMin = conf.Duration(time.Minute)
	h.RetryWaitMax = conf.Duration(time.Minute)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// Cancel as the backoff is chosen: Do must not sit out the minute.
	c := newClient(t, ClientOptions{Provider: "p", HTTP: h, OnRetry: func(int, time.Duration) { cancel() }})
	start := time.Now()
	_, err := c.Do(ctx, "get", Request{Method: http.MethodGet, URL: srv.URL})
	if !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "p: get: ") {
		t.Fatalf("Do error = %v", err)
	}
	if time.Since(start) > 30*time.Second || v.hits() != 1 {
		t.Fatalf("waited %v, hits %d", time.Since(start), v.hits())
	}
}

func TestClientJSON(t *testing.T) {
	type payload struct {
		Name  string `json:"name"`
		Count int    `json:"count"`
	}
	tests := []struct {
		name    string
		replies []reply
		post    bool
		in      any
		wantErr string // prefix; "" means success
		want    payload
	}{
		{name: "get decodes", replies: []reply{{body: `{"name":"a","count":2}`}}, want: payload{"a", 2}},
		{name: "post sends and decodes", post: true, in: payload{"q", 1}, replies: []reply{{body: `{"name":"r","count":3}`}}, want: payload{"r", 3}},
		{name: "post body resent on retry", post: true, in: payload{"q", 1}, replies: []reply{{status: 502}, {status: 500}, {body: `{"name":"r"}`}}, want: payload{Name: "r"}},
		{name: "malformed JSON", replies: []reply{{body: `{"name":`}}, wantErr: "vendorx: op: decode response: "},
		{name: "HTML instead of JSON", replies: []reply{{body: `<html>maintenance</html>`}}, wantErr: "vendorx: op: decode response: "},
		{name: "wrong types", replies: []reply{{body: `{"name":5}`}}, wantErr: "vendorx: op: decode response: "},
		{name: "empty body", replies: []reply{{body: ``}}, wantErr: "vendorx: op: decode response: "},
		{name: "non-2xx is a status error, not a decode error", replies: []reply{{status: 404, body: `{"errors":["nope"]}`}}, wantErr: `vendorx: op: status 404: {"errors":["nope"]}`},
		{name: "unencodable input", post: true, in: map[string]any{"c": make(chan int)}, replies: []reply{{}}, wantErr: "vendorx: op: encode request: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, srv := startVendor(t, tc.replies...)
			c := newClient(t, ClientOptions{HTTP: fastHTTP()})
			var got payload
			var err error
			if tc.post {
				err = c.PostJSON(t.Context(), "op", srv.URL+"/p", tc.in, &got)
			} else {
				err = c.GetJSON(t.Context(), "op", srv.URL+"/g", &got)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want prefix %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
			for _, r := range v.requests() {
				if tc.post {
					if r.method != http.MethodPost || r.contentType != "application/json" || string(r.body) != `{"name":"q","count":1}` {
						t.Errorf("request = %+v (body %s)", r, r.body)
					}
				} else if r.method != http.MethodGet || len(r.body) != 0 {
					t.Errorf("request = %+v", r)
				}
				if r.accept != "application/json" {
					t.Errorf("Accept = %q", r.accept)
				}
			}
		})
	}

	t.Run("nil out skips decoding", func(t *testing.T) {
		_, srv := startVendor(t, reply{body: "not json"})
		c := newClient(t, ClientOptions{HTTP: fastHTTP()})
		if err := c.GetJSON(t.Context(), "op", srv.URL, nil); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("DecodeJSON never panics", func(t *testing.T) {
		c := newClient(t, ClientOptions{Provider: "jamf", HTTP: fastHTTP()})
		for _, body := range []string{"", "null", "[", `{"a":`, "\x00\xff", `{"name":[1,2]}`, strings.Repeat("[", 10000)} {
			var out payload
			err := c.DecodeJSON("page", []byte(body), &out)
			if err != nil && !strings.HasPrefix(err.Error(), "jamf: page: decode response: ") {
				t.Errorf("DecodeJSON(%q) = %v", body, err)
			}
		}
	})
}

func TestClientHeaders(t *testing.T) {
	tests := []struct {
		name       string
		header     http.Header
		wantAccept string
		wantCustom string
	}{
		{"default accept", nil, "application/json", ""},
		{"caller accept kept", http.Header{"Accept": {"application/xml"}}, "application/xml", ""},
		{"custom header passed", http.Header{"X-Custom": {"v1"}}, "application/json", "v1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, srv := startVendor(t, reply{body: "{}"})
			ts, _ := tokenSourceFrom("abc")
			c := newClient(t, ClientOptions{HTTP: fastHTTP(), Token: ts})
			if _, err := c.Do(t.Context(), "op", Request{Method: http.MethodGet, URL: srv.URL + "/path?a=b", Header: tc.header}); err != nil {
				t.Fatal(err)
			}
			r := v.requests()[0]
			if r.accept != tc.wantAccept || r.custom != tc.wantCustom || r.auth != "Bearer abc" || r.path != "/path" || r.query != "a=b" {
				t.Fatalf("request = %+v", r)
			}
		})
	}
}

func TestClientDebugLogHidesQuery(t *testing.T) {
	_, srv := startVendor(t, reply{body: "{}"})
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ts, _ := tokenSourceFrom(bearerValue)
	c := newClient(t, ClientOptions{HTTP: fastHTTP(), Token: ts, Logger: logger})
	if _, err := c.Do(t.Context(), "op", Request{Method: http.MethodGet, URL: srv.URL + "/devices?filter=" + secretQuery}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.Contains(out, `"path":"/devices"`) || !strings.Contains(out, `"status":200`) {
		t.Errorf("debug log = %s", out)
	}
	if strings.Contains(out, secretQuery) || strings.Contains(out, bearerValue) {
		t.Errorf("debug log leaks: %s", out)
	}
}

func TestStatusErrorBody(t *testing.T) {
	long := strings.Repeat("x", 1000)
	tests := []struct {
		name string
		body string
		want string
	}{
		{"empty", "", "status 500"},
		{"trimmed", "  oops \n", "status 500: oops"},
		{"truncated", long, "status 500: " + long[:300] + "..."},
		{"invalid utf-8 dropped", "a\xffb", "status 500: ab"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, srv := startVendor(t, reply{status: 500, body: tc.body})
			h := fastHTTP()
			h.RetryMax = 0
			c := newClient(t, ClientOptions{Provider: "p", HTTP: h})
			_, err := c.Do(t.Context(), "op", Request{Method: http.MethodGet, URL: srv.URL})
			var se *StatusError
			if !errors.As(err, &se) || se.Error() != tc.want {
				t.Fatalf("StatusError = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestStatusErrorSnippetKeepsUTF8(t *testing.T) {
	for _, prefix := range []string{"", "a", "ab"} { // shift 2- and 3-byte runes across byte 300
		for _, r := range []string{"é", "€"} {
			body := prefix + strings.Repeat(r, 400)
			if got := Snippet([]byte(body)); !utf8.ValidString(got) {
				t.Errorf("Snippet(%q + %q...) is not valid UTF-8: ends %q", prefix, r, got[len(got)-8:])
			}
		}
	}
}

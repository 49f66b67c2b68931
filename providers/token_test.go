package providers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postured/postured/internal/conf"
)

// fakeClock is a settable clock for TokenSource.now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

var clockBase = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

func TestTokenSourceCachingAndRefresh(t *testing.T) {
	type step struct {
		at          time.Duration // clock offset from clockBase
		invalidate  string        // Invalidate(value) before Token, if non-empty
		want        string
		wantFetches int32
	}
	tests := []struct {
		name   string
		expiry time.Duration // token lifetime from fetch time; 0: no expiry
		early  time.Duration
		steps  []step
	}{
		{
			name:   "cached until early refresh",
			expiry: 60 * time.Second, early: 10 * time.Second,
			steps: []step{
				{at: 0, want: "tok-1", wantFetches: 1},
				{at: 0, want: "tok-1", wantFetches: 1},
				{at: 49 * time.Second, want: "tok-1", wantFetches: 1},
				{at: 50 * time.Second, want: "tok-2", wantFetches: 2}, // expiry-early reached
				{at: 51 * time.Second, want: "tok-2", wantFetches: 2}, // new token lives to 110s
				{at: 99 * time.Second, want: "tok-2", wantFetches: 2},
				{at: 100 * time.Second, want: "tok-3", wantFetches: 3},
			},
		},
		{
			name:   "no early margin refreshes at expiry",
			expiry: 60 * time.Second, early: 0,
			steps: []step{
				{at: 0, want: "tok-1", wantFetches: 1},
				{at: 59 * time.Second, want: "tok-1", wantFetches: 1},
				{at: 60 * time.Second, want: "tok-2", wantFetches: 2},
			},
		},
		{
			name:   "expired long ago",
			expiry: time.Minute, early: time.Second,
			steps: []step{
				{at: 0, want: "tok-1", wantFetches: 1},
				{at: 24 * time.Hour, want: "tok-2", wantFetches: 2},
			},
		},
		{
			name:   "zero expiry never refreshes on its own",
			expiry: 0, early: time.Minute,
			steps: []step{
				{at: 0, want: "tok-1", wantFetches: 1},
				{at: 1000 * time.Hour, want: "tok-1", wantFetches: 1},
			},
		},
		{
			name:   "invalidate current value refetches",
			expiry: time.Hour, early: time.Minute,
			steps: []step{
				{at: 0, want: "tok-1", wantFetches: 1},
				{at: time.Second, invalidate: "tok-1", want: "tok-2", wantFetches: 2},
				{at: 2 * time.Second, want: "tok-2", wantFetches: 2},
			},
		},
		{
			name:   "invalidate a stale value is ignored",
			expiry: time.Hour, early: time.Minute,
			steps: []step{
				{at: 0, want: "tok-1", wantFetches: 1},
				{at: time.Second, invalidate: "tok-1", want: "tok-2", wantFetches: 2},
				// A late 401 for tok-1 must not throw tok-2 away.
				{at: 2 * time.Second, invalidate: "tok-1", want: "tok-2", wantFetches: 2},
				{at: 3 * time.Second, invalidate: "never-issued", want: "tok-2", wantFetches: 2},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{now: clockBase}
			var fetches atomic.Int32
			ts := NewTokenSource(func(ctx context.Context) (Token, error) {
				n := fetches.Add(1)
				tok := Token{Value: fmt.Sprintf("tok-%d", n)}
				if tc.expiry > 0 {
					tok.Expiry = clock.Now().Add(tc.expiry)
				}
				return tok, nil
			}, tc.early)
			ts.now = clock.Now
			for i, s := range tc.steps {
				clock.Set(clockBase.Add(s.at))
				if s.invalidate != "" {
					ts.Invalidate(s.invalidate)
				}
				got, err := ts.Token(t.Context())
				if err != nil || got != s.want || fetches.Load() != s.wantFetches {
					t.Fatalf("step %d (t+%v): Token = %q, %v with %d fetches; want %q with %d",
						i, s.at, got, err, fetches.Load(), s.want, s.wantFetches)
				}
			}
		})
	}
}

func TestTokenSourceFetchErrors(t *testing.T) {
	tests := []struct {
		name    string
		results []error // per fetch; nil means success
		empty   bool    // successful fetches return an empty value
		wantErr string
	}{
		{"fetch error wrapped", []error{errors.New("idp down")}, false, "fetch token: idp down"},
		{"empty token rejected", []error{nil}, true, "fetch token: empty token in response"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var fetches atomic.Int32
			ts := NewTokenSource(func(context.Context) (Token, error) {
				fetches.Add(1)
				if tc.results[0] != nil {
					return Token{}, tc.results[0]
				}
				if tc.empty {
					return Token{Expiry: time.Now().Add(time.Hour)}, nil
				}
				return Token{Value: "v"}, nil
			}, 0)
			for i := range 3 {
				_, err := ts.Token(t.Context())
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("call %d: Token error = %v, want %q", i, err, tc.wantErr)
				}
			}
			// Failures are not cached: every call tries again.
			if fetches.Load() != 3 {
				t.Fatalf("fetches = %d, want 3", fetches.Load())
			}
		})
	}

	t.Run("wrapped error keeps its identity", func(t *testing.T) {
		sentinel := errors.New("sentinel")
		ts := NewTokenSource(func(context.Context) (Token, error) { return Token{}, sentinel }, 0)
		if _, err := ts.Token(t.Context()); !errors.Is(err, sentinel) {
			t.Fatalf("Token error = %v does not wrap the fetch error", err)
		}
	})

	t.Run("recovers after a failure", func(t *testing.T) {
		var n atomic.Int32
		ts := NewTokenSource(func(context.Context) (Token, error) {
			if n.Add(1) == 1 {
				return Token{}, errors.New("transient")
			}
			return Token{Value: "ok"}, nil
		}, 0)
		if _, err := ts.Token(t.Context()); err == nil {
			t.Fatal("first call succeeded")
		}
		if v, err := ts.Token(t.Context()); err != nil || v != "ok" {
			t.Fatalf("Token = %q, %v", v, err)
		}
	})
}

func TestTokenSourceConcurrentFetchesCollapse(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 100)
	var fetches atomic.Int32
	ts := NewTokenSource(func(context.Context) (Token, error) {
		fetches.Add(1)
		entered <- struct{}{}
		<-release
		return Token{Value: "shared", Expiry: time.Now().Add(time.Hour)}, nil
	}, time.Minute)

	const callers = 32
	var wg sync.WaitGroup
	results := make(chan string, callers)
	for range callers {
		wg.Go(func() {
			v, err := ts.Token(context.Background())
			if err != nil {
				t.Errorf("Token: %v", err)
			}
			results <- v
		})
	}
	<-entered // one fetch is running; the others join it or find the cached token
	close(release)
	wg.Wait()
	close(results)
	for v := range results {
		if v != "shared" {
			t.Errorf("caller got %q", v)
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Fatalf("fetches = %d, want 1", n)
	}
}

func TestTokenSourceCancelledCallerDoesNotFailOthers(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	fetchCtxErr := make(chan error, 1)
	var fetchDeadline time.Time
	var fetches atomic.Int32
	ts := NewTokenSource(func(ctx context.Context) (Token, error) {
		fetches.Add(1)
		fetchDeadline, _ = ctx.Deadline()
		entered <- struct{}{}
		<-release
		fetchCtxErr <- ctx.Err()
		if ctx.Err() != nil {
			return Token{}, ctx.Err()
		}
		return Token{Value: "tok", Expiry: time.Now().Add(time.Hour)}, nil
	}, 0)

	ctxA, cancelA := context.WithCancel(context.Background())
	errA := make(chan error, 1)
	go func() {
		_, err := ts.Token(ctxA)
		errA <- err
	}()
	<-entered // A started the fetch

	resB := make(chan string, 1)
	go func() {
		v, err := ts.Token(context.Background())
		if err != nil {
			t.Errorf("waiter B: %v", err)
		}
		resB <- v
	}()

	cancelA()
	if err := <-errA; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller got %v, want context.Canceled", err)
	}
	close(release)
	if v := <-resB; v != "tok" {
		t.Fatalf("waiter B got %q", v)
	}
	if err := <-fetchCtxErr; err != nil {
		t.Fatalf("the fetch saw its context cancelled: %v", err)
	}
	if fetchDeadline.IsZero() || time.Until(fetchDeadline) > tokenFetchTimeout {
		t.Fatalf("fetch deadline = %v, want bounded by %v", fetchDeadline, tokenFetchTimeout)
	}
	// The fetch A started completed and is cached for everyone.
	if v, err := ts.Token(context.Background()); err != nil || v != "tok" || fetches.Load() != 1 {
		t.Fatalf("after: %q, %v, fetches %d", v, err, fetches.Load())
	}
}

// tokenEndpoint is a fake OAuth2 token endpoint.
type tokenEndpoint struct {
	mu    sync.Mutex
	forms []url.Values
	auth  []string
	ctype []string
	// answer writes the response for the n-th request (1-based).
	answer func(w http.ResponseWriter, n int)
}

func (e *tokenEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(b))
	e.mu.Lock()
	e.forms = append(e.forms, form)
	e.auth = append(e.auth, r.Header.Get("Authorization"))
	e.ctype = append(e.ctype, r.Header.Get("Content-Type"))
	n := len(e.forms)
	e.mu.Unlock()
	e.answer(w, n)
}

func (e *tokenEndpoint) hits() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.forms)
}

func jsonAnswer(status int, body string) func(http.ResponseWriter, int) {
	return func(w http.ResponseWriter, _ int) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// Secrets with characters Basic-auth escaping mangles.
const ccSecret = "s3cr+t/x=y$z!~.-_ END"

func TestClientCredentialsRequest(t *testing.T) {
	ep := &tokenEndpoint{answer: jsonAnswer(200, `{"access_token":"at-1","token_type":"Bearer","expires_in":3600}`)}
	srv := httptest.NewServer(ep)
	defer srv.Close()
	fetch := ClientCredentials(srv.URL+"/oauth2/token", "my-client", conf.Secret(ccSecret),
		[]string{"https://graph.microsoft.com/.default"}, url.Values{"member_cid": {"child-1"}}, fastHTTP())
	before := time.Now()
	tok, err := fetch(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if tok.Value != "at-1" {
		t.Errorf("Value = %q", tok.Value)
	}
	if lo, hi := before.Add(3590*time.Second), time.Now().Add(3610*time.Second); tok.Expiry.Before(lo) || tok.Expiry.After(hi) {
		t.Errorf("Expiry = %v, want about an hour from now", tok.Expiry)
	}
	if ep.hits() != 1 {
		t.Fatalf("token endpoint hits = %d", ep.hits())
	}
	form := ep.forms[0]
	for key, want := range map[string]string{
		"grant_type":    "client_credentials",
		"client_id":     "my-client",
		"client_secret": ccSecret,
		"scope":         "https://graph.microsoft.com/.default",
		"member_cid":    "child-1",
	} {
		if got := form.Get(key); got != want {
			t.Errorf("form %s = %q, want %q", key, got, want)
		}
	}
	if ep.auth[0] != "" {
		t.Errorf("credentials sent in an Authorization header too: %q", ep.auth[0])
	}
	if !strings.HasPrefix(ep.ctype[0], "application/x-www-form-urlencoded") {
		t.Errorf("Content-Type = %q", ep.ctype[0])
	}
}

func TestClientCredentialsResponses(t *testing.T) {
	tests := []struct {
		name     string
		answer   func(http.ResponseWriter, int)
		retryMax int
		wantHits int
		wantErr  string // "" means success; else substring
		wantTok  string
		zeroExp  bool
	}{
		{name: "201 accepted (CrowdStrike)", answer: jsonAnswer(201, `{"access_token":"cs","token_type":"bearer","expires_in":1799}`), wantHits: 1, wantTok: "cs"},
		{name: "no expires_in gives zero expiry", answer: jsonAnswer(200, `{"access_token":"forever","token_type":"bearer"}`), wantHits: 1, wantTok: "forever", zeroExp: true},
		{name: "form-encoded answer", answer: func(w http.ResponseWriter, _ int) {
			w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
			io.WriteString(w, "access_token=formtok&token_type=bearer&expires_in=60")
		}, wantHits: 1, wantTok: "formtok"},
		{name: "5xx then success is retried", retryMax: 2, answer: func(w http.ResponseWriter, n int) {
			if n < 3 {
				w.WriteHeader(503)
				return
			}
			jsonAnswer(200, `{"access_token":"late","token_type":"bearer","expires_in":60}`)(w, n)
		}, wantHits: 3, wantTok: "late"},
		{name: "invalid_client", answer: jsonAnswer(401, `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}`),
			retryMax: 3, wantHits: 1, wantErr: "token endpoint answered 401: invalid_client"},
		{name: "invalid_scope 400", answer: jsonAnswer(400, `{"error":"invalid_scope"}`), wantHits: 1, wantErr: "token endpoint answered 400: invalid_scope"},
		{name: "5xx exhaustion", answer: func(w http.ResponseWriter, _ int) { w.WriteHeader(500); io.WriteString(w, "upstream exploded") },
			retryMax: 2, wantHits: 3, wantErr: "status 500: upstream exploded"},
		{name: "malformed JSON", answer: jsonAnswer(200, `{"access_token":`), wantHits: 1, wantErr: "cannot parse json"},
		{name: "missing access_token", answer: jsonAnswer(200, `{"token_type":"bearer"}`), wantHits: 1, wantErr: "access_token"},
		{name: "redirect is not followed", answer: func(w http.ResponseWriter, n int) {
			w.Header().Set("Location", "/elsewhere")
			w.WriteHeader(302)
		}, wantHits: 1, wantErr: "302"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ep := &tokenEndpoint{answer: tc.answer}
			srv := httptest.NewServer(ep)
			defer srv.Close()
			h := fastHTTP()
			h.RetryMax = tc.retryMax
			fetch := ClientCredentials(srv.URL+"/token?tenant=t1", "cid", conf.Secret(ccSecret), nil, nil, h)
			tok, err := fetch(t.Context())
			if ep.hits() != tc.wantHits {
				t.Errorf("token endpoint hits = %d, want %d", ep.hits(), tc.wantHits)
			}
			if tc.wantErr == "" {
				if err != nil || tok.Value != tc.wantTok || tok.Expiry.IsZero() != tc.zeroExp {
					t.Fatalf("token = %+v, %v", tok, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("fetch succeeded with %+v", tok)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.wantErr) {
				t.Errorf("error %q does not contain %q", msg, tc.wantErr)
			}
			for _, bad := range []string{ccSecret, "s3cr", "tenant=t1", "client_secret"} {
				if strings.Contains(msg, bad) {
					t.Errorf("error %q contains %q", msg, bad)
				}
			}
		})
	}

	t.Run("unreachable endpoint", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		u := srv.URL
		srv.Close()
		h := fastHTTP()
		h.RetryMax = 0
		_, err := ClientCredentials(u+"/token?key="+url.QueryEscape(ccSecret), "cid", conf.Secret(ccSecret), nil, nil, h)(t.Context())
		if err == nil || strings.Contains(err.Error(), "s3cr") || strings.Contains(err.Error(), "key=") {
			t.Fatalf("error = %v", err)
		}
	})
}

func TestClientCredentialsErrorBodyEchoingSecret(t *testing.T) {
	ep := &tokenEndpoint{answer: func(w http.ResponseWriter, _ int) {
		w.WriteHeader(400)
		io.WriteString(w, "<html>bad request: client_id=cid&client_secret="+url.QueryEscape(ccSecret)+"</html>")
	}}
	srv := httptest.NewServer(ep)
	defer srv.Close()
	_, err := ClientCredentials(srv.URL, "cid", conf.Secret(ccSecret), nil, nil, fastHTTP())(t.Context())
	if err == nil || strings.Contains(err.Error(), url.QueryEscape(ccSecret)) || strings.Contains(err.Error(), ccSecret) {
		t.Fatalf("error = %v", err)
	}
}

func TestClientWithClientCredentialsEndToEnd(t *testing.T) {
	// Token endpoint issues cc-1, cc-2, ...; the API rejects cc-1 as revoked.
	var issued atomic.Int32
	ep := &tokenEndpoint{answer: func(w http.ResponseWriter, _ int) {
		n := issued.Add(1)
		jsonAnswer(200, fmt.Sprintf(`{"access_token":"cc-%d","token_type":"bearer","expires_in":3600}`, n))(w, 0)
	}}
	tokSrv := httptest.NewServer(ep)
	defer tokSrv.Close()
	api := &vendor{byToken: map[string]reply{"cc-2": {body: `{"resources":["d1"]}`}}}
	apiSrv := httptest.NewServer(api)
	defer apiSrv.Close()

	h := fastHTTP()
	ts := NewTokenSource(ClientCredentials(tokSrv.URL, "cid", conf.Secret(ccSecret), nil, nil, h), time.Minute)
	c := newClient(t, ClientOptions{Provider: "crowdstrike", HTTP: h, Token: ts})
	var out struct {
		Resources []string `json:"resources"`
	}
	if err := c.GetJSON(t.Context(), "query devices", apiSrv.URL+"/devices/queries/devices/v1?filter=x", &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Resources) != 1 || ep.hits() != 2 || api.hits() != 2 {
		t.Fatalf("out = %+v, token hits = %d, api hits = %d", out, ep.hits(), api.hits())
	}
	// Cached afterwards.
	if err := c.GetJSON(t.Context(), "query devices", apiSrv.URL+"/x", &out); err != nil {
		t.Fatal(err)
	}
	if ep.hits() != 2 {
		t.Fatalf("token refetched: %d hits", ep.hits())
	}
}

func TestRedactSecret(t *testing.T) {
	const s = "p+ss/w=rd"
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"nil stays nil", nil, ""},
		{"raw", errors.New("echo: client_secret=" + s), "echo: client_secret=<redacted>"},
		{"url-encoded", errors.New("echo: client_secret=" + url.QueryEscape(s)), "echo: client_secret=<redacted>"},
		{"absent keeps the error", io.EOF, "EOF"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := RedactSecret(tc.err, conf.Secret(s))
			if tc.err == nil {
				if got != nil {
					t.Errorf("got %v", got)
				}
				return
			}
			if got.Error() != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	if got := RedactSecret(io.EOF, conf.Secret(s)); got != io.EOF {
		t.Error("an error without the secret should be returned as is")
	}
}

package providertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postured/postured/internal/conf"
	"github.com/postured/postured/providers"
)

// fastHTTP keeps the suite quick: short backoff, a budget that never binds,
// and room under RetryWaitMax for a one-second Retry-After.
var fastHTTP = providers.HTTPConfig{
	MaxConcurrency:    4,
	RequestsPerSecond: 10000,
	Burst:             10000,
	RetryMax:          2,
	RetryWaitMin:      conf.Duration(5 * time.Millisecond),
	RetryWaitMax:      conf.Duration(3 * time.Second),
	RequestTimeout:    conf.Duration(30 * time.Second),
}

// watchdog only turns a provider that ignores cancellation from a hung
// test into a failing one; nothing is timed against it.
const watchdog = time.Minute

// fixture is one Setup with the suite's view of its traffic.
type fixture struct {
	*Env
	h    Harness
	rec  *recorder
	logs *syncBuffer

	mu      sync.Mutex
	retries []retry
}

type retry struct {
	status int
	wait   time.Duration
}

// start runs h.Setup with the suite's server, logger and retry hook.
func start(t *testing.T, h Harness, bulk int) *fixture {
	t.Helper()
	f := &fixture{h: h, logs: &syncBuffer{}}
	f.rec = &recorder{tokenPath: h.TokenPath, release: make(chan struct{})}
	opts := Options{
		Serve: func(mock http.Handler) string {
			f.rec.next = mock
			srv := httptest.NewServer(f.rec)
			t.Cleanup(srv.Close)
			// Cleanups run last-in first-out: held requests are let go
			// before Close waits for them.
			t.Cleanup(func() { close(f.rec.release) })
			return srv.URL
		},
		HTTP:   fastHTTP,
		Logger: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnRetry: func(status int, wait time.Duration) {
			f.mu.Lock()
			f.retries = append(f.retries, retry{status, wait})
			f.mu.Unlock()
		},
		Bulk: bulk,
	}
	f.Env = h.Setup(t, opts)
	switch {
	case f.rec.next == nil:
		t.Fatal("harness Setup did not serve its mock through Options.Serve")
	case f.Env == nil || f.Provider == nil || f.Faults == nil || f.Revoke == nil:
		t.Fatal("harness Setup returned an Env without Provider, Faults or Revoke")
	}
	f.rec.setRevoke(f.Revoke)
	return f
}

// lookup runs a lookup of the raw values and checks that whatever error
// comes back carries no secret.
func (f *fixture) lookup(t *testing.T, ctx context.Context, k providers.Kind, raw ...string) ([]providers.Record, error) {
	t.Helper()
	recs, err := f.Provider.Lookup(ctx, query(k, raw...))
	f.noSecrets(t, err)
	return recs, err
}

// noSecrets fails t if err or the provider's logs carry a configured
// secret (raw or form-encoded) or a bearer token the provider sent.
func (f *fixture) noSecrets(t *testing.T, err error) {
	t.Helper()
	var texts []string
	if err != nil {
		texts = append(texts, "error: "+err.Error())
	}
	texts = append(texts, "logs: "+f.logs.String())
	for _, s := range f.forbidden() {
		for _, text := range texts {
			if strings.Contains(text, s) {
				t.Errorf("secret %q leaked into the %s", s, text)
			}
		}
	}
}

func (f *fixture) forbidden() []string {
	var out []string
	for _, s := range f.Secrets {
		out = append(out, s, url.QueryEscape(s))
	}
	return append(out, f.rec.bearers()...)
}

func (f *fixture) retried() []retry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.retries)
}

func (f *fixture) resetRetries() {
	f.mu.Lock()
	f.retries = nil
	f.mu.Unlock()
}

// known returns the identifiers of kind k, in the harness's order.
func (f *fixture) known(k providers.Kind) []Ident {
	var out []Ident
	for _, id := range f.Known {
		if id.Kind == k {
			out = append(out, id)
		}
	}
	return out
}

// probe is one identifier of a kind the vendor can query, for checks that
// need a lookup that finds something.
func (f *fixture) probe(t *testing.T) Ident {
	t.Helper()
	for _, id := range f.Known {
		if slices.Contains(f.h.Kinds, id.Kind) {
			return id
		}
	}
	t.Fatal("harness lists no known identifier of a queryable kind")
	return Ident{}
}

// query normalises raw values of kind k the way the aggregator does.
func query(k providers.Kind, raw ...string) providers.Query {
	q := providers.Query{Kind: k}
	for _, v := range raw {
		if n, ok := providers.Normalize(k, v); ok && !slices.Contains(q.Values, n) {
			q.Values = append(q.Values, n)
		}
	}
	return q
}

func hasID(recs []providers.Record, id string) bool {
	return slices.ContainsFunc(recs, func(r providers.Record) bool { return r.ID == id })
}

// mode is how the recorder answers a class of requests.
type mode int

const (
	// pass hands every request to the mock.
	pass mode = iota
	// echoToken answers token requests itself with status and the
	// request's credentials and form in the body, as a misconfigured
	// token endpoint or proxy may.
	echoToken
	// echoAPI answers API requests likewise, bearer token included.
	echoAPI
	// revokeIssued lets the mock issue tokens but revokes each before the
	// provider sees it, so every API request gets 401.
	revokeIssued
	// holdAPI keeps API requests unanswered until the client gives up.
	holdAPI
	// rejectValue answers 400 to every API request that carries one of
	// the poison forms, in its URL or body, as a vendor does for a value
	// it refuses; other requests reach the mock.
	rejectValue
)

// recorder sits between the provider and the mock: it counts requests,
// remembers the bearer tokens sent and plays the scenario's mode.
type recorder struct {
	next      http.Handler
	tokenPath string
	release   chan struct{}

	mu      sync.Mutex
	mode    mode
	status  int
	api     int
	tokens  int
	sent    []string
	revoke  func()
	held    chan struct{} // closed when holdAPI holds its first request
	limit   int           // API requests after which stop is called; 0: none
	stop    func()
	stopped bool
	poison  []string // lower-cased forms rejectValue refuses
	refused int
}

func (rc *recorder) setRevoke(f func()) {
	rc.mu.Lock()
	rc.revoke = f
	rc.mu.Unlock()
}

// set switches the mode for the requests that follow.
func (rc *recorder) set(m mode, status int) {
	rc.mu.Lock()
	rc.mode, rc.status = m, status
	if m == holdAPI {
		rc.held = make(chan struct{})
	}
	rc.mu.Unlock()
}

// hold switches to holdAPI and returns a channel closed once the first API
// request is being held.
func (rc *recorder) hold() <-chan struct{} {
	rc.set(holdAPI, 0)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.held
}

// stopAfter calls stop once more than n API requests have arrived, which
// ends a lookup that would otherwise loop.
func (rc *recorder) stopAfter(n int, stop func()) {
	rc.mu.Lock()
	rc.limit, rc.stop = n, stop
	rc.mu.Unlock()
}

// counts returns the API and token requests so far.
func (rc *recorder) counts() (api, tokens int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.api, rc.tokens
}

func (rc *recorder) bearers() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.sent)
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	isToken := r.URL.Path == rc.tokenPath
	rc.mu.Lock()
	if isToken {
		rc.tokens++
	} else {
		rc.api++
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && tok != "" && !slices.Contains(rc.sent, tok) {
			rc.sent = append(rc.sent, tok)
		}
	}
	m, status, revoke, held := rc.mode, rc.status, rc.revoke, rc.held
	var stop func()
	if !isToken && rc.limit > 0 && rc.api > rc.limit && !rc.stopped {
		rc.stopped, stop = true, rc.stop
	}
	rc.mu.Unlock()
	if stop != nil {
		stop()
	}

	if m == rejectValue && !isToken && rc.carriesPoison(r) {
		rc.mu.Lock()
		rc.refused++
		rc.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":"invalid filter value"}`)
		return
	}
	switch {
	case m == echoToken && isToken, m == echoAPI && !isToken:
		echo(w, r, status)
	case m == revokeIssued && isToken:
		// Buffered, so the token is dead before the provider can use it.
		buf := httptest.NewRecorder()
		rc.next.ServeHTTP(buf, r)
		revoke()
		for k, v := range buf.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(buf.Code)
		_, _ = w.Write(buf.Body.Bytes())
	case m == holdAPI && !isToken:
		select {
		case <-held:
		default:
			close(held)
		}
		select {
		case <-r.Context().Done():
		case <-rc.release:
		}
	default:
		rc.next.ServeHTTP(w, r)
	}
}

// reject switches to rejectValue for the given forms of one value.
func (rc *recorder) reject(forms ...string) {
	rc.mu.Lock()
	rc.mode, rc.poison = rejectValue, nil
	for _, f := range forms {
		rc.poison = append(rc.poison, strings.ToLower(f))
	}
	rc.mu.Unlock()
}

// carriesPoison reports whether r's decoded URL or body holds a poison
// form; the body is left for the mock to read.
func (rc *recorder) carriesPoison(r *http.Request) bool {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	text := r.URL.RequestURI() + "\n" + string(body)
	if u, err := url.QueryUnescape(r.URL.RawQuery); err == nil {
		text += "\n" + u
	}
	text = strings.ToLower(text)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, p := range rc.poison {
		if strings.Contains(text, p) {
			return true
		}
	}
	return false
}

// echo answers with status and a body that starts with the request's
// credentials: its Authorization header and its form.
func echo(w http.ResponseWriter, r *http.Request, status int) {
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(status)
	// #nosec G705 -- a test vendor echoing the request to the provider under test (which must not leak it), never to a browser
	fmt.Fprintf(w, "Authorization: %s\nbody: %s\nrequest: %s %s\n", r.Header.Get("Authorization"), body, r.Method, r.URL.RequestURI())
}

// syncBuffer is a log sink safe for concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// statusOf is the vendor status an error carries, 0 if none.
func statusOf(err error) int {
	var se *providers.StatusError
	if errors.As(err, &se) {
		return se.Status
	}
	return 0
}

// result is one lookup's outcome, passed between goroutines.
type result struct {
	recs []providers.Record
	err  error
}

func async(ctx context.Context, run func(context.Context) ([]providers.Record, error)) <-chan result {
	ch := make(chan result, 1)
	go func() {
		recs, err := run(ctx)
		ch <- result{recs, err}
	}()
	return ch
}

// refusals counts the requests rejectValue refused.
func (rc *recorder) refusals() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.refused
}

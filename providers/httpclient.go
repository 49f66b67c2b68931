package providers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/postured/postured/internal/logging"
	"golang.org/x/time/rate"

	"github.com/postured/postured/internal/conf"
)

// HTTPConfig tunes how a provider talks to its vendor API. Vendor configs
// embed it with `yaml:",inline"`; zero fields take the vendor's defaults.
type HTTPConfig struct {
	// MaxConcurrency caps requests in flight to the vendor.
	MaxConcurrency int `yaml:"max_concurrency,omitempty"`
	// RequestsPerSecond is the request budget (every attempt, retries
	// included, spends one); Burst is how many may go at once.
	RequestsPerSecond float64 `yaml:"requests_per_second,omitempty"`
	Burst             int     `yaml:"burst,omitempty"`
	// RetryMax is how many times a failed request is retried.
	RetryMax int `yaml:"retry_max,omitempty"`
	// RetryWaitMin/Max bound the backoff between attempts. A vendor asking
	// for a longer wait than RetryWaitMax (Retry-After) is not waited for:
	// the call fails with a *RateLimitedError instead, so one batch never
	// stalls on a vendor's long cool-down.
	RetryWaitMin conf.Duration `yaml:"retry_wait_min,omitempty"`
	RetryWaitMax conf.Duration `yaml:"retry_wait_max,omitempty"`
	// RequestTimeout bounds one attempt.
	RequestTimeout conf.Duration `yaml:"request_timeout,omitempty"`
}

// Defaults fills zero fields from def.
func (h *HTTPConfig) Defaults(def HTTPConfig) {
	if h.MaxConcurrency == 0 {
		h.MaxConcurrency = def.MaxConcurrency
	}
	if h.RequestsPerSecond == 0 {
		h.RequestsPerSecond = def.RequestsPerSecond
	}
	if h.Burst == 0 {
		h.Burst = def.Burst
	}
	if h.RetryMax == 0 {
		h.RetryMax = def.RetryMax
	}
	if h.RetryWaitMin == 0 {
		h.RetryWaitMin = def.RetryWaitMin
	}
	if h.RetryWaitMax == 0 {
		h.RetryWaitMax = def.RetryWaitMax
	}
	if h.RequestTimeout == 0 {
		h.RequestTimeout = def.RequestTimeout
	}
}

// Validate reports nonsensical settings.
func (h *HTTPConfig) Validate() error {
	switch {
	case h.MaxConcurrency < 1:
		return fmt.Errorf("max_concurrency must be >= 1, got %d", h.MaxConcurrency)
	case !(h.RequestsPerSecond > 0):
		return fmt.Errorf("requests_per_second must be > 0, got %v", h.RequestsPerSecond)
	case h.Burst < 1:
		return fmt.Errorf("burst must be >= 1, got %d", h.Burst)
	case h.RetryMax < 0:
		return fmt.Errorf("retry_max must be >= 0, got %d", h.RetryMax)
	case h.RetryWaitMin <= 0 || h.RetryWaitMax < h.RetryWaitMin:
		return fmt.Errorf("need 0 < retry_wait_min <= retry_wait_max, got %s and %s", h.RetryWaitMin, h.RetryWaitMax)
	case h.RequestTimeout <= 0:
		return fmt.Errorf("request_timeout must be > 0, got %s", h.RequestTimeout)
	}
	return nil
}

// DefaultHTTP is a conservative starting point vendors adjust.
var DefaultHTTP = HTTPConfig{
	MaxConcurrency:    4,
	RequestsPerSecond: 10,
	Burst:             5,
	RetryMax:          3,
	RetryWaitMin:      conf.Duration(200 * time.Millisecond),
	RetryWaitMax:      conf.Duration(5 * time.Second),
	RequestTimeout:    conf.Duration(15 * time.Second),
}

// maxResponseBytes bounds what we read from a vendor; the largest legitimate
// answer (5000 Falcon device records) is a few MB.
const maxResponseBytes = 64 << 20

// ClientOptions configures a Client.
type ClientOptions struct {
	// Provider names the provider in every error ("jamf: list computers: ...").
	Provider string
	HTTP     HTTPConfig
	// Token, when set, authorises every request with a bearer token and is
	// invalidated and refetched once when the vendor answers 401.
	Token *TokenSource
	// RetryAfter reads the vendor's "wait this long" signal from a 429/503.
	// Nil means the standard Retry-After header (seconds or HTTP date).
	RetryAfter func(*http.Response) (time.Duration, bool)
	// OnRetry, if set, is told about every retry and the wait before it.
	OnRetry func(status int, wait time.Duration)
	// ObserveResponse, if set, is told the status of every attempt's
	// answer, retried ones included, or 0 when the vendor could not be
	// reached; not attempts the caller's context ended.
	ObserveResponse func(status int)
	Logger          *slog.Logger
}

// Client is the retrying, rate-limited, authenticated HTTP client every
// vendor package talks through.
type Client struct {
	provider   string
	rc         *retryablehttp.Client
	token      *TokenSource
	sem        chan struct{}
	retryAfter func(*http.Response) (time.Duration, bool)
	logger     *slog.Logger
}

// NewClient builds a Client; opts.HTTP must be valid.
func NewClient(opts ClientOptions) (*Client, error) {
	if err := opts.HTTP.Validate(); err != nil {
		return nil, fmt.Errorf("%s: http: %w", opts.Provider, err)
	}
	logger := logging.OrDiscard(opts.Logger)
	retryAfter := opts.RetryAfter
	if retryAfter == nil {
		retryAfter = StandardRetryAfter
	}
	c := &Client{
		provider:   opts.Provider,
		token:      opts.Token,
		sem:        make(chan struct{}, opts.HTTP.MaxConcurrency),
		retryAfter: retryAfter,
		logger:     logger,
	}
	c.rc = newRetryClient(opts.HTTP, retryAfter, opts.OnRetry, opts.ObserveResponse)
	if c.token != nil {
		c.rc.PrepareRetry = func(req *http.Request) error {
			// The token may have been refreshed during the backoff.
			tok, err := c.token.Token(req.Context())
			if err != nil {
				return &prepareError{err}
			}
			req.Header.Set("Authorization", "Bearer "+tok)
			return nil
		}
	}
	return c, nil
}

// newRetryClient builds the go-retryablehttp client shared by API and token
// calls: budgeted transport, capped vendor-aware backoff, no logging (it
// would print query strings, which carry device identifiers).
func newRetryClient(h HTTPConfig, retryAfter func(*http.Response) (time.Duration, bool), onRetry func(int, time.Duration), observe func(int)) *retryablehttp.Client {
	limiter := rate.NewLimiter(rate.Limit(h.RequestsPerSecond), h.Burst)
	rc := retryablehttp.NewClient()
	rc.Logger = nil
	rc.RetryMax = h.RetryMax
	rc.RetryWaitMin = time.Duration(h.RetryWaitMin)
	rc.RetryWaitMax = time.Duration(h.RetryWaitMax)
	rc.HTTPClient = &http.Client{
		Timeout:   time.Duration(h.RequestTimeout),
		Transport: &budgetTransport{limiter: limiter, next: http.DefaultTransport, observe: observe},
		// Never follow redirects with a bearer token attached: a vendor
		// redirect is reported, not obeyed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	maxWait := time.Duration(h.RetryWaitMax)
	rc.CheckRetry = func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
			if d, ok := retryAfter(resp); ok && d > maxWait {
				return false, nil // handed back to the caller as a RateLimitedError
			}
		}
		if resp != nil && resp.StatusCode == http.StatusUnauthorized {
			return false, nil // Client.Do refreshes the token and retries once
		}
		return retryablehttp.ErrorPropagatedRetryPolicy(ctx, resp, err)
	}
	rc.Backoff = func(lo, hi time.Duration, attempt int, resp *http.Response) time.Duration {
		wait := retryablehttp.DefaultBackoff(lo, hi, attempt, nil)
		if resp != nil {
			if d, ok := retryAfter(resp); ok {
				wait = min(d, hi)
			}
		}
		if onRetry != nil {
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			onRetry(status, wait)
		}
		return wait
	}
	// Hand the last response (or error) back instead of a "giving up" error
	// that would embed the URL and lose the status.
	rc.ErrorHandler = func(resp *http.Response, err error, _ int) (*http.Response, error) {
		var pe *prepareError
		if errors.As(err, &pe) {
			// The previous response was already drained for the retry
			// that could not be prepared: report why, not the response.
			if resp != nil {
				_ = resp.Body.Close()
			}
			return nil, pe.err
		}
		if resp != nil {
			return resp, nil
		}
		return nil, err
	}
	return rc
}

// prepareError marks a failure to prepare a retry (token refresh).
type prepareError struct{ err error }

func (e *prepareError) Error() string { return e.err.Error() }

// budgetTransport spends one unit of the request budget per attempt, and
// reports each attempt's status to observe.
type budgetTransport struct {
	limiter *rate.Limiter
	next    http.RoundTripper
	observe func(status int)
}

func (t *budgetTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.limiter.Wait(req.Context()); err != nil {
		return nil, err
	}
	resp, err := t.next.RoundTrip(req)
	if t.observe != nil && req.Context().Err() == nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.observe(status)
	}
	return resp, err
}

// Response is a vendor answer, fully read.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// StatusError is a vendor answer with a non-2xx status.
type StatusError struct {
	Status int
	// Body is the start of the vendor's error body, for the operator.
	Body string
}

func (e *StatusError) Error() string {
	if e.Body == "" {
		return fmt.Sprintf("status %d", e.Status)
	}
	return fmt.Sprintf("status %d: %s", e.Status, e.Body)
}

// RateLimitedError means the vendor asked us to back off for longer than we
// are willing to wait inside one request.
type RateLimitedError struct {
	RetryAfter time.Duration
}

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("rate limited by vendor, retry after %s", e.RetryAfter)
}

// Request is one vendor call.
type Request struct {
	Method string
	URL    string
	// Body is sent as is; JSON sets Content-Type application/json.
	Body   []byte
	Header http.Header
}

// Do performs req with retries, budget, concurrency limit and auth. It
// returns the response for every status; err is non-nil for transport
// failures and non-2xx statuses (a *StatusError or *RateLimitedError,
// wrapped with the provider and op), in which case resp is still set when
// the vendor answered. Errors never contain the request URL or query.
func (c *Client) Do(ctx context.Context, op string, req Request) (*Response, error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, c.wrap(op, ctx.Err())
	}
	defer func() { <-c.sem }()

	start := time.Now()
	resp, err := c.do(ctx, req)
	if err == nil && resp.Status == http.StatusUnauthorized && c.token != nil {
		// A token can be revoked or expire early; refetch once.
		c.token.Invalidate(resp.sentToken)
		resp, err = c.do(ctx, req)
	}
	if err != nil {
		return nil, c.wrap(op, err)
	}
	c.logger.LogAttrs(ctx, slog.LevelDebug, "vendor call",
		slog.String("op", op), slog.String("method", req.Method), slog.String("path", pathOnly(req.URL)),
		slog.Int("status", resp.Status), slog.Duration("duration", time.Since(start)))
	out := &resp.Response
	if resp.Status >= 200 && resp.Status < 300 {
		return out, nil
	}
	if resp.Status == http.StatusTooManyRequests || resp.Status == http.StatusServiceUnavailable {
		if d, ok := c.retryAfter(&http.Response{StatusCode: resp.Status, Header: resp.Header}); ok {
			return out, c.wrap(op, &RateLimitedError{RetryAfter: d})
		}
	}
	// A vendor or proxy may echo the request, bearer token included, in
	// its error body.
	body := resp.Body
	if tok := []byte(resp.sentToken); len(tok) > 0 && bytes.Contains(body, tok) {
		body = bytes.ReplaceAll(body, tok, []byte(conf.Redacted))
	}
	return out, c.wrap(op, &StatusError{Status: resp.Status, Body: Snippet(body)})
}

type sentResponse struct {
	Response
	sentToken string
}

func (c *Client) do(ctx context.Context, req Request) (*sentResponse, error) {
	var body any
	if req.Body != nil {
		body = req.Body
	}
	rreq, err := retryablehttp.NewRequestWithContext(ctx, req.Method, req.URL, body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", redactURLError(err))
	}
	for k, v := range req.Header {
		rreq.Header[k] = v
	}
	if rreq.Header.Get("Accept") == "" {
		rreq.Header.Set("Accept", "application/json")
	}
	if c.token != nil {
		tok, err := c.token.Token(ctx)
		if err != nil {
			return nil, err
		}
		rreq.Header.Set("Authorization", "Bearer "+tok)
	}
	hresp, err := c.rc.Do(rreq)
	if err != nil {
		return nil, redactURLError(err)
	}
	defer hresp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(hresp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read response: %w", redactURLError(err))
	}
	if len(b) > maxResponseBytes {
		return nil, fmt.Errorf("response larger than %d bytes", maxResponseBytes)
	}
	sent := strings.TrimPrefix(hresp.Request.Header.Get("Authorization"), "Bearer ")
	return &sentResponse{Response: Response{Status: hresp.StatusCode, Header: hresp.Header, Body: b}, sentToken: sent}, nil
}

// GetJSON GETs url and decodes a 2xx JSON body into out.
func (c *Client) GetJSON(ctx context.Context, op, url string, out any) error {
	resp, err := c.Do(ctx, op, Request{Method: http.MethodGet, URL: url})
	if err != nil {
		return err
	}
	return c.decode(op, resp, out)
}

// PostJSON POSTs in as JSON to url and decodes a 2xx JSON body into out.
func (c *Client) PostJSON(ctx context.Context, op, url string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return c.wrap(op, fmt.Errorf("encode request: %w", err))
	}
	resp, err := c.Do(ctx, op, Request{Method: http.MethodPost, URL: url, Body: b,
		Header: http.Header{"Content-Type": {"application/json"}}})
	if err != nil {
		return err
	}
	return c.decode(op, resp, out)
}

// DecodeJSON decodes a vendor body into out with an error that names the
// provider and operation; malformed vendor JSON is an error, never a panic.
func (c *Client) DecodeJSON(op string, body []byte, out any) error {
	if err := json.Unmarshal(body, out); err != nil {
		return c.wrap(op, fmt.Errorf("decode response: %w", err))
	}
	return nil
}

func (c *Client) decode(op string, resp *Response, out any) error {
	if out == nil {
		return nil
	}
	return c.DecodeJSON(op, resp.Body, out)
}

func (c *Client) wrap(op string, err error) error {
	return fmt.Errorf("%s: %s: %w", c.provider, op, err)
}

// StandardRetryAfter reads a Retry-After header in seconds (fractions
// allowed, as Graph sends) or as an HTTP date.
func StandardRetryAfter(resp *http.Response) (time.Duration, bool) {
	v := strings.TrimSpace(resp.Header.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s < 0 || math.IsNaN(s) || math.IsInf(s, 0) {
			return 0, false
		}
		return time.Duration(math.Round(min(s, 24*3600) * float64(time.Second))), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0), true
	}
	return 0, false
}

// Snippet is the start of a vendor body for an error message: trimmed,
// valid UTF-8, at most 300 bytes. Only that start is looked at: an error
// answer can be a whole page of records (Falcon's partial 404s).
func Snippet(b []byte) string {
	const max = 300
	b = bytes.TrimSpace(b)
	cut := len(b) > max
	if cut {
		b = b[:max]
	}
	// A rune split by the cut is invalid too, and dropped.
	s := strings.TrimSpace(strings.ToValidUTF8(string(b), ""))
	if cut {
		s += "..."
	}
	return s
}

// redactURLError drops the URL (and with it the query, which carries device
// identifiers and sometimes credentials) from a *url.Error.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s: %w", ue.Op, pathOnly(ue.URL), ue.Err)
	}
	return err
}

func pathOnly(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparseable url>"
	}
	return u.Path
}

// Sleep waits d, or until ctx ends and then returns its error: the one
// wait vendors use between calls (throttling, retry backoff), so that a
// caller who has gone stops the wait with it.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

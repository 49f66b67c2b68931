package crowdstrike

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/postured/postured/providers"
)

// Falcon API paths; each endpoint carries its own version
// (https://falconpy.io/Service-Collections/Hosts.html,
// https://falconpy.io/Service-Collections/Zero-Trust-Assessment.html).
const (
	tokenPath           = "/oauth2/token" // #nosec G101 -- a URL path, not a credential
	combinedDevicesPath = "/devices/combined/devices/v1"
	assessmentsPath     = "/zero-trust-assessment/entities/assessments/v1"
	scoresPath          = "/zero-trust-assessment/queries/assessments/v1"
)

// Falcon API limits (CrowdStrike swagger as generated into falconpy
// src/falconpy/_endpoint/_hosts.py; FQL page
// https://falconpy.io/Usage/Falcon-Query-Language.html).
const (
	// maxCombinedLimit is CombinedDevicesByFilter's largest limit.
	maxCombinedLimit = 10000
	// maxZTAIDs: getAssessmentV1 documents no cap; 100 keeps the query
	// string near 4 KB, clear of proxy URL limits.
	maxZTAIDs = 100
	// maxScoresLimit is getAssessmentsByScoreV1's largest limit.
	maxScoresLimit = 1000
	// maxFQLProperties: "A FQL statement can have a maximum of 20
	// properties defined"; a bracket list counts as one, every OR-ed
	// single term as one.
	maxFQLProperties = 20
	// maxFQLValues bounds the entries in one statement's bracket lists
	// (falconpy samples/hosts/serial_search.py sends 250); 200 keeps the
	// URL near 5 KB.
	maxFQLValues = 200
	// maxFilterBytes bounds one URL-encoded statement, so that long
	// identifiers spread over more statements instead of hitting a URL
	// limit (Falcon's is undocumented; proxies commonly refuse over 8 KB).
	maxFilterBytes = 6000
)

// hostFields are the host properties postured reads: the combined endpoint
// returns only these, which keeps a 10000-host page small.
var hostFields = strings.Join([]string{"device_id", "serial_number", "mac_address", "connection_mac_address",
	"hostname", "email", "last_login_user", "last_seen", "status"}, ",")

// tokenRefreshEarly renews a token this long before it expires (falconpy's
// renew_window).
const tokenRefreshEarly = 2 * time.Minute

// apiError is one entry of an envelope's errors.
type apiError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	ID      string `json:"id,omitempty"`
}

// envelope is the body of every Falcon answer.
type envelope[T any] struct {
	Meta struct {
		Pagination json.RawMessage `json:"pagination"`
		TraceID    string          `json:"trace_id"`
	} `json:"meta"`
	Resources []T        `json:"resources"`
	Errors    []apiError `json:"errors"`
}

// tokenPaging is the pagination of a token-paged listing: the next page's
// token is Offset (CombinedDevicesByFilter) or After
// (getAssessmentsByScoreV1), empty after the last page.
type tokenPaging struct {
	Offset string `json:"offset"`
	After  string `json:"after"`
	Limit  int    `json:"limit"`
	Total  int    `json:"total"`
}

// listedScore is one entry of getAssessmentsByScoreV1: a host's overall
// Zero Trust Assessment score.
type listedScore struct {
	AID   string `json:"aid"`
	Score *int   `json:"score"`
}

// host is the part of a Falcon device record postured reads.
type host struct {
	DeviceID             string `json:"device_id"`
	SerialNumber         string `json:"serial_number"`
	MACAddress           string `json:"mac_address"`
	ConnectionMACAddress string `json:"connection_mac_address"`
	Hostname             string `json:"hostname"`
	Email                string `json:"email"`
	LastLoginUser        string `json:"last_login_user"`
	LastSeen             string `json:"last_seen"`
	Status               string `json:"status"`
}

// assessment is the part of a Zero Trust Assessment postured reads.
type assessment struct {
	AID        string `json:"aid"`
	Assessment struct {
		Overall *int `json:"overall"`
	} `json:"assessment"`
}

// tokenResponse is the 201 body of POST /oauth2/token.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
}

// fetchToken runs the client-credentials exchange Falcon's way: form fields
// client_id, client_secret and member_cid, no grant_type, 201 on success.
// Written by hand rather than with x/oauth2 to read X-Cs-Region and the
// Falcon error envelope.
func (p *Provider) fetchToken(ctx context.Context) (providers.Token, error) {
	tok, err := p.requestToken(ctx)
	return tok, providers.RedactSecret(err, p.secret)
}

func (p *Provider) requestToken(ctx context.Context) (providers.Token, error) {
	form := url.Values{"client_id": {p.clientID}, "client_secret": {p.secret.Reveal()}}
	if p.memberCID != "" {
		form.Set("member_cid", p.memberCID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+tokenPath, strings.NewReader(form.Encode()))
	if err != nil {
		return providers.Token{}, fmt.Errorf("build token request: %w", redactURLError(err))
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := p.tokenHTTP.Do(req)
	if err != nil {
		return providers.Token{}, redactURLError(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return providers.Token{}, fmt.Errorf("read token response: %w", redactURLError(err))
	}
	region := resp.Header.Get("X-Cs-Region")
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return providers.Token{}, fmt.Errorf("token endpoint redirected (%d): the API client belongs to cloud %q, set base_url to it", resp.StatusCode, region)
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return providers.Token{}, fmt.Errorf("token endpoint answered %d: %s (check client_id, client_secret, member_cid and the API client's IP allowlist)",
			resp.StatusCode, falconMessage(body))
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return providers.Token{}, &providers.StatusError{Status: resp.StatusCode, Body: falconMessage(body)}
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		return providers.Token{}, fmt.Errorf("decode token response: %w", err)
	}
	if cloud := cloudOf(p.base); cloud != "" && region != "" && !strings.EqualFold(cloud, region) {
		p.logger.Warn("falcon API client belongs to another cloud; set base_url to it", "configured", cloud, "x_cs_region", region)
	}
	ttl := time.Duration(tr.ExpiresIn) * time.Second
	if ttl <= 0 {
		ttl = 30 * time.Minute // "Tokens expire after 30 minutes"
	}
	return providers.Token{Value: tr.AccessToken, Expiry: time.Now().Add(ttl)}, nil
}

// falconMessage is the first error message of a Falcon error body, or the
// start of the body when it is not one.
func falconMessage(body []byte) string {
	var env envelope[json.RawMessage]
	if json.Unmarshal(body, &env) == nil && len(env.Errors) > 0 && env.Errors[0].Message != "" {
		return env.Errors[0].Message
	}
	return providers.Snippet(body)
}

func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s: %w", ue.Op, tokenPath, ue.Err)
	}
	return err
}

// call performs one Falcon API call and decodes the envelope into out.
// When partialOK, a 404 whose body is an envelope with resources is a
// partial answer, not an error: the ZTA endpoint answers so when some ids
// are unknown or unassessed.
func (p *Provider) call(ctx context.Context, op string, req providers.Request, partialOK bool, out any) error {
	if err := p.gate.wait(ctx); err != nil {
		return fmt.Errorf("%s: %s: %w", p.name, op, err)
	}
	resp, err := p.client.Do(ctx, op, req)
	if resp != nil {
		p.gate.observe(resp.Header)
	}
	if err != nil {
		if !partialOK || resp == nil || resp.Status != http.StatusNotFound || !hasResources(resp.Body) {
			return err
		}
	}
	return p.client.DecodeJSON(op, resp.Body, out)
}

// hasResources reports whether body is a JSON object with a resources key,
// which tells a partial 404 from a gateway's "no such route" 404.
func hasResources(body []byte) bool {
	var probe struct {
		Resources json.RawMessage `json:"resources"`
	}
	return json.Unmarshal(body, &probe) == nil && probe.Resources != nil && string(probe.Resources) != "null"
}

// RetryAfter reads Falcon's 429 signal, X-RateLimit-RetryAfter: an epoch
// time in seconds (what gofalcon, PSFalcon and observed answers use), or in
// milliseconds when the value exceeds 10^12 (what the swagger text says).
// Without it, a standard Retry-After is honoured. It is a
// providers.ClientOptions.RetryAfter.
func RetryAfter(resp *http.Response) (time.Duration, bool) {
	return retryAfterAt(resp, time.Now())
}

// minRetryAfter is the least we wait on a 429: the header has one-second
// resolution and may already be in the past when it arrives.
const minRetryAfter = time.Second

func retryAfterAt(resp *http.Response, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(resp.Header.Get("X-Ratelimit-Retryafter"))
	n, err := strconv.ParseInt(v, 10, 64)
	if v == "" || err != nil || n <= 0 {
		return providers.StandardRetryAfter(resp)
	}
	at := time.Unix(n, 0)
	if n > 1e12 {
		at = time.UnixMilli(n)
	}
	return min(max(at.Sub(now), minRetryAfter), 24*time.Hour), true
}

// gate holds back every request of the provider while Falcon has asked for
// a pause. After a 429 that is until X-RateLimit-RetryAfter: the pool is the
// customer's, shared by every goroutine here and every other integration,
// so a goroutine that went on sending would only be refused too (gofalcon
// pauses all its requests the same way). When X-RateLimit-Remaining runs
// low it is a short pause, as gofalcon's: 200 ms at <= 10, 500 ms at <= 5.
type gate struct {
	// maxWait is the longest pause a request waits out; a longer one fails
	// it at once with a *providers.RateLimitedError, as a Retry-After over
	// retry_wait_max does, so a batch never stalls on a long cool-down.
	maxWait time.Duration

	mu    sync.Mutex
	until time.Time
}

// hold pauses requests until t, unless they are paused longer already.
func (g *gate) hold(t time.Time) {
	g.mu.Lock()
	if t.After(g.until) {
		g.until = t
	}
	g.mu.Unlock()
}

// observe reads the budget Falcon reports left on every answer.
func (g *gate) observe(h http.Header) {
	rem, err := strconv.Atoi(h.Get("X-Ratelimit-Remaining"))
	if err != nil {
		return
	}
	switch {
	case rem <= 5:
		g.hold(time.Now().Add(500 * time.Millisecond))
	case rem <= 10:
		g.hold(time.Now().Add(200 * time.Millisecond))
	}
}

// wait returns once requests may be sent again, or fails if that is
// further off than maxWait or ctx ends first.
func (g *gate) wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	g.mu.Lock()
	d := time.Until(g.until)
	g.mu.Unlock()
	if d <= 0 {
		return nil
	}
	if d > g.maxWait {
		return &providers.RateLimitedError{RetryAfter: d}
	}
	return providers.Sleep(ctx, d)
}

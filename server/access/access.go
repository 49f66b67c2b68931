// Package access verifies Cloudflare Access tokens against the team's
// signing keys: it fetches the keys from the team's certs URL, rate limits
// refetches, and checks the application token Access puts on every request
// it lets through.
package access

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
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// Config says whose Access tokens to accept.
type Config struct {
	// TeamDomain is "<team>.cloudflareaccess.com", with or without scheme.
	TeamDomain string
	// Audiences: a token's aud must contain one of these AUD tags.
	Audiences []string
	// CertsURL overrides https://<team>/cdn-cgi/access/certs.
	CertsURL string
	// Leeway tolerated on exp and nbf, at most 60s.
	Leeway time.Duration
	// RefetchCooldown is the least time between two certs fetches, after a
	// success or a failure; tokens with an unknown kid inside it are
	// rejected without a fetch.
	RefetchCooldown time.Duration
	// Logger receives certs fetch failures at warn (what the endpoint
	// answered at debug). Nil: discarded.
	Logger *slog.Logger
}

// maxLeeway caps clock-skew tolerance on Access tokens.
const maxLeeway = 60 * time.Second

// TeamIssuer normalises a team domain to the iss Access puts in tokens:
// "https://<host>", no path, no trailing slash.
func TeamIssuer(teamDomain string) (string, error) {
	d := strings.TrimSpace(teamDomain)
	if d == "" {
		return "", errors.New("team domain is empty")
	}
	if !strings.Contains(d, "://") {
		d = "https://" + d
	}
	u, err := url.Parse(d)
	if err != nil || u.Host == "" || u.Scheme != "https" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", fmt.Errorf("team domain %q must be a host like myteam.cloudflareaccess.com", teamDomain)
	}
	return "https://" + u.Host, nil
}

// KeySet holds the team's Access signing keys, fetched from the certs URL
// by go-oidc, which refetches when a token names a kid it does not know
// (key rotation). Fetches are rate limited: see certsTransport. One KeySet
// serves every verifier of the team's tokens, so they share its fetches and
// its cooldown.
type KeySet struct {
	oidc.KeySet
	url       string
	client    *http.Client
	transport *certsTransport
}

// certsTimeout bounds one certs fetch.
const certsTimeout = 5 * time.Second

// NewKeySet builds the key set of cfg's team: the certs at CertsURL, else
// at https://<team>/cdn-cgi/access/certs. Nothing is fetched until Warm or
// Check is called or the first token arrives.
func NewKeySet(cfg Config) (*KeySet, error) {
	certsURL := cfg.CertsURL
	if certsURL == "" {
		iss, err := TeamIssuer(cfg.TeamDomain)
		if err != nil {
			return nil, fmt.Errorf("access: %w", err)
		}
		certsURL = iss + "/cdn-cgi/access/certs"
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	t := &certsTransport{next: http.DefaultTransport, cooldown: cfg.RefetchCooldown, now: time.Now, logger: logger}
	hc := &http.Client{Timeout: certsTimeout, Transport: t}
	// The ctx is kept by go-oidc for every future fetch: it must not be a
	// request or startup context that ends.
	ks := oidc.NewRemoteKeySet(oidc.ClientContext(context.Background(), hc), certsURL)
	return &KeySet{KeySet: ks, url: certsURL, client: hc, transport: t}, nil
}

// LastFetch reports when the certs were last fetched successfully, and the
// error of the last attempt if it failed. It never fetches.
func (k *KeySet) LastFetch() (time.Time, error) {
	k.transport.mu.Lock()
	defer k.transport.mu.Unlock()
	return k.transport.lastOK, k.transport.lastErr
}

// Check fetches the certs now, subject to the cooldown (inside it, the last
// outcome is answered again), with the same 5 s bound as go-oidc's fetches.
func (k *KeySet) Check(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return fmt.Errorf("access certs: %w", err)
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return fmt.Errorf("access certs: %w", err)
	}
	return resp.Body.Close()
}

// minWarmRetry keeps Warm from spinning on a tiny refetch_cooldown.
const minWarmRetry = time.Second

// Warm fetches the certs until one fetch succeeds or ctx ends, waiting a
// cooldown (at least a second) between attempts. Readiness only reports
// what was fetched, so without this a replica would stay unready until a
// token arrived, and a balancer that routes only to ready replicas would
// never send it one.
func (k *KeySet) Warm(ctx context.Context) {
	wait := max(k.transport.cooldown, minWarmRetry)
	for {
		if k.Check(ctx) == nil {
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// certsTransport fetches the certs document and, for cooldown after any
// fetch, answers further fetches from memory: the document after a
// success, the error after a failure. go-oidc refetches on every unknown
// kid and every failed signature, with no limit of its own, so without
// this every forged token (and, during a certs outage, every token) would
// cost a request to the team domain. A failed fetch is never papered over
// with an older document.
type certsTransport struct {
	next     http.RoundTripper
	cooldown time.Duration
	now      func() time.Time
	logger   *slog.Logger

	mu          sync.Mutex
	lastAttempt time.Time
	lastOK      time.Time
	lastErr     error
	body        []byte
	header      http.Header
	fetches     int
}

// maxCertsBytes bounds the certs document (a handful of keys).
const maxCertsBytes = 1 << 20

// errCertsFetch is what every certs failure wraps, so callers can tell an
// outage from a bad token.
var errCertsFetch = errors.New("access certs unavailable")

func (t *certsTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.lastAttempt.IsZero() && t.now().Sub(t.lastAttempt) < t.cooldown {
		if t.lastErr != nil {
			return nil, t.lastErr
		}
		return t.cached(req), nil
	}
	t.lastAttempt = t.now()
	t.fetches++
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, t.fail(fmt.Errorf("%w: fetch: %w", errCertsFetch, err), nil)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxCertsBytes+1))
	switch {
	case err != nil:
		return nil, t.fail(fmt.Errorf("%w: read: %w", errCertsFetch, err), nil)
	case resp.StatusCode != http.StatusOK:
		return nil, t.fail(fmt.Errorf("%w: answered %d", errCertsFetch, resp.StatusCode), body)
	case len(body) > maxCertsBytes:
		return nil, t.fail(fmt.Errorf("%w: document too large", errCertsFetch), nil)
	case !json.Valid(body):
		return nil, t.fail(fmt.Errorf("%w: document is not JSON", errCertsFetch), body)
	}
	t.lastOK, t.lastErr, t.body, t.header = t.now(), nil, body, resp.Header.Clone()
	return t.cached(req), nil
}

// fail records err as the outcome of the last fetch and logs it; what the
// endpoint answered goes to debug only (it may be an error page of any
// size).
func (t *certsTransport) fail(err error, answer []byte) error {
	t.lastErr = err
	t.logger.Warn("access certs fetch failed", "error", err)
	if len(answer) > 0 {
		t.logger.Debug("access certs answer", "body", string(answer[:min(len(answer), 512)]))
	}
	return err
}

func (t *certsTransport) cached(req *http.Request) *http.Response {
	return &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Header: t.header.Clone(),
		Body: io.NopCloser(bytes.NewReader(t.body)), ContentLength: int64(len(t.body)), Request: req}
}

// Verifier checks the Cf-Access-Jwt-Assertion Access puts on every
// request it lets through to us.
type Verifier struct {
	verifier  *oidc.IDTokenVerifier
	audiences []string
	leeway    time.Duration
	now       func() time.Time
}

// Claims are the claims of a verified application token we use.
type Claims struct {
	Subject    string
	Email      string
	CommonName string // service token client id
	Type       string
}

// NewVerifier builds a verifier over keys for the team's tokens.
func NewVerifier(cfg Config, keys *KeySet) (*Verifier, error) {
	iss, err := TeamIssuer(cfg.TeamDomain)
	if err != nil {
		return nil, fmt.Errorf("access: %w", err)
	}
	if len(cfg.Audiences) == 0 || slices.Contains(cfg.Audiences, "") {
		return nil, errors.New("access: at least one non-empty audience (AUD tag) is required")
	}
	if cfg.Leeway < 0 || cfg.Leeway > maxLeeway {
		return nil, fmt.Errorf("access: leeway must be 0..%s", maxLeeway)
	}
	v := oidc.NewVerifier(iss, keys, &oidc.Config{
		// Several audiences are allowed, so aud is checked here, not by
		// go-oidc; exp and nbf too, because go-oidc allows 5 minutes of nbf
		// skew and none on exp.
		SkipClientIDCheck:    true,
		SkipExpiryCheck:      true,
		SupportedSigningAlgs: []string{oidc.RS256},
	})
	return &Verifier{verifier: v, audiences: cfg.Audiences, leeway: cfg.Leeway, now: time.Now}, nil
}

// Reasons a token is refused. ErrExpired and ErrWrongAudience are the
// classes a caller may tell the client; any other error is "invalid token".
var (
	ErrExpired       = errors.New("token expired")
	ErrWrongAudience = errors.New("token audience does not match")
	errTokenNotYet   = errors.New("token not valid yet (nbf)")
	errTokenNoExpiry = errors.New("token has no exp")
)

// Verify checks signature (RS256, kid from the team's certs), iss, aud,
// exp, nbf and iat. ctx bounds a certs fetch the check may need.
func (a *Verifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	tok, err := a.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(tok.Audience, func(aud string) bool { return slices.Contains(a.audiences, aud) }) {
		return nil, ErrWrongAudience
	}
	var c struct {
		Exp        *json.Number `json:"exp"`
		Nbf        *json.Number `json:"nbf"`
		Iat        *json.Number `json:"iat"`
		Sub        string       `json:"sub"`
		Email      string       `json:"email"`
		CommonName string       `json:"common_name"`
		Type       string       `json:"type"`
	}
	if err := tok.Claims(&c); err != nil {
		return nil, fmt.Errorf("decode claims: %w", err)
	}
	if err := checkTimes(c.Exp, c.Nbf, c.Iat, a.now(), a.leeway); err != nil {
		return nil, err
	}
	return &Claims{Subject: c.Sub, Email: c.Email, CommonName: c.CommonName, Type: c.Type}, nil
}

// checkTimes validates exp (required), nbf and iat (optional) against now
// with leeway. iat is only range-checked: Access's clock decides it.
func checkTimes(exp, nbf, iat *json.Number, now time.Time, leeway time.Duration) error {
	if exp == nil {
		return errTokenNoExpiry
	}
	t, err := NumericDate(*exp)
	if err != nil {
		return fmt.Errorf("exp: %w", err)
	}
	if now.After(t.Add(leeway)) {
		return ErrExpired
	}
	if nbf != nil {
		t, err := NumericDate(*nbf)
		if err != nil {
			return fmt.Errorf("nbf: %w", err)
		}
		if now.Add(leeway).Before(t) {
			return errTokenNotYet
		}
	}
	if iat != nil {
		if _, err := NumericDate(*iat); err != nil {
			return fmt.Errorf("iat: %w", err)
		}
	}
	return nil
}

// maxNumericDate is 9999-12-31T23:59:59Z, the last second RFC 3339 can
// write. Beyond it (or below 0) a claim is no time a real token carries,
// and converting it to nanoseconds would overflow int64 (past year 2262),
// wrapping a far-future nbf into the past.
const maxNumericDate = 253402300799

// errBadNumericDate is a time claim that is not a number of seconds in
// 1970..9999.
var errBadNumericDate = errors.New("not a NumericDate between 1970 and 9999")

// NumericDate converts a JWT time claim (RFC 7519 NumericDate: seconds
// since the epoch, fractions allowed) to a time, refusing anything outside
// 1970..9999, NaN and numbers too large for a float64.
func NumericDate(n json.Number) (time.Time, error) {
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return time.Time{}, errBadNumericDate
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*float64(time.Second))).UTC(), nil
}

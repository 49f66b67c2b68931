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
	// RefetchCooldown is the least time between two certs fetches; tokens
	// with an unknown kid inside it are rejected without a fetch.
	RefetchCooldown time.Duration
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
	transport *certsTransport
}

// NewKeySet builds the key set of cfg's team: the certs at CertsURL, else
// at https://<team>/cdn-cgi/access/certs. Nothing is fetched until the
// first token arrives or Check is called.
func NewKeySet(cfg Config) (*KeySet, error) {
	certsURL := cfg.CertsURL
	if certsURL == "" {
		iss, err := TeamIssuer(cfg.TeamDomain)
		if err != nil {
			return nil, fmt.Errorf("access: %w", err)
		}
		certsURL = iss + "/cdn-cgi/access/certs"
	}
	t := &certsTransport{next: http.DefaultTransport, cooldown: cfg.RefetchCooldown, now: time.Now}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: t}
	// The ctx is kept by go-oidc for every future fetch: it must not be a
	// request or startup context that ends.
	ks := oidc.NewRemoteKeySet(oidc.ClientContext(context.Background(), hc), certsURL)
	return &KeySet{KeySet: ks, url: certsURL, transport: t}, nil
}

// LastFetch reports when the certs were last fetched successfully, and the
// error of the last attempt if it failed.
func (k *KeySet) LastFetch() (time.Time, error) {
	k.transport.mu.Lock()
	defer k.transport.mu.Unlock()
	return k.transport.lastOK, k.transport.lastErr
}

// Check fetches the certs now (subject to the cooldown) to tell readiness
// whether they are reachable.
func (k *KeySet) Check(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return err
	}
	resp, err := k.transport.RoundTrip(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	_, lastErr := k.LastFetch()
	return lastErr
}

// certsTransport fetches the certs document and, for cooldown after a
// successful fetch, answers further fetches from memory. go-oidc refetches
// on every unknown kid and every failed signature, with no limit of its
// own, so without this every forged token would cost a request to the team
// domain. A failed fetch is never papered over: it returns the error.
type certsTransport struct {
	next     http.RoundTripper
	cooldown time.Duration
	now      func() time.Time

	mu      sync.Mutex
	lastOK  time.Time
	lastErr error
	body    []byte
	header  http.Header
	fetches int
}

// maxCertsBytes bounds the certs document (a handful of keys).
const maxCertsBytes = 1 << 20

func (t *certsTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.body != nil && t.now().Sub(t.lastOK) < t.cooldown {
		return t.cached(req), nil
	}
	t.fetches++
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		t.lastErr = fmt.Errorf("fetch access certs: %w", err)
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxCertsBytes+1))
	switch {
	case err != nil:
		t.lastErr = fmt.Errorf("read access certs: %w", err)
		return nil, t.lastErr
	case resp.StatusCode != http.StatusOK:
		t.lastErr = fmt.Errorf("access certs answered %d", resp.StatusCode)
	case len(body) > maxCertsBytes:
		t.lastErr = errors.New("access certs document too large")
		return nil, t.lastErr
	case !json.Valid(body):
		t.lastErr = errors.New("access certs document is not JSON")
	default:
		t.lastOK, t.lastErr, t.body, t.header = t.now(), nil, body, resp.Header.Clone()
		return t.cached(req), nil
	}
	return &http.Response{StatusCode: resp.StatusCode, Status: resp.Status, Header: resp.Header,
		Body: io.NopCloser(bytes.NewReader(body)), Request: req}, nil
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

// errTokenExpired and friends are the reasons a token is refused.
var (
	errTokenExpired  = errors.New("token expired")
	errTokenNotYet   = errors.New("token not valid yet (nbf)")
	errTokenAudience = errors.New("token audience does not match")
	errTokenNoExpiry = errors.New("token has no exp")
)

// Verify checks signature (RS256, kid from the team's certs), iss, aud,
// exp and nbf.
func (a *Verifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	tok, err := a.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(tok.Audience, func(aud string) bool { return slices.Contains(a.audiences, aud) }) {
		return nil, errTokenAudience
	}
	var c struct {
		Exp        *json.Number `json:"exp"`
		Nbf        *json.Number `json:"nbf"`
		Sub        string       `json:"sub"`
		Email      string       `json:"email"`
		CommonName string       `json:"common_name"`
		Type       string       `json:"type"`
	}
	if err := tok.Claims(&c); err != nil {
		return nil, fmt.Errorf("decode claims: %w", err)
	}
	if err := checkTimes(c.Exp, c.Nbf, a.now(), a.leeway, true); err != nil {
		return nil, err
	}
	return &Claims{Subject: c.Sub, Email: c.Email, CommonName: c.CommonName, Type: c.Type}, nil
}

// checkTimes validates exp (required when requireExp) and nbf against now
// with leeway.
func checkTimes(exp, nbf *json.Number, now time.Time, leeway time.Duration, requireExp bool) error {
	if exp == nil {
		if requireExp {
			return errTokenNoExpiry
		}
	} else {
		t, err := numericDate(*exp)
		if err != nil {
			return fmt.Errorf("exp: %w", err)
		}
		if now.After(t.Add(leeway)) {
			return errTokenExpired
		}
	}
	if nbf != nil {
		t, err := numericDate(*nbf)
		if err != nil {
			return fmt.Errorf("nbf: %w", err)
		}
		if now.Add(leeway).Before(t) {
			return errTokenNotYet
		}
	}
	return nil
}

func numericDate(n json.Number) (time.Time, error) {
	f, err := n.Float64()
	if err != nil {
		return time.Time{}, errors.New("not a number")
	}
	return time.Unix(0, int64(f*float64(time.Second))), nil
}

package jamf

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/postured/postured/internal/conf"
	"github.com/postured/postured/providers"
)

// Token endpoints. https://developer.jamf.com/jamf-pro/docs/client-credentials
// and https://developer.jamf.com/jamf-pro/docs/jamf-pro-api-overview.
const (
	// oauthTokenPath is current; Jamf has deprecated the unversioned path.
	oauthTokenPath = "/api/v1/oauth/token" // #nosec G101 -- a URL path, not a credential
	// legacyOAuthTokenPath is all that Jamf Pro before the versioned path
	// serves, so it is the fallback when oauthTokenPath is not a token
	// endpoint on the server.
	legacyOAuthTokenPath = "/api/oauth/token" // #nosec G101 -- a URL path, not a credential
	// basicTokenPath trades a user's basic credentials for a bearer token,
	// answered as {"token","expires"}.
	basicTokenPath = "/api/v1/auth/token" // #nosec G101 -- a URL path, not a credential
)

// tokenEarly is how long before expiry a token is refreshed.
const tokenEarly = 30 * time.Second

// maxTokenBody bounds a token endpoint answer.
const maxTokenBody = 1 << 20

// newTokenSource returns the token source for whichever credentials cfg
// holds. The fetch is written out rather than delegated to
// providers.ClientCredentials because falling back to the older path needs
// the token endpoint's status code, which that helper does not expose.
func newTokenSource(cfg *Config, base string) *providers.TokenSource {
	f := &tokenFetcher{base: base, hc: providers.TokenHTTPClient(cfg.HTTPConfig), now: time.Now}
	if cfg.ClientID == "" {
		f.user, f.password = cfg.Username, cfg.Password
		return providers.NewTokenSource(f.basic, tokenEarly)
	}
	f.clientID, f.clientSecret = cfg.ClientID, cfg.ClientSecret
	f.paths = []string{oauthTokenPath, legacyOAuthTokenPath}
	if cfg.TokenPath != "" {
		f.paths = []string{cfg.TokenPath}
	}
	return providers.NewTokenSource(f.oauth, tokenEarly)
}

type tokenFetcher struct {
	base string
	hc   *http.Client
	now  func() time.Time

	clientID     string
	clientSecret conf.Secret
	paths        []string
	path         atomic.Int32 // index into paths that last worked

	user     string
	password conf.Secret
}

// oauth runs the client-credentials grant, credentials in the form body,
// against the path that last worked and then the others. A server without
// a path answers in many ways (404, 405, a 401 from the API's own token
// filter, a redirect to or the HTML of the login page), so every answer
// that is not a token endpoint's (notTokenEndpoint) moves on to the next
// path; a token, a judgement of the request (an OAuth error, a 400), a
// 5xx or a failure to connect ends the search. When no path gives a
// token, the error is the first path's.
func (f *tokenFetcher) oauth(ctx context.Context) (providers.Token, error) {
	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {f.clientID},
		"client_secret": {f.clientSecret.Reveal()},
	}
	start := int(f.path.Load())
	var first error
	for n := range f.paths {
		i := (start + n) % len(f.paths)
		path := f.paths[i]
		body, err := f.post(ctx, path, []byte(form.Encode()), nil)
		if err == nil {
			if tok, ok := f.accessToken(body); ok {
				f.path.Store(int32(i)) // #nosec G115 -- i < len(f.paths), a handful of paths
				return tok, nil
			}
			err = fmt.Errorf("%s: not a token endpoint: the answer has no access_token: %s", path, providers.Snippet(body))
		} else if !notTokenEndpoint(err) {
			return providers.Token{}, &tokenError{providers.RedactSecret(err, f.clientSecret)}
		}
		if first == nil {
			first = err
		}
	}
	return providers.Token{}, &tokenError{providers.RedactSecret(first, f.clientSecret)}
}

// notTokenEndpoint reports an answer no token endpoint gives: 404, 405, a
// redirect, or a 401/403 in the Jamf Pro API's error shape
// ({"httpStatus": 401, ...}, where a token endpoint answers an OAuth
// error), empty or as an HTML page.
func notTokenEndpoint(err error) bool {
	var se *providers.StatusError
	if !errors.As(err, &se) {
		return false
	}
	switch {
	case se.Status == http.StatusNotFound, se.Status == http.StatusMethodNotAllowed, se.Status >= 300 && se.Status < 400:
		return true
	case se.Status == http.StatusUnauthorized, se.Status == http.StatusForbidden:
		var body struct {
			HTTPStatus *int `json:"httpStatus"`
		}
		return se.Body == "" || strings.HasPrefix(se.Body, "<") ||
			(json.Unmarshal([]byte(se.Body), &body) == nil && body.HTTPStatus != nil)
	}
	return false
}

// tokenError is a failure to get a token. It marks the statuses it
// carries as the token endpoint's, which say nothing about the API call
// that needed the token (its API version, its filter).
type tokenError struct{ err error }

func (e *tokenError) Error() string { return e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

// accessToken reads a token endpoint's 2xx answer; false when it is not
// one (an HTML page).
func (f *tokenFetcher) accessToken(body []byte) (providers.Token, bool) {
	var t struct {
		AccessToken string  `json:"access_token"`
		ExpiresIn   float64 `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &t); err != nil || t.AccessToken == "" {
		return providers.Token{}, false
	}
	now := f.now()
	var exp time.Time
	if t.ExpiresIn > 0 {
		exp = now.Add(time.Duration(t.ExpiresIn * float64(time.Second)))
	}
	return providers.Token{Value: t.AccessToken, Expiry: refreshAt(now, exp)}, true
}

// basic trades username and password for a bearer token.
func (f *tokenFetcher) basic(ctx context.Context) (providers.Token, error) {
	body, err := f.post(ctx, basicTokenPath, nil, func(r *http.Request) {
		r.SetBasicAuth(f.user, f.password.Reveal())
	})
	if err != nil {
		// An endpoint that echoes the request may carry the password raw
		// or inside the Authorization header.
		header := conf.Secret(base64.StdEncoding.EncodeToString([]byte(f.user + ":" + f.password.Reveal())))
		return providers.Token{}, &tokenError{providers.RedactSecret(providers.RedactSecret(err, f.password), header)}
	}
	var t struct {
		Token   string `json:"token"`
		Expires string `json:"expires"`
	}
	if err := json.Unmarshal(body, &t); err != nil {
		return providers.Token{}, &tokenError{fmt.Errorf("%s: decode response: %w", basicTokenPath, err)}
	}
	exp, _ := parseTime(t.Expires) // unparseable: no expiry, a 401 refreshes it
	return providers.Token{Value: t.Token, Expiry: refreshAt(f.now(), exp)}, nil
}

// post sends one token request and returns the 2xx body; other statuses
// come back as a *providers.StatusError.
func (f *tokenFetcher) post(ctx context.Context, path string, form []byte, auth func(*http.Request)) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.base+path, bytes.NewReader(form))
	if err != nil {
		return nil, fmt.Errorf("%s: build request: %w", path, err)
	}
	req.Header.Set("Accept", "application/json")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if auth != nil {
		auth(req)
	}
	resp, err := f.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is ours and harmless, but keep errors uniform
		}
		return nil, fmt.Errorf("post %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenBody))
	if err != nil {
		return nil, fmt.Errorf("%s: read response: %w", path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		se := &providers.StatusError{Status: resp.StatusCode, Body: providers.Snippet(body)}
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			return nil, fmt.Errorf("%s: credentials rejected: %w", path, se)
		}
		return nil, fmt.Errorf("%s: %w", path, se)
	}
	return body, nil
}

// refreshAt is the expiry to hand the token source: exp itself, except that
// a token living less than twice tokenEarly is used for half its life
// instead of being refetched on every call. Zero means unknown (a 401 then
// triggers the refresh).
func refreshAt(now, exp time.Time) time.Time {
	if exp.IsZero() {
		return exp
	}
	life := exp.Sub(now)
	switch {
	case life <= 0: // clock skew: trust the 401 path instead
		return time.Time{}
	case life < 2*tokenEarly:
		return now.Add(tokenEarly + life/2)
	}
	return exp
}

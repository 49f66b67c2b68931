package providers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/sync/singleflight"

	"github.com/postured/postured/internal/conf"
)

// Token is a bearer token and when it stops working.
type Token struct {
	Value  string
	Expiry time.Time // zero: never expires on its own
}

// TokenSource caches a bearer token, refreshes it before it expires and lets
// a caller that got a 401 throw it away. Concurrent refreshes collapse into
// one fetch, which runs detached from any one caller's cancellation so a
// caller that gives up does not fail the others.
type TokenSource struct {
	fetch func(context.Context) (Token, error)
	// early is how long before expiry a token is refreshed.
	early time.Duration
	now   func() time.Time

	mu  sync.Mutex
	cur Token
	sf  singleflight.Group
}

// tokenFetchTimeout bounds one token fetch.
const tokenFetchTimeout = 30 * time.Second

// NewTokenSource caches tokens obtained from fetch, refreshing them early
// before they expire.
func NewTokenSource(fetch func(context.Context) (Token, error), early time.Duration) *TokenSource {
	return &TokenSource{fetch: fetch, early: early, now: time.Now}
}

// Token returns a valid token, fetching one if needed.
func (ts *TokenSource) Token(ctx context.Context) (string, error) {
	if v, ok := ts.cached(); ok {
		return v, nil
	}
	ch := ts.sf.DoChan("token", func() (any, error) {
		// A flight that finished between our cache check and this one
		// starting has already refreshed the token.
		if v, ok := ts.cached(); ok {
			return v, nil
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tokenFetchTimeout)
		defer cancel()
		tok, err := ts.fetch(fctx)
		if err != nil {
			return nil, fmt.Errorf("fetch token: %w", err)
		}
		if tok.Value == "" {
			return nil, errors.New("fetch token: empty token in response")
		}
		ts.mu.Lock()
		ts.cur = tok
		ts.mu.Unlock()
		return tok.Value, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (ts *TokenSource) cached() (string, bool) {
	ts.mu.Lock()
	cur := ts.cur
	ts.mu.Unlock()
	return cur.Value, cur.Value != "" && (cur.Expiry.IsZero() || ts.now().Before(cur.Expiry.Add(-ts.early)))
}

// Invalidate drops the cached token if it is still value, so the next call
// fetches a new one. A stale 401 for an already replaced token is ignored.
func (ts *TokenSource) Invalidate(value string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.cur.Value == value {
		ts.cur = Token{}
	}
}

// ClientCredentials returns a fetch function for the OAuth2 client
// credentials grant. Credentials go in the form body (AuthStyleInParams):
// Entra, Jamf and Falcon all accept that, and it sidesteps the Basic-auth
// escaping bugs. The token call is made with the same budget and retries as
// the API calls of h.
func ClientCredentials(tokenURL, clientID string, secret conf.Secret, scopes []string, params url.Values, h HTTPConfig) func(context.Context) (Token, error) {
	cc := clientcredentials.Config{
		ClientID:       clientID,
		ClientSecret:   secret.Reveal(),
		TokenURL:       tokenURL,
		Scopes:         scopes,
		EndpointParams: params,
		AuthStyle:      oauth2.AuthStyleInParams,
	}
	hc := TokenHTTPClient(h)
	return func(ctx context.Context) (Token, error) {
		t, err := cc.Token(context.WithValue(ctx, oauth2.HTTPClient, hc))
		if err != nil {
			return Token{}, RedactSecret(redactTokenError(err), secret)
		}
		return Token{Value: t.AccessToken, Expiry: t.Expiry}, nil
	}
}

// TokenHTTPClient is the *http.Client for token endpoints: retried like API
// calls, never following redirects.
func TokenHTTPClient(h HTTPConfig) *http.Client {
	hc := newRetryClient(h, StandardRetryAfter, nil, nil).StandardClient()
	// The inner client does not follow redirects, but this outer one would,
	// re-posting the form (client secret included) to wherever a redirect
	// points.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return hc
}

// RedactSecret removes the secret, raw or URL-encoded, from an error's
// text: a token endpoint or proxy may echo the form it was sent. Token
// fetchers written by hand (Jamf, Falcon) apply it like ClientCredentials.
func RedactSecret(err error, secret conf.Secret) error {
	raw := secret.Reveal()
	if err == nil || raw == "" {
		return err
	}
	msg := err.Error()
	if !strings.Contains(msg, raw) && !strings.Contains(msg, url.QueryEscape(raw)) {
		return err
	}
	msg = strings.ReplaceAll(msg, raw, conf.Redacted)
	msg = strings.ReplaceAll(msg, url.QueryEscape(raw), conf.Redacted)
	return errors.New(msg)
}

// redactTokenError keeps the status and the vendor's error code from an
// oauth2 failure but drops the URL and raw body.
func redactTokenError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		if re.ErrorCode != "" {
			return fmt.Errorf("token endpoint answered %d: %s", status, re.ErrorCode)
		}
		return &StatusError{Status: status, Body: Snippet(re.Body)}
	}
	return redactURLError(err)
}

package access

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/postured/postured/internal/localaccess"
)

func TestTeamIssuer(t *testing.T) {
	tests := []struct {
		name, in, want, err string
	}{
		{"bare host", "team.cloudflareaccess.com", "https://team.cloudflareaccess.com", ""},
		{"scheme and slash", "https://team.cloudflareaccess.com/", "https://team.cloudflareaccess.com", ""},
		{"spaces", "  team.cloudflareaccess.com ", "https://team.cloudflareaccess.com", ""},
		{"empty", " ", "", "team domain is empty"},
		{"http", "http://team.cloudflareaccess.com", "", "must be a host"},
		{"path", "team.cloudflareaccess.com/cdn-cgi", "", "must be a host"},
		{"query", "https://team.cloudflareaccess.com?x=1", "", "must be a host"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := TeamIssuer(tc.in)
			if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("TeamIssuer(%q) = %q, %v; want %q, error containing %q", tc.in, got, err, tc.want, tc.err)
			}
		})
	}
}

func TestNewKeySetCertsURL(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
		err  bool
	}{
		{"from the team domain", Config{TeamDomain: "team.cloudflareaccess.com"}, "https://team.cloudflareaccess.com/cdn-cgi/access/certs", false},
		{"certs_url wins", Config{TeamDomain: "team.cloudflareaccess.com", CertsURL: "http://127.0.0.1:1/certs"}, "http://127.0.0.1:1/certs", false},
		{"no team domain, no certs_url", Config{}, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, err := NewKeySet(tc.cfg)
			if (err != nil) != tc.err {
				t.Fatalf("err %v", err)
			}
			if err == nil && k.url != tc.want {
				t.Errorf("certs URL %q, want %q", k.url, tc.want)
			}
		})
	}
}

// TestCertsCooldownAndOutage: within the cooldown a fetch is answered from
// memory (the document, or the failure); after it the certs are fetched
// again, and a failed fetch is an error, never the old document.
func TestCertsCooldownAndOutage(t *testing.T) {
	var fetches atomic.Int64
	var down atomic.Bool
	certs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches.Add(1)
		if down.Load() {
			http.Error(w, "bad gateway", http.StatusBadGateway)
			return
		}
		_, _ = w.Write([]byte(`{"keys":[]}`))
	}))
	t.Cleanup(certs.Close)
	now := time.Date(2026, 11, 24, 8, 30, 0, 0, time.UTC)
	k, err := NewKeySet(Config{CertsURL: certs.URL, RefetchCooldown: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	k.transport.now = func() time.Time { return now }

	steps := []struct {
		name        string
		advance     time.Duration
		down        bool
		wantFetches int64
		wantErr     string
	}{
		{"first fetch", 0, false, 1, ""},
		{"within the cooldown", 30 * time.Second, false, 1, ""},
		{"after the cooldown", time.Minute, false, 2, ""},
		{"within the cooldown, certs down", 10 * time.Second, true, 2, ""},
		{"after the cooldown, certs down", time.Minute, true, 3, "access certs unavailable: answered 502"},
		{"within the cooldown after a failure", 30 * time.Second, false, 3, "access certs unavailable: answered 502"},
		{"after the cooldown, certs back", time.Minute, false, 4, ""},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		down.Store(s.down)
		err := k.Check(t.Context())
		if got := fetches.Load(); got != s.wantFetches {
			t.Errorf("%s: %d fetches, want %d", s.name, got, s.wantFetches)
		}
		if (err == nil) != (s.wantErr == "") || (err != nil && !strings.Contains(err.Error(), s.wantErr)) {
			t.Errorf("%s: err %v, want %q", s.name, err, s.wantErr)
		}
	}
}

// team is a local Access: its certs served over HTTP, counting fetches,
// and failing them while down is set.
type team struct {
	issuer  *localaccess.Issuer
	url     string
	fetches atomic.Int64
	down    atomic.Bool
}

const teamDomain = "team.cloudflareaccess.com"

func newTeam(t *testing.T) *team {
	t.Helper()
	iss, err := localaccess.New("https://" + teamDomain)
	if err != nil {
		t.Fatal(err)
	}
	tm := &team{issuer: iss}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tm.fetches.Add(1)
		if tm.down.Load() {
			http.Error(w, "<html>origin 10.1.2.3 unreachable</html>", http.StatusBadGateway)
			return
		}
		iss.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	tm.url = srv.URL
	return tm
}

func (tm *team) verifier(t *testing.T, cooldown time.Duration) (*Verifier, *KeySet) {
	t.Helper()
	cfg := Config{TeamDomain: teamDomain, Audiences: []string{"aud"}, CertsURL: tm.url, RefetchCooldown: cooldown}
	keys, err := NewKeySet(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(cfg, keys)
	if err != nil {
		t.Fatal(err)
	}
	return v, keys
}

// TestCertsBackoffAfterFailure: during a certs outage, tokens inside the
// cooldown cost no fetch; the first token after it costs one.
func TestCertsBackoffAfterFailure(t *testing.T) {
	tm := newTeam(t)
	tm.down.Store(true)
	v, keys := tm.verifier(t, time.Minute)
	now := time.Date(2026, 11, 24, 8, 30, 0, 0, time.UTC)
	keys.transport.now = func() time.Time { return now }
	forger, err := localaccess.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name        string
		advance     time.Duration
		tokens      int
		wantFetches int64
	}{
		{"first forged token fetches", 0, 1, 1},
		{"more forged tokens inside the cooldown", 10 * time.Second, 50, 1},
		{"after the cooldown", time.Minute, 10, 2},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		for i := range s.tokens {
			tok, err := localaccess.SignRS256(forger.Private, fmt.Sprintf("forged-%d", i), map[string]any{
				"iss": "https://" + teamDomain, "aud": []string{"aud"}, "exp": now.Add(time.Minute).Unix()})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.Verify(t.Context(), tok); err == nil {
				t.Fatalf("%s: forged token verified", s.name)
			}
		}
		if got := tm.fetches.Load(); got != s.wantFetches {
			t.Errorf("%s: %d certs fetches, want %d", s.name, got, s.wantFetches)
		}
		if _, err := keys.LastFetch(); err == nil || !strings.Contains(err.Error(), "answered 502") {
			t.Errorf("%s: LastFetch error %v", s.name, err)
		}
	}
}

// roundTripFunc is an http.RoundTripper from a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func certsOK(r *http.Request) *http.Response {
	return &http.Response{StatusCode: 200, Status: "200 OK", Header: http.Header{},
		Body: io.NopCloser(strings.NewReader(`{"keys":[]}`)), Request: r}
}

// TestCheckIsBounded: Check goes through the 5 s client, so a certs
// endpoint that never answers cannot hold it (or a caller without a
// deadline) forever.
func TestCheckIsBounded(t *testing.T) {
	k, err := NewKeySet(Config{CertsURL: "https://certs.invalid/certs"})
	if err != nil {
		t.Fatal(err)
	}
	var deadline time.Time
	var hasDeadline bool
	k.transport.next = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		deadline, hasDeadline = r.Context().Deadline()
		return certsOK(r), nil
	})
	before := time.Now()
	if err := k.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !hasDeadline || deadline.After(before.Add(certsTimeout+time.Second)) {
		t.Errorf("certs fetch deadline %v (set: %v), want within %s", deadline, hasDeadline, certsTimeout)
	}
}

// TestWarm: Warm retries a failing certs endpoint, a cooldown apart, until
// a fetch succeeds, so readiness turns without any token; it stops when
// its context ends.
func TestWarm(t *testing.T) {
	t.Run("retries until a fetch succeeds", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			k, err := NewKeySet(Config{CertsURL: "https://certs.invalid/certs", RefetchCooldown: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			var calls int
			k.transport.next = roundTripFunc(func(r *http.Request) (*http.Response, error) {
				calls++
				if calls < 3 {
					return nil, errors.New("connection refused")
				}
				return certsOK(r), nil
			})
			start := time.Now()
			k.Warm(t.Context())
			last, err := k.LastFetch()
			if calls != 3 || err != nil || last.IsZero() {
				t.Errorf("after Warm: %d fetches, last %v, err %v; want 3, a time, nil", calls, last, err)
			}
			if waited := time.Since(start); waited != 20*time.Second {
				t.Errorf("waited %s between attempts, want two cooldowns (20s)", waited)
			}
		})
	})
	t.Run("stops with its context", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			k, err := NewKeySet(Config{CertsURL: "https://certs.invalid/certs", RefetchCooldown: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			k.transport.next = roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, errors.New("down") })
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			k.Warm(ctx)
			if _, err := k.LastFetch(); err == nil {
				t.Error("LastFetch reports no error after a failing Warm")
			}
		})
	})
}

// TestVerifyTimeClaims: exp, nbf and iat outside 1970..9999, or too large
// for a float64, are refused as invalid, never wrapped around.
func TestVerifyTimeClaims(t *testing.T) {
	tm := newTeam(t)
	v, _ := tm.verifier(t, time.Minute)
	now := time.Date(2026, 11, 24, 8, 30, 0, 0, time.UTC)
	v.now = func() time.Time { return now }
	valid := func() map[string]any {
		return map[string]any{"iss": "https://" + teamDomain, "aud": []string{"aud"}, "sub": "", "common_name": "x.access",
			"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Minute).Unix()}
	}
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	tests := []struct {
		name  string
		claim string
		value any
		want  error // nil: accepted; errBadNumericDate or a class
	}{
		{"valid", "", nil, nil},
		{"fractional exp", "exp", float64(now.Add(time.Minute).Unix()) + 0.5, nil},
		{"exp in year 8000", "exp", int64(195000000000), nil},
		{"exp expired", "exp", now.Add(-time.Hour).Unix(), ErrExpired},
		{"exp beyond year 9999", "exp", int64(maxNumericDate + 1), errBadNumericDate},
		{"exp past int64 nanoseconds", "exp", raw("10000000000000000000"), errBadNumericDate},
		{"exp negative", "exp", int64(-1), errBadNumericDate},
		{"exp huge float", "exp", raw("1.5e300"), errBadNumericDate},
		{"nbf far future, wrapping to the past in nanoseconds", "nbf", raw("10000000000000000000"), errBadNumericDate},
		{"nbf negative", "nbf", int64(-5), errBadNumericDate},
		{"nbf in year 9999", "nbf", int64(maxNumericDate), errTokenNotYet},
		{"iat beyond year 9999", "iat", raw("1e19"), errBadNumericDate},
		{"iat negative", "iat", raw("-1e12"), errBadNumericDate},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			if tc.claim != "" {
				c[tc.claim] = tc.value
			}
			tok, err := tm.issuer.Sign(c)
			if err != nil {
				t.Fatal(err)
			}
			claims, err := v.Verify(t.Context(), tok)
			if tc.want == nil {
				if err != nil || claims.CommonName != "x.access" {
					t.Fatalf("Verify = %+v, %v; want accepted", claims, err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify error %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("beyond float64", func(t *testing.T) {
		// go-oidc refuses to decode the claims at all: still a refusal.
		c := valid()
		c["exp"] = raw("1e400")
		tok, err := tm.issuer.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(t.Context(), tok); err == nil {
			t.Fatal("exp 1e400 accepted")
		}
	})
}

func TestNumericDate(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"0", time.Unix(0, 0).UTC(), true},
		{"1700000000.25", time.Unix(1700000000, 250000000).UTC(), true},
		{"253402300799", time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), true},
		{"253402300800", time.Time{}, false},
		{"-0.5", time.Time{}, false},
		{"1e400", time.Time{}, false},
		{"abc", time.Time{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := NumericDate(json.Number(tc.in))
			if (err == nil) != tc.ok || !got.Equal(tc.want) {
				t.Errorf("NumericDate(%s) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
			}
		})
	}
}

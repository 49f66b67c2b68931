package evaluate

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/postured/postured/internal/conf"
	"github.com/postured/postured/server/evaluate/policy"
)

const (
	testAccount  = "0123456789abcdef0123456789abcdef"
	testAPIToken = "cf-api-token-do-not-log-3f9a"
)

// cloudflareAPI mocks the revoke_user endpoint and records the calls.
type cloudflareAPI struct {
	mu     sync.Mutex
	calls  []revokeCall
	status int
}

type revokeCall struct {
	method, path, auth, contentType string
	body                            map[string]any
}

func (c *cloudflareAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	call := revokeCall{method: r.Method, path: r.URL.Path, auth: r.Header.Get("Authorization"), contentType: r.Header.Get("Content-Type")}
	_ = json.Unmarshal(raw, &call.body)
	c.mu.Lock()
	c.calls = append(c.calls, call)
	status := c.status
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if status != 0 {
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"success":false,"errors":[{"code":10000,"message":"Authentication error"}],"messages":[],"result":null}`))
		return
	}
	_, _ = w.Write([]byte(`{"success":true,"errors":[],"messages":[],"result":true}`))
}

func (c *cloudflareAPI) Calls() []revokeCall {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]revokeCall(nil), c.calls...)
}

func revokeFixture(t *testing.T, api *cloudflareAPI, onlyRules []string) *fixture {
	t.Helper()
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	cfg := Config{Enabled: true, Policy: policy.Config{Rules: testRules()}, Revoke: RevokeConfig{
		Enabled: true, AccountID: testAccount, APIToken: conf.Secret(testAPIToken),
		BaseURL: srv.URL + "/client/v4/", Rules: onlyRules,
	}}
	// Debug level: the token must stay out of even the most verbose logs.
	return newFixture(t, fixtureOpts{cfg: &cfg, logLevel: slog.LevelDebug})
}

func TestRevocation(t *testing.T) {
	tests := []struct {
		name      string
		only      []string
		identity  map[string]any
		wantCalls int
		wantEmail string
	}{
		{"deny by rule revokes", nil, map[string]any{"email": "mallory@example.com", "geo": map[string]any{"country": "KP"}}, 1, "mallory@example.com"},
		{"default deny revokes", nil, map[string]any{"email": "eve@example.com"}, 1, "eve@example.com"},
		{"allow does not revoke", nil, map[string]any{"email": "bob@example.com"}, 0, ""},
		{"deny without email cannot revoke", nil, map[string]any{"geo": map[string]any{"country": "KP"}}, 0, ""},
		{"rules limit: listed rule revokes", []string{"block-sanctioned"}, map[string]any{"email": "mallory@example.com", "geo": map[string]any{"country": "IR"}}, 1, "mallory@example.com"},
		{"rules limit: default deny does not", []string{"block-sanctioned"}, map[string]any{"email": "eve@example.com"}, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			api := &cloudflareAPI{}
			f := revokeFixture(t, api, tc.only)
			resp := f.evaluate(t, f.team.token(t, claims(f.clock.Now(), "n", tc.identity)))
			f.verifyAsAccess(t, resp, "n")
			if err := f.h.Close(); err != nil { // waits for the revocation
				t.Fatal(err)
			}
			calls := api.Calls()
			if len(calls) != tc.wantCalls {
				t.Fatalf("%d revoke calls, want %d", len(calls), tc.wantCalls)
			}
			if tc.wantCalls == 1 {
				c := calls[0]
				if c.method != http.MethodPost || c.path != "/client/v4/accounts/"+testAccount+"/access/organizations/revoke_user" {
					t.Errorf("%s %s", c.method, c.path)
				}
				if c.auth != "Bearer "+testAPIToken || c.contentType != "application/json" {
					t.Errorf("Authorization %q, Content-Type %q", c.auth, c.contentType)
				}
				if len(c.body) != 1 || c.body["email"] != tc.wantEmail {
					t.Errorf("body %v, want {email: %s}", c.body, tc.wantEmail)
				}
				if n := testutil.ToFloat64(f.h.metrics.revocations.WithLabelValues("ok")); n != 1 {
					t.Errorf("revocations ok = %v", n)
				}
			}
			if strings.Contains(f.logs.String(), testAPIToken) {
				t.Error("API token in the logs")
			}
		})
	}
}

func TestRevocationFailureLoggedWithoutToken(t *testing.T) {
	api := &cloudflareAPI{status: http.StatusForbidden}
	f := revokeFixture(t, api, nil)
	resp := f.evaluate(t, f.team.token(t, claims(f.clock.Now(), "n", map[string]any{"email": "eve@example.com"})))
	if v := f.verifyAsAccess(t, resp, "n"); v.success {
		t.Fatal("allowed")
	}
	if err := f.h.Close(); err != nil {
		t.Fatal(err)
	}
	logs := f.logs.String()
	if !strings.Contains(logs, "revoke_user failed") || !strings.Contains(logs, "403") || !strings.Contains(logs, "Authentication error") {
		t.Errorf("failure not logged:\n%s", logs)
	}
	if strings.Contains(logs, testAPIToken) {
		t.Error("API token in the logs")
	}
	if n := testutil.ToFloat64(f.h.metrics.revocations.WithLabelValues("error")); n != 1 {
		t.Errorf("revocations error = %v", n)
	}
}

// TestRevocationUnreachable: a dead API costs the login nothing.
func TestRevocationUnreachable(t *testing.T) {
	api := httptest.NewServer(http.NotFoundHandler())
	url := api.URL
	api.Close()
	cfg := Config{Enabled: true, Policy: policy.Config{Rules: testRules()}, Revoke: RevokeConfig{
		Enabled: true, AccountID: testAccount, APIToken: conf.Secret(testAPIToken), BaseURL: url,
	}}
	f := newFixture(t, fixtureOpts{cfg: &cfg, logLevel: slog.LevelDebug})
	f.verifyAsAccess(t, f.evaluate(t, f.team.token(t, claims(f.clock.Now(), "n", map[string]any{"email": "eve@example.com"}))), "n")
	_ = f.h.Close()
	if n := testutil.ToFloat64(f.h.metrics.revocations.WithLabelValues("error")); n != 1 {
		t.Errorf("revocations error = %v", n)
	}
	if strings.Contains(f.logs.String(), testAPIToken) {
		t.Error("API token in the logs")
	}
}

// TestRevocationDeduplicated: a user denied again within
// revoke.dedup_window is not revoked again (each call ends every session
// they have); after the window, or after a failed call, they are.
func TestRevocationDeduplicated(t *testing.T) {
	api := &cloudflareAPI{}
	f := revokeFixture(t, api, nil)
	deny := func(email string) {
		t.Helper()
		f.verifyAsAccess(t, f.evaluate(t, f.team.token(t, claims(f.clock.Now(), "n", map[string]any{"email": email}))), "n")
		f.h.revoker.wait()
	}
	steps := []struct {
		name      string
		advance   time.Duration
		email     string
		fail      bool
		wantCalls int
	}{
		{"first denial revokes", 0, "eve@example.com", false, 1},
		{"again at once", time.Second, "eve@example.com", false, 1},
		{"again, other case", time.Minute, "Eve@Example.com", false, 1},
		{"another user", 0, "mallory@example.com", false, 2},
		{"just inside the window", 3*time.Minute + 58*time.Second, "eve@example.com", false, 2},
		{"after the window", time.Second, "eve@example.com", false, 3},
		{"a failed call", 5 * time.Minute, "eve@example.com", true, 4},
		{"is retried at the next denial", time.Second, "eve@example.com", false, 5},
	}
	for _, s := range steps {
		f.clock.Advance(s.advance)
		api.mu.Lock()
		api.status = 0
		if s.fail {
			api.status = http.StatusInternalServerError
		}
		api.mu.Unlock()
		deny(s.email)
		if got := len(api.Calls()); got != s.wantCalls {
			t.Errorf("%s: %d revoke calls, want %d", s.name, got, s.wantCalls)
		}
	}
	if n := testutil.ToFloat64(f.h.metrics.revocations.WithLabelValues("deduplicated")); n != 3 {
		t.Errorf("deduplicated = %v, want 3", n)
	}
}

package server

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// statusStub stands in for the status page: the routing and token checks
// are the server's business, the page's content its own package's.
var statusStub = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	_, _ = w.Write([]byte("status page"))
})

// TestStatusPageRouting: /status sits behind the Access check on the
// public router, or, with AdminListen, on the admin router only, where
// reaching the address is the authorisation (as for /metrics).
func TestStatusPageRouting(t *testing.T) {
	at := newAccessTeam(t)
	withPage := func(c *Config) { c.StatusPage = statusStub }
	t.Run("public: token checked", func(t *testing.T) {
		for _, tc := range []struct {
			name       string
			hdr        []string
			wantStatus int
			wantBody   string
		}{
			{"no token", nil, 401, errorBody("missing Cf-Access-Jwt-Assertion header")},
			{"bad token", []string{"Cf-Access-Jwt-Assertion", "not.a.jwt"}, 403, errorBody("invalid token")},
			{"service token", []string{"Cf-Access-Jwt-Assertion", at.token(t, nil)}, 200, "status page"},
			{"user token", []string{"Cf-Access-Jwt-Assertion", at.token(t, userToken)}, 200, "status page"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ts := newSecure(t, at, withPage)
				w := ts.do("GET", "/status", "", tc.hdr...)
				if w.Code != tc.wantStatus || w.Body.String() != tc.wantBody {
					t.Errorf("got %d %s, want %d %s", w.Code, w.Body, tc.wantStatus, tc.wantBody)
				}
			})
		}
	})
	t.Run("public: who may post batches may read it", func(t *testing.T) {
		ts := newSecure(t, at, withPage, func(c *Config) { c.ServiceTokensOnly = true })
		if w := ts.do("GET", "/status", "", "Cf-Access-Jwt-Assertion", at.token(t, userToken)); w.Code != 403 {
			t.Errorf("user token with service tokens only: %d %s", w.Code, w.Body)
		}
	})
	t.Run("admin listener", func(t *testing.T) {
		ts := newSecure(t, at, withPage, func(c *Config) { c.AdminListen = "127.0.0.1:9090" })
		if w := ts.do("GET", "/status", "", "Cf-Access-Jwt-Assertion", at.token(t, nil)); w.Code != 404 {
			t.Errorf("public /status with an admin listener: %d %s", w.Code, w.Body)
		}
		w := httptest.NewRecorder()
		ts.AdminHandler().ServeHTTP(w, httptest.NewRequest("GET", "/status", nil))
		if w.Code != 200 || w.Body.String() != "status page" {
			t.Errorf("admin /status without a token: %d %s", w.Code, w.Body)
		}
	})
	t.Run("no page", func(t *testing.T) {
		ts := newSecure(t, at)
		if w := ts.do("GET", "/status", "", "Cf-Access-Jwt-Assertion", at.token(t, nil)); w.Code != 404 {
			t.Errorf("/status without a page: %d %s", w.Code, w.Body)
		}
	})
}

package server

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/internal/localaccess"
	"github.com/postured/postured/server/access"
)

const (
	testTeam = "team.cloudflareaccess.com"
	testAUD  = "32eafc7626e974616deaf0dc3ce63d7bcbed58a2731e84d06bc3cdf1b53c4228"
	// serviceCN is the common_name localaccess puts in application tokens.
	serviceCN = "88bf3b6d86161464f6509f7219099e57.access"
)

// accessTeam plays Cloudflare Access: the team's keys, served as certs
// (failing with an internal-looking error page while down), counting
// fetches.
type accessTeam struct {
	issuer  *localaccess.Issuer
	certs   *httptest.Server
	fetches atomic.Int64
	down    atomic.Bool
}

// certsOutagePage is what a broken certs endpoint answers; none of it may
// reach a client.
const certsOutagePage = "<html>upstream 10.20.30.40:8443 refused</html>"

func newAccessTeam(t *testing.T) *accessTeam {
	t.Helper()
	iss, err := localaccess.New("https://" + testTeam)
	if err != nil {
		t.Fatal(err)
	}
	at := &accessTeam{issuer: iss}
	at.certs = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at.fetches.Add(1)
		if at.down.Load() {
			http.Error(w, certsOutagePage, http.StatusBadGateway)
			return
		}
		iss.ServeHTTP(w, r)
	}))
	t.Cleanup(at.certs.Close)
	return at
}

// newSecure builds a server checking tokens of at's team.
func newSecure(t *testing.T, at *accessTeam, mods ...func(*Config)) *testServer {
	t.Helper()
	return newInsecure(t, append([]func(*Config){func(c *Config) {
		c.Listen, c.InsecureSkipVerify = ":8080", false
		c.Access = access.Config{TeamDomain: testTeam, Audiences: []string{testAUD}, CertsURL: at.certs.URL,
			RefetchCooldown: time.Minute, Logger: c.Logger}
		keys, err := access.NewKeySet(c.Access)
		if err != nil {
			t.Fatal(err)
		}
		c.Keys = keys
	}}, mods...)...)
}

// token signs an application token: a service token's unless mod changes
// it.
func (at *accessTeam) token(t *testing.T, mod func(map[string]any)) string {
	t.Helper()
	now := time.Now()
	c := map[string]any{"type": "app", "aud": []string{testAUD}, "iss": "https://" + testTeam, "sub": "",
		"common_name": serviceCN, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Minute).Unix()}
	if mod != nil {
		mod(c)
	}
	tok, err := at.issuer.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// userToken turns a service token's claims into a user's.
func userToken(c map[string]any) {
	delete(c, "common_name")
	c["sub"], c["email"] = "7335d417-61da-459d-899c-0a01c76a2f94", "jdoe@example.com"
}

func errorBody(msg string) string {
	b, _ := json.Marshal(map[string]any{"error": msg, "success": false})
	return string(b)
}

// TestWhoMayPostBatches: access.allowed_common_names admits only the
// listed service tokens; with none listed and External Evaluation on
// (ServiceTokensOnly), only service tokens; otherwise any token.
func TestWhoMayPostBatches(t *testing.T) {
	at := newAccessTeam(t)
	tests := []struct {
		name       string
		allowed    []string
		svcOnly    bool
		tokenMod   func(map[string]any)
		wantStatus int
		wantBody   string
	}{
		{"no list: service token", nil, false, nil, 200, ""},
		{"no list: user token", nil, false, userToken, 200, ""},
		{"service tokens only: service token", nil, true, nil, 200, ""},
		{"service tokens only: user token", nil, true, userToken, 403, errorBody("not a service token")},
		{"listed service token", []string{serviceCN}, false, nil, 200, ""},
		{"listed without the .access suffix", []string{strings.TrimSuffix(serviceCN, ".access")}, false, nil, 200, ""},
		{"listed in upper case", []string{strings.ToUpper(serviceCN)}, false, nil, 200, ""},
		{"unlisted service token", []string{"0123456789abcdef0123456789abcdef.access"}, false, nil, 403, errorBody("common name not allowed")},
		{"unlisted service token, service tokens only", []string{"0123456789abcdef0123456789abcdef.access"}, true, nil, 403, errorBody("common name not allowed")},
		{"user token against a list", []string{serviceCN}, false, userToken, 403, errorBody("not a service token")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newSecure(t, at, func(c *Config) { c.AllowedCommonNames, c.ServiceTokensOnly = tc.allowed, tc.svcOnly })
			w := ts.do("POST", "/posture", devicesJSON(1), "Cf-Access-Jwt-Assertion", at.token(t, tc.tokenMod))
			if w.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.wantStatus, w.Body)
			}
			if tc.wantBody != "" && w.Body.String() != tc.wantBody {
				t.Errorf("body %s, want %s", w.Body, tc.wantBody)
			}
			if got, want := ts.engine.calls.Load(), int64(0); tc.wantStatus != 200 && got != want {
				t.Errorf("engine called %d times for a refused token", got)
			}
		})
	}
	t.Run("an empty entry is refused", func(t *testing.T) {
		_, err := New(Config{Listen: "127.0.0.1:0", InsecureSkipVerify: true, MaxDevices: 1, Engine: &echoEngine{},
			AllowedCommonNames: []string{serviceCN, " "}})
		if err == nil || err.Error() != "server: access.allowed_common_names: an entry is empty" {
			t.Errorf("err = %v", err)
		}
	})
}

// TestRefusalsNameOnlyTheClass: a 403 says what class of failure it was
// and never the expected issuer, the certs URL or the certs endpoint's
// answer; those are logged.
func TestRefusalsNameOnlyTheClass(t *testing.T) {
	at := newAccessTeam(t)
	down := newAccessTeam(t)
	down.down.Store(true)
	tests := []struct {
		name     string
		team     *accessTeam
		token    string
		wantBody string
		wantLog  string
	}{
		{"wrong issuer", at, at.token(t, func(c map[string]any) { c["iss"] = "https://evil.cloudflareaccess.com" }),
			errorBody("invalid token"), "expected \\\"https://" + testTeam},
		{"expired", at, at.token(t, func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() }),
			errorBody("expired"), "token expired"},
		{"wrong audience", at, at.token(t, func(c map[string]any) { c["aud"] = []string{"someone-else"} }),
			errorBody("wrong audience"), "audience does not match"},
		{"not yet valid", at, at.token(t, func(c map[string]any) { c["nbf"] = time.Now().Add(time.Hour).Unix() }),
			errorBody("invalid token"), "not valid yet"},
		{"exp beyond year 9999", at, at.token(t, func(c map[string]any) { c["exp"] = json.RawMessage("1e19") }),
			errorBody("invalid token"), "NumericDate"},
		{"malformed", at, "not.a.jwt", errorBody("invalid token"), "malformed"},
		{"certs down", down, down.token(t, nil), errorBody("invalid token"), "answered 502"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newSecure(t, tc.team)
			w := ts.do("POST", "/posture", devicesJSON(1), "Cf-Access-Jwt-Assertion", tc.token)
			if w.Code != 403 || w.Body.String() != tc.wantBody {
				t.Fatalf("got %d %s, want 403 %s", w.Code, w.Body, tc.wantBody)
			}
			for _, leak := range []string{testTeam, tc.team.certs.URL, "10.20.30.40", "oidc"} {
				if strings.Contains(w.Body.String(), leak) {
					t.Errorf("body %s carries %q", w.Body, leak)
				}
			}
			if logs := ts.logs.String(); !strings.Contains(logs, `"msg":"access token rejected"`) || !strings.Contains(logs, tc.wantLog) {
				t.Errorf("log lacks the detail %q: %s", tc.wantLog, logs)
			}
		})
	}
}

// deadlineVerifier records the context a token check runs with.
type deadlineVerifier struct {
	deadline time.Time
	ok       bool
}

func (d *deadlineVerifier) Verify(ctx context.Context, _ string) (*access.Claims, error) {
	d.deadline, d.ok = ctx.Deadline()
	return nil, errors.New("refused")
}

// TestTokenCheckHasAServerDeadline: a client that sets no deadline cannot
// hold a request in the token check (a hanging certs fetch) for longer
// than verifyTimeout.
func TestTokenCheckHasAServerDeadline(t *testing.T) {
	at := newAccessTeam(t)
	ts := newSecure(t, at)
	dv := &deadlineVerifier{}
	ts.access = dv
	before := time.Now()
	w := ts.do("POST", "/posture", devicesJSON(1), "Cf-Access-Jwt-Assertion", "x.y.z")
	if w.Code != 403 {
		t.Fatalf("status %d", w.Code)
	}
	if !dv.ok || dv.deadline.After(before.Add(verifyTimeout+time.Second)) {
		t.Errorf("verification deadline %v (set: %v), want within %s", dv.deadline, dv.ok, verifyTimeout)
	}
}

// TestBatchLogNamesTokenTypeNotEmail: the batch log says which kind of
// token posted and a short hash of whom, never the user's email.
func TestBatchLogNamesTokenTypeNotEmail(t *testing.T) {
	at := newAccessTeam(t)
	tests := []struct {
		name     string
		mod      func(map[string]any)
		wantType string
		subject  string
	}{
		{"service token", nil, "service", serviceCN},
		{"user token", userToken, "user", "7335d417-61da-459d-899c-0a01c76a2f94"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newSecure(t, at)
			if w := ts.do("POST", "/posture", devicesJSON(1), "Cf-Access-Jwt-Assertion", at.token(t, tc.mod)); w.Code != 200 {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			var line map[string]any
			for _, l := range strings.Split(ts.logs.String(), "\n") {
				if strings.Contains(l, `"msg":"posture batch"`) {
					_ = json.Unmarshal([]byte(l), &line)
				}
			}
			if line == nil {
				t.Fatalf("no batch line: %s", ts.logs)
			}
			hash := subjectHash(&access.Claims{Subject: tc.subject})
			if line["token"] != tc.wantType || line["subject"] != hash || len(hash) != 12 {
				t.Errorf("batch line token=%v subject=%v, want %s %s", line["token"], line["subject"], tc.wantType, hash)
			}
			if _, ok := line["client"]; ok || strings.Contains(ts.logs.String(), "jdoe@") {
				t.Errorf("logs name the client: %s", ts.logs)
			}
		})
	}
}

// TestClientIPFromTrustedProxiesOnly: the request log's client_ip is the
// forwarded address only when the peer is a trusted proxy.
func TestClientIPFromTrustedProxiesOnly(t *testing.T) {
	tests := []struct {
		name    string
		trusted []string
		peer    string
		xff     string
		want    string
	}{
		{"no proxies trusted", nil, "203.0.113.9:4000", "198.51.100.7", "203.0.113.9"},
		{"trusted proxy", []string{"10.0.0.0/8"}, "10.1.2.3:4000", "198.51.100.7", "198.51.100.7"},
		{"trusted single IP", []string{"127.0.0.1"}, "127.0.0.1:4000", "198.51.100.7", "198.51.100.7"},
		{"chain through a trusted proxy", []string{"10.0.0.0/8"}, "10.1.2.3:4000", "192.0.2.1, 198.51.100.7, 10.9.9.9", "198.51.100.7"},
		{"untrusted peer", []string{"10.0.0.0/8"}, "203.0.113.9:4000", "198.51.100.7", "203.0.113.9"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newInsecure(t, func(c *Config) { c.TrustedProxies = tc.trusted })
			req := httptest.NewRequest("GET", "/healthz", nil)
			req.RemoteAddr = tc.peer
			req.Header.Set("X-Forwarded-For", tc.xff)
			ts.Handler().ServeHTTP(httptest.NewRecorder(), req)
			if !strings.Contains(ts.logs.String(), `"client_ip":"`+tc.want+`"`) {
				t.Errorf("log lacks client_ip %s: %s", tc.want, ts.logs)
			}
		})
	}
}

// TestReadinessIsSanitisedAndFetchesNothing: the public /readyz names a
// class of failure and a time, never vendor answers, addresses or
// inventory lines, and never fetches the certs; the admin listener's
// /readyz has the detail.
func TestReadinessIsSanitisedAndFetchesNothing(t *testing.T) {
	at := newAccessTeam(t)
	at.down.Store(true)
	last := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	statuses := map[string]aggregate.StatusReporter{
		"jamf":      fixedStatus{Ready: true, Records: 1234, LastSuccess: last, LastError: "jamf: status 500: <html>proxy 10.9.8.7 said no</html>"},
		"inventory": fixedStatus{LastError: "static: inventory.yaml: line 3: serial \"C02SECRET\" twice"},
	}
	ts := newSecure(t, at, func(c *Config) { c.Statuses, c.AdminListen = statuses, "127.0.0.1:9090" })

	for range 5 {
		if w := ts.do("GET", "/readyz", ""); w.Code != 503 {
			t.Fatalf("readyz %d: %s", w.Code, w.Body)
		}
	}
	if n := at.fetches.Load(); n != 0 {
		t.Errorf("/readyz fetched the certs %d times", n)
	}
	if err := ts.keys.Check(t.Context()); err == nil {
		t.Fatal("certs check succeeded while down")
	}

	w := ts.do("GET", "/readyz", "")
	var got map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"ready":        false,
		"access_certs": map[string]any{"last_fetch": nil, "error": "certs fetch failed"},
		"providers": map[string]any{
			"jamf":      map[string]any{"ready": true, "last_success": "2026-11-24T08:00:00Z", "age_seconds": got["providers"].(map[string]any)["jamf"].(map[string]any)["age_seconds"], "error": "last load failed"},
			"inventory": map[string]any{"ready": false, "error": "last load failed"},
		},
	}
	if g, _ := json.Marshal(got); string(g) != mustJSON(want) {
		t.Errorf("public /readyz\n got %s\nwant %s", g, mustJSON(want))
	}
	for _, leak := range []string{"10.9.8.7", "line 3", "C02SECRET", "502", at.certs.URL, "1234"} {
		if strings.Contains(w.Body.String(), leak) {
			t.Errorf("public /readyz carries %q: %s", leak, w.Body)
		}
	}

	aw := httptest.NewRecorder()
	ts.AdminHandler().ServeHTTP(aw, httptest.NewRequest("GET", "/readyz", nil))
	for _, detail := range []string{"10.9.8.7", "line 3", "answered 502", `"records":1234`} {
		if !strings.Contains(aw.Body.String(), detail) {
			t.Errorf("admin /readyz lacks %q: %s", detail, aw.Body)
		}
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestAdminListenerTakesMetrics: with AdminListen, /metrics is served only
// by the admin handler; without it, by the public one.
func TestAdminListenerTakesMetrics(t *testing.T) {
	t.Run("admin listener", func(t *testing.T) {
		ts := newInsecure(t, func(c *Config) { c.AdminListen = "127.0.0.1:9090" })
		if w := ts.do("GET", "/metrics", ""); w.Code != 404 || w.Body.String() != errorBody("not found") {
			t.Errorf("public /metrics: %d %s", w.Code, w.Body)
		}
		for path, want := range map[string]string{"/metrics": "postured_http_requests_total", "/readyz": `"ready":true`, "/healthz": "ok"} {
			w := httptest.NewRecorder()
			ts.AdminHandler().ServeHTTP(w, httptest.NewRequest("GET", path, nil))
			if w.Code != 200 || !strings.Contains(w.Body.String(), want) {
				t.Errorf("admin %s: %d %s", path, w.Code, w.Body)
			}
		}
	})
	t.Run("no admin listener", func(t *testing.T) {
		ts := newInsecure(t)
		if w := ts.do("GET", "/metrics", ""); w.Code != 200 {
			t.Errorf("public /metrics: %d", w.Code)
		}
		if ts.AdminHandler() != nil {
			t.Error("AdminHandler without AdminListen")
		}
		if err := ts.RunAdmin(t.Context(), fakeListener{addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9090}}); err == nil {
			t.Error("RunAdmin without AdminListen succeeded")
		}
	})
}

// fakeListener is bound nowhere; it reports addr and accepts nothing.
type fakeListener struct{ addr net.Addr }

func (fakeListener) Accept() (net.Conn, error) { return nil, net.ErrClosed }
func (fakeListener) Close() error              { return nil }
func (f fakeListener) Addr() net.Addr          { return f.addr }

// TestInsecureChecksTheBoundAddress: insecure_skip_verify is refused when
// the listener is not bound to loopback, whatever the configured string
// said ("localhost" resolving elsewhere).
func TestInsecureChecksTheBoundAddress(t *testing.T) {
	tests := []struct {
		name string
		addr net.Addr
	}{
		{"localhost resolving to a LAN address", &net.TCPAddr{IP: net.IPv4(192, 0, 2, 10), Port: 8080}},
		{"every interface", &net.TCPAddr{IP: net.IPv4zero, Port: 8080}},
		{"every IPv6 interface", &net.TCPAddr{IP: net.IPv6unspecified, Port: 8080}},
		{"a unix socket", &net.UnixAddr{Name: "/run/postured.sock", Net: "unix"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newInsecure(t, func(c *Config) { c.Listen = "localhost:8080" })
			err := ts.Run(t.Context(), fakeListener{addr: tc.addr})
			want := "server: access.insecure_skip_verify is only allowed on a loopback address; the listener is bound to " + tc.addr.String()
			if err == nil || err.Error() != want {
				t.Errorf("Run = %v, want %q", err, want)
			}
		})
	}
}

package server

import (
	"context"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/postured/postured/aggregate"
)

// echoExplainer explains a device by echoing its identifiers, so tests see
// what reached it.
type echoExplainer struct {
	calls atomic.Int64
	last  atomic.Pointer[aggregate.Device]
}

func (e *echoExplainer) Explain(_ context.Context, d aggregate.Device) aggregate.Explanation {
	e.calls.Add(1)
	e.last.Store(&d)
	return aggregate.Explanation{DeviceID: "explain", Score: 42, S2SID: "s-" + d.Serial, Decision: "weighted mean",
		Providers: []aggregate.ProviderDetail{{Provider: "inventory", Weight: 1, Outcome: aggregate.OutcomeMatched, Score: 42, Counted: true}}}
}

func withExplainer(e Explainer) func(*Config) { return func(c *Config) { c.Explainer = e } }

func TestExplainInput(t *testing.T) {
	long := strings.Repeat("a", maxIdentifierBytes+1)
	tests := []struct {
		name, method, query string
		wantStatus          int
		wantBody            string
		want                aggregate.Device
	}{
		{"no identifier", "GET", "", 400, errorBody("give at least one of serial, mac, hostname, email"), aggregate.Device{}},
		{"only empty identifiers", "GET", "serial=&email=", 400, errorBody("give at least one of serial, mac, hostname, email"), aggregate.Device{}},
		{"device_id alone", "GET", "device_id=x", 400, errorBody("give at least one of serial, mac, hostname, email"), aggregate.Device{}},
		{"device_id too long", "GET", "serial=S1&device_id=" + long, 400, errorBody("device_id: longer than 256 bytes"), aggregate.Device{}},
		{"device_id reaches the explainer", "GET", "serial=S1&device_id=dev-1", 200, "", aggregate.Device{ID: "dev-1", Serial: "S1"}},
		{"serial too long", "GET", "serial=" + long, 400, errorBody("serial: longer than 256 bytes"), aggregate.Device{}},
		{"email too long beside a good serial", "GET", "serial=S1&email=" + long, 400, errorBody("email: longer than 256 bytes"), aggregate.Device{}},
		{"mac too long", "GET", "mac=" + long, 400, errorBody("mac: longer than 256 bytes"), aggregate.Device{}},
		{"hostname too long", "GET", "hostname=" + long, 400, errorBody("hostname: longer than 256 bytes"), aggregate.Device{}},
		{"POST", "POST", "serial=S1", 405, errorBody("method not allowed"), aggregate.Device{}},
		{"PUT", "PUT", "serial=S1", 405, errorBody("method not allowed"), aggregate.Device{}},
		{"256 bytes is allowed", "GET", "serial=" + long[1:], 200, "", aggregate.Device{Serial: long[1:]}},
		{"every identifier reaches the explainer", "GET",
			"serial=C02X&mac=" + url.QueryEscape("aa:bb:cc:dd:ee:ff") + "&hostname=mbp-1&email=" + url.QueryEscape("j@example.com"),
			200, "", aggregate.Device{Serial: "C02X", MAC: "aa:bb:cc:dd:ee:ff", Hostname: "mbp-1", Email: "j@example.com"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ex := &echoExplainer{}
			ts := newInsecure(t, withExplainer(ex))
			w := ts.do(tc.method, "/v1/explain?"+tc.query, "")
			if w.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.wantStatus, w.Body)
			}
			if tc.wantStatus != 200 {
				if w.Body.String() != tc.wantBody {
					t.Errorf("body %s, want %s", w.Body, tc.wantBody)
				}
				if n := ex.calls.Load(); n != 0 {
					t.Errorf("explainer called %d times for refused input", n)
				}
				return
			}
			if got := *ex.last.Load(); got != tc.want {
				t.Errorf("explainer got %+v, want %+v", got, tc.want)
			}
			var b strings.Builder
			if err := WriteExplanation(&b, ex.Explain(context.Background(), tc.want)); err != nil {
				t.Fatal(err)
			}
			if w.Body.String() != b.String() {
				t.Errorf("body\n%s\nwant\n%s", w.Body, b.String())
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

func TestExplainOnlyWhenConfigured(t *testing.T) {
	ts := newInsecure(t)
	if w := ts.do("GET", "/v1/explain?serial=S1", ""); w.Code != 404 {
		t.Errorf("status %d without an Explainer, want 404", w.Code)
	}
}

// TestWhoMayExplain: /v1/explain is guarded exactly like /posture, since
// it discloses any device's posture.
func TestWhoMayExplain(t *testing.T) {
	at := newAccessTeam(t)
	other := "0123456789abcdef0123456789abcdef.access"
	tests := []struct {
		name       string
		allowed    []string
		svcOnly    bool
		token      func(t *testing.T) string
		wantStatus int
		wantBody   string
	}{
		{"no token", nil, false, func(*testing.T) string { return "" }, 401, errorBody("missing Cf-Access-Jwt-Assertion header")},
		{"garbage token", nil, false, func(*testing.T) string { return "not.a.jwt" }, 403, errorBody("invalid token")},
		{"expired token", nil, false, func(t *testing.T) string {
			return at.token(t, func(c map[string]any) { c["exp"] = c["iat"].(int64) - 3600 })
		}, 403, errorBody("expired")},
		{"wrong audience", nil, false, func(t *testing.T) string {
			return at.token(t, func(c map[string]any) { c["aud"] = []string{"other"} })
		}, 403, errorBody("wrong audience")},
		{"service token", nil, false, func(t *testing.T) string { return at.token(t, nil) }, 200, ""},
		{"user token, any token allowed", nil, false, func(t *testing.T) string { return at.token(t, userToken) }, 200, ""},
		{"user token, service tokens only", nil, true, func(t *testing.T) string { return at.token(t, userToken) }, 403, errorBody("not a service token")},
		{"listed service token", []string{serviceCN}, false, func(t *testing.T) string { return at.token(t, nil) }, 200, ""},
		{"unlisted service token", []string{other}, false, func(t *testing.T) string { return at.token(t, nil) }, 403, errorBody("common name not allowed")},
		{"user token against a list", []string{serviceCN}, false, func(t *testing.T) string { return at.token(t, userToken) }, 403, errorBody("not a service token")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ex := &echoExplainer{}
			ts := newSecure(t, at, withExplainer(ex), func(c *Config) { c.AllowedCommonNames, c.ServiceTokensOnly = tc.allowed, tc.svcOnly })
			var hdr []string
			if tok := tc.token(t); tok != "" {
				hdr = []string{"Cf-Access-Jwt-Assertion", tok}
			}
			w := ts.do("GET", "/v1/explain?serial=S1", "", hdr...)
			if w.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.wantStatus, w.Body)
			}
			if tc.wantBody != "" && w.Body.String() != tc.wantBody {
				t.Errorf("body %s, want %s", w.Body, tc.wantBody)
			}
			if n := ex.calls.Load(); tc.wantStatus != 200 && n != 0 {
				t.Errorf("explainer called %d times for a refused token", n)
			}
		})
	}
}

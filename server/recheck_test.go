package server

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/postured/postured/aggregate"
)

// echoRechecker records the device it was asked about.
type echoRechecker struct {
	calls atomic.Int64
	last  atomic.Pointer[aggregate.Device]
}

func (e *echoRechecker) Recheck(_ context.Context, d aggregate.Device) aggregate.Explanation {
	e.calls.Add(1)
	e.last.Store(&d)
	return aggregate.Explanation{DeviceID: d.ID, Score: 77, S2SID: "s-" + d.Serial, Decision: "weighted mean of 1 provider(s)"}
}

func TestRecheckInput(t *testing.T) {
	long := strings.Repeat("a", maxIdentifierBytes+1)
	tests := []struct {
		name, method, body string
		wantStatus         int
		wantBody           string
		want               aggregate.Device
	}{
		{"a Cloudflare entry", "POST", `{"device_id":"cf-1","serial_number":"C02X","mac_address":"aa:bb:cc:dd:ee:ff","hostname":"mbp-1","email":"j@example.com","virtual_ipv4":"100.96.0.1"}`,
			200, "", aggregate.Device{ID: "cf-1", Serial: "C02X", MAC: "aa:bb:cc:dd:ee:ff", Hostname: "mbp-1", Email: "j@example.com"}},
		{"no device_id", "POST", `{"serial_number":"C02X"}`, 200, "", aggregate.Device{ID: "recheck", Serial: "C02X"}},
		{"empty body", "POST", ``, 400, errorBody("request body is empty: want one device entry"), aggregate.Device{}},
		{"null", "POST", `null`, 400, errorBody("request body: must be an object, got null"), aggregate.Device{}},
		{"no identifier", "POST", `{"device_id":"cf-1","serial_number":" "}`, 400, errorBody("give at least one of serial_number, mac_address, hostname, email"), aggregate.Device{}},
		{"unknown field", "POST", `{"serial":"C02X"}`, 400, errorBody(`unknown field "serial"`), aggregate.Device{}},
		{"wrong type", "POST", `{"serial_number":42}`, 400, errorBody("serial_number: expected a string, got JSON number"), aggregate.Device{}},
		{"a batch", "POST", `{"devices":[{"device_id":"x"}]}`, 400, errorBody(`unknown field "devices"`), aggregate.Device{}},
		{"trailing data", "POST", `{"serial_number":"C02X"} {}`, 400, errorBody("invalid JSON: unexpected data after the top-level object"), aggregate.Device{}},
		{"broken JSON", "POST", `{"serial_number":`, 400, errorBody("invalid JSON: body ends unexpectedly"), aggregate.Device{}},
		{"serial too long", "POST", `{"serial_number":"` + long + `"}`, 400, errorBody("serial_number: longer than 256 bytes"), aggregate.Device{}},
		{"device_id too long", "POST", `{"device_id":"` + long + `","serial_number":"C02X"}`, 400, errorBody("device_id: longer than 256 bytes"), aggregate.Device{}},
		{"oversized body", "POST", `{"hostname":"` + strings.Repeat("a", maxRecheckBody) + `"}`, 413, errorBody("request body larger than 16384 bytes"), aggregate.Device{}},
		{"GET", "GET", ``, 405, errorBody("method not allowed"), aggregate.Device{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc := &echoRechecker{}
			ts := newInsecure(t, func(c *Config) { c.Rechecker = rc })
			w := ts.do(tc.method, "/v1/recheck", tc.body)
			if w.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.wantStatus, w.Body)
			}
			if tc.wantStatus != 200 {
				if w.Body.String() != tc.wantBody {
					t.Errorf("body %s, want %s", w.Body, tc.wantBody)
				}
				if n := rc.calls.Load(); n != 0 {
					t.Errorf("rechecker called %d times for refused input", n)
				}
				return
			}
			if got := *rc.last.Load(); got != tc.want {
				t.Errorf("rechecker got %+v, want %+v", got, tc.want)
			}
			var b strings.Builder
			if err := WriteExplanation(&b, rc.Recheck(context.Background(), tc.want)); err != nil {
				t.Fatal(err)
			}
			if w.Body.String() != b.String() {
				t.Errorf("body\n%s\nwant the /v1/explain JSON\n%s", w.Body, b.String())
			}
		})
	}
}

func TestWhoMayRecheck(t *testing.T) {
	at := newAccessTeam(t)
	tests := []struct {
		name       string
		token      func(t *testing.T) string
		wantStatus int
	}{
		{"no token", func(*testing.T) string { return "" }, 401},
		{"expired token", func(t *testing.T) string {
			return at.token(t, func(c map[string]any) { c["exp"] = c["iat"].(int64) - 3600 })
		}, 403},
		{"user token, service tokens only", func(t *testing.T) string { return at.token(t, userToken) }, 403},
		{"service token", func(t *testing.T) string { return at.token(t, nil) }, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc := &echoRechecker{}
			ts := newSecure(t, at, func(c *Config) { c.Rechecker, c.ServiceTokensOnly = rc, true })
			var hdr []string
			if tok := tc.token(t); tok != "" {
				hdr = []string{"Cf-Access-Jwt-Assertion", tok}
			}
			if w := ts.do("POST", "/v1/recheck", `{"serial_number":"S1"}`, hdr...); w.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.wantStatus, w.Body)
			}
			if n := rc.calls.Load(); (n == 1) != (tc.wantStatus == 200) {
				t.Errorf("rechecker called %d times", n)
			}
		})
	}
	t.Run("not configured", func(t *testing.T) {
		if w := newInsecure(t).do("POST", "/v1/recheck", `{"serial_number":"S1"}`); w.Code != 404 {
			t.Errorf("status %d without a Rechecker, want 404", w.Code)
		}
	})
}

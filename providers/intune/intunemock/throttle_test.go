package intunemock

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// TestRetryAfter checks Retry-After on every kind of 429: whole seconds
// rounded up by default, millisecond fractions only with
// FractionalRetryAfter.
func TestRetryAfter(t *testing.T) {
	tests := []struct {
		name       string
		fractional bool
		wait       time.Duration
		want       string
	}{
		{name: "whole seconds kept", wait: 2 * time.Second, want: "2"},
		{name: "fraction rounded up", wait: 1500 * time.Millisecond, want: "2"},
		{name: "just over a second", wait: 1001 * time.Millisecond, want: "2"},
		{name: "under a second is one", wait: 25 * time.Millisecond, want: "1"},
		{name: "no wait is one second", wait: 0, want: "1"},
		{name: "fractional quirk", fractional: true, wait: 2128 * time.Millisecond, want: "2.128"},
		{name: "fractional quirk, whole", fractional: true, wait: 2 * time.Second, want: "2"},
		{name: "fractional quirk, tiny", fractional: true, wait: 25 * time.Millisecond, want: "0.025"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Options{Devices: fixture(2), FractionalRetryAfter: tc.fractional})
			list := h.ts.URL + "/v1.0/deviceManagement/managedDevices"

			h.srv.Faults.RateLimit(1, tc.wait)
			if status, _, hdr := h.get(list); status != http.StatusTooManyRequests || hdr.Get("Retry-After") != tc.want {
				t.Errorf("request: status %d Retry-After %q, want %q", status, hdr.Get("Retry-After"), tc.want)
			}

			h.srv.ItemFaults.RateLimit(1, tc.wait)
			_, body, _ := h.post(h.ts.URL+"/v1.0/$batch", batchItems(1, func(int) string { return "/deviceManagement/managedDevices" }))
			var r batchResp
			if err := json.Unmarshal(body, &r); err != nil || len(r.Responses) != 1 {
				t.Fatalf("batch answer %s: %v", body, err)
			}
			if a := r.Responses[0]; a.Status != http.StatusTooManyRequests || a.Headers["Retry-After"] != tc.want {
				t.Errorf("batch item: status %d Retry-After %q, want %q", a.Status, a.Headers["Retry-After"], tc.want)
			}

			h.srv.TokenFaults.RateLimit(1, tc.wait)
			status, _, hdr := h.form(h.ts.URL+"/"+DefaultTenantID+"/oauth2/v2.0/token", url.Values{}, nil)
			if status != http.StatusTooManyRequests || hdr.Get("Retry-After") != tc.want {
				t.Errorf("token: status %d Retry-After %q, want %q", status, hdr.Get("Retry-After"), tc.want)
			}
		})
	}
}

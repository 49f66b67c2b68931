package server

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/postured/postured/history"
)

// storedHistory is a history with one steady and one changed device.
func storedHistory(t *testing.T) HistoryReader {
	t.Helper()
	at := time.Date(2026, 12, 1, 9, 14, 0, 0, time.UTC)
	m, err := history.NewMemory(history.MemoryConfig{MaxDevices: 10, MaxBytes: 1 << 20, MaxChanges: 5, Retention: time.Hour,
		Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	state := func(score int, compliance string) history.State {
		return history.State{Score: score, Providers: []history.ProviderState{{Name: "intune", Outcome: "matched", RecordID: "i1", Reason: "complianceState=" + compliance, Score: score}}}
	}
	for i, s := range []history.State{state(100, "compliant"), state(0, "noncompliant")} {
		err := m.Apply(t.Context(), at.Add(time.Duration(i-1)*time.Minute), []history.Update{{DeviceID: "steady", State: state(100, "compliant")}, {DeviceID: "blocked", State: s}})
		if err != nil {
			t.Fatal(err)
		}
	}
	return m
}

type failingHistory struct{}

func (failingHistory) Device(context.Context, string) (history.Device, bool, error) {
	return history.Device{}, false, errors.New("redis down at 10.0.0.7:6379")
}

func TestHistoryEndpoint(t *testing.T) {
	steady := `{
  "device_id": "steady",
  "score": 100,
  "seen_at": "2026-12-01T09:14:00Z",
  "changes": []
}
`
	blocked := `{
  "device_id": "blocked",
  "score": 0,
  "seen_at": "2026-12-01T09:14:00Z",
  "changes": [
    {
      "at": "2026-12-01T09:14:00Z",
      "old_score": 100,
      "new_score": 0,
      "causes": [
        "intune complianceState compliant -> noncompliant"
      ]
    }
  ]
}
`
	tests := []struct {
		name, method, query string
		reader              HistoryReader
		wantStatus          int
		wantBody            string
	}{
		{"seen, never changed", "GET", "device_id=steady", nil, 200, steady},
		{"changed", "GET", "device_id=blocked", nil, 200, blocked},
		{"never seen", "GET", "device_id=ghost", nil, 404, errorBody("device_id not seen in any batch")},
		{"missing", "GET", "", nil, 400, errorBody("device_id is required")},
		{"empty", "GET", "device_id=", nil, 400, errorBody("device_id is required")},
		{"oversized", "GET", "device_id=" + strings.Repeat("x", maxIdentifierBytes+1), nil, 400, errorBody("device_id: longer than 256 bytes")},
		{"256 bytes is allowed", "GET", "device_id=" + strings.Repeat("x", maxIdentifierBytes), nil, 404, errorBody("device_id not seen in any batch")},
		{"POST", "POST", "device_id=steady", nil, 405, errorBody("method not allowed")},
		{"store down", "GET", "device_id=steady", failingHistory{}, 503, errorBody("history unavailable")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.reader
			if r == nil {
				r = storedHistory(t)
			}
			ts := newInsecure(t, func(c *Config) { c.History = r })
			w := ts.do(tc.method, "/v1/history?"+tc.query, "")
			if w.Code != tc.wantStatus || w.Body.String() != tc.wantBody {
				t.Fatalf("got %d %s\nwant %d %s", w.Code, w.Body, tc.wantStatus, tc.wantBody)
			}
			if w.Code == 200 && w.Header().Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type %q", w.Header().Get("Content-Type"))
			}
			if strings.Contains(ts.logs.String(), "10.0.0.7") != (tc.reader != nil) {
				t.Errorf("the store's error should be logged, never answered: logs %s", ts.logs)
			}
		})
	}
	t.Run("not configured", func(t *testing.T) {
		if w := newInsecure(t).do("GET", "/v1/history?device_id=steady", ""); w.Code != 404 {
			t.Errorf("status %d without a history, want 404", w.Code)
		}
	})
}

// TestWhoMayReadHistory: a device's history discloses its posture, so it
// is guarded exactly like /posture.
func TestWhoMayReadHistory(t *testing.T) {
	at := newAccessTeam(t)
	tests := []struct {
		name       string
		token      func(t *testing.T) string
		wantStatus int
	}{
		{"no token", func(*testing.T) string { return "" }, 401},
		{"wrong audience", func(t *testing.T) string {
			return at.token(t, func(c map[string]any) { c["aud"] = []string{"other"} })
		}, 403},
		{"user token, service tokens only", func(t *testing.T) string { return at.token(t, userToken) }, 403},
		{"service token", func(t *testing.T) string { return at.token(t, nil) }, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newSecure(t, at, func(c *Config) { c.History, c.ServiceTokensOnly = storedHistory(t), true })
			var hdr []string
			if tok := tc.token(t); tok != "" {
				hdr = []string{"Cf-Access-Jwt-Assertion", tok}
			}
			w := ts.do("GET", "/v1/history?device_id=steady", "", hdr...)
			if w.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.wantStatus, w.Body)
			}
			if w.Code == 200 {
				var d history.Device
				if err := json.Unmarshal(w.Body.Bytes(), &d); err != nil || d.DeviceID != "steady" {
					t.Errorf("body %s: %v", w.Body, err)
				}
			}
		})
	}
}

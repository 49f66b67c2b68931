package jamf

import (
	"encoding/json"
	"testing"
	"time"
)

func TestRefreshAt(t *testing.T) {
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		exp  time.Time
		want time.Time
	}{
		{"unknown", time.Time{}, time.Time{}},
		{"normal lifetime kept", now.Add(20 * time.Minute), now.Add(20 * time.Minute)},
		{"short lifetime used for half", now.Add(40 * time.Second), now.Add(tokenEarly + 20*time.Second)},
		{"already past (clock skew)", now.Add(-time.Minute), time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := refreshAt(now, tc.exp); !got.Equal(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDecodeLenient(t *testing.T) {
	var m mobileDevice
	if err := json.Unmarshal([]byte(`{"mobileDeviceId": 3, "general": {"displayName": "x", "managed": true,
		"lastInventoryUpdateDate": "2026-11-20T10:00:00.5"}}`), &m); err != nil {
		t.Fatal(err)
	}
	r := scoring{encrypted: 100, unencrypted: 50}.mobile(&m)
	if r.ID != "mobile-3" || !r.LastSeen.Equal(time.Date(2026, 11, 20, 10, 0, 0, 5e8, time.UTC)) || r.Score != 50 {
		t.Fatalf("%+v", r)
	}
	var c computer
	for _, in := range []string{`{"id": "9"}`, `{"id": 9}`} {
		if err := json.Unmarshal([]byte(in), &c); err != nil || c.ID != "9" {
			t.Fatalf("%s: %q %v", in, c.ID, err)
		}
	}
	if err := json.Unmarshal([]byte(`{"id": null}`), &c); err != nil || c.ID != "" {
		t.Fatalf("null id: %q %v", c.ID, err)
	}
	if err := json.Unmarshal([]byte(`{"id": {}}`), &c); err == nil {
		t.Fatal("object id accepted")
	}
}

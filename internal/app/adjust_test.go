package app

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postured/postured/aggregate"
)

// TestAdjustmentsWired runs the real app with hysteresis and a config
// override: /posture, /v1/explain, /v1/recheck and App.Explain see the same final
// score, explanations (and rechecks) say what adjusted it, and only
// /posture batches advance the hysteresis state.
func TestAdjustmentsWired(t *testing.T) {
	dir := t.TempDir()
	inv := filepath.Join(dir, "inventory.yaml")
	base := time.Now().Add(-time.Hour)
	writeFile(t, inv, "devices:\n  - {id: a1, serial_number: SER1, score: 90}\n  - {id: a2, serial_number: SER2, score: 10}\n", base)
	until := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	cfg, err := Parse([]byte(`
listen: "127.0.0.1:0"
access: {insecure_skip_verify: true}
posture:
  hysteresis: {threshold: 50, hold_evaluations: 2}
providers:
  - {name: inventory, type: static, weight: 1, file: "`+inv+`"}
overrides:
  - {serial: ser2, score: 100, until: "`+until+`", reason: "loaner, ticket 123"}
`), Registry(), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	a, err := Build(cfg, Registry(), slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv, closeFn, err := a.NewServer(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	h := srv.Handler()

	posture := func(t *testing.T) map[string]int {
		t.Helper()
		body := `{"devices":[{"device_id":"cf-1","serial_number":"SER1"},{"device_id":"cf-2","serial_number":"SER2"}]}`
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/posture", strings.NewReader(body)))
		var reply struct {
			Result map[string]struct{ Score int } `json:"result"`
		}
		if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &reply) != nil {
			t.Fatalf("posture: %d %s", w.Code, w.Body)
		}
		out := map[string]int{}
		for id, r := range reply.Result {
			out[id] = r.Score
		}
		return out
	}
	explain := func(t *testing.T, query string) aggregate.Explanation {
		t.Helper()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v1/explain?"+query, nil))
		var ex aggregate.Explanation
		if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &ex) != nil {
			t.Fatalf("explain: %d %s", w.Code, w.Body)
		}
		return ex
	}
	wantAdjusted := func(t *testing.T, ex aggregate.Explanation, score int, kind, note string) {
		t.Helper()
		if ex.Score != score || len(ex.Adjustments) != 1 || ex.Adjustments[0].Kind != kind || !strings.Contains(ex.Adjustments[0].Note, note) {
			t.Errorf("explanation score %d, adjustments %+v; want %d after one %s noting %q", ex.Score, ex.Adjustments, score, kind, note)
		}
	}

	if got := posture(t); got["cf-1"] != 90 || got["cf-2"] != 100 {
		t.Fatalf("first batch %v: want cf-1 90, cf-2 overridden to 100", got)
	}
	wantAdjusted(t, explain(t, "serial=SER2"), 100, "override", "config override on serial until "+until+": loaner, ticket 123")
	if n := strings.Count(logs.String(), `"msg":"override applied","component":"adjust","device_id":"cf-2"`); n != 1 {
		t.Errorf("override logged %d times for the batch, want 1:\n%s", n, logs.String())
	}

	writeFile(t, inv, "devices:\n  - {id: a1, serial_number: SER1, score: 20}\n  - {id: a2, serial_number: SER2, score: 10}\n", base.Add(time.Minute))
	a.SyncNow(t.Context())

	// Explanations read the state: with the device_id the next batch
	// would hold 90; without it nothing was read.
	for range 2 {
		ex := explain(t, "serial=SER1&device_id=cf-1")
		wantAdjusted(t, ex, 90, "hysteresis", "low evaluation 1 of hold_evaluations 2")
		if ex.DeviceID != "cf-1" {
			t.Errorf("device_id %q", ex.DeviceID)
		}
	}
	ex := explain(t, "serial=SER1")
	wantAdjusted(t, ex, 20, "hysteresis", "not applied: no device_id given")
	if cli := a.Explain(t.Context(), aggregate.Device{Serial: "SER1"}); cli.Score != ex.Score || cli.DeviceID != "explain" || len(cli.Adjustments) != 1 {
		t.Errorf("App.Explain %+v differs from /v1/explain %+v", cli, ex)
	}

	// A recheck answers the final score too, and does not advance the state.
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/recheck", strings.NewReader(`{"device_id":"cf-1","serial_number":"SER1"}`)))
	var rechecked aggregate.Explanation
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &rechecked) != nil {
		t.Fatalf("recheck: %d %s", w.Code, w.Body)
	}
	wantAdjusted(t, rechecked, 90, "hysteresis", "low evaluation 1 of hold_evaluations 2")

	// Two explanations and a recheck did not count as low evaluations: the
	// batch holds.
	if got := posture(t); got["cf-1"] != 90 {
		t.Fatalf("first low batch: cf-1 %d, want 90 held", got["cf-1"])
	}
	wantAdjusted(t, explain(t, "serial=SER1&device_id=cf-1"), 20, "hysteresis", "released: 2 consecutive low evaluations")
	if got := posture(t); got["cf-1"] != 20 || got["cf-2"] != 100 {
		t.Fatalf("second low batch %v: want cf-1 released to 20", got)
	}
}

package app

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/server"
)

// whatIfApp is an app over a static inventory with admin_listen set, after
// one batch of three devices.
func whatIfApp(t *testing.T) (*App, http.Handler, string) {
	t.Helper()
	dir := t.TempDir()
	inv := filepath.Join(dir, "inventory.yaml")
	writeFile(t, inv, "devices:\n  - {id: a1, serial_number: S1, score: 90}\n  - {id: a2, serial_number: S2, score: 60}\n", time.Now())
	base := "listen: \"127.0.0.1:0\"\nadmin_listen: \"127.0.0.1:0\"\naccess: {insecure_skip_verify: true}\nproviders:\n  - {name: inventory, type: static, weight: 1, file: \"" + inv + "\"}\n"
	cfg, err := Parse([]byte(base), Registry(), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	a, err := Build(cfg, Registry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv, closeFn, err := a.NewServer(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = closeFn() })
	devices := []aggregate.Device{{ID: "d1", Serial: "S1"}, {ID: "d2", Serial: "S2"}, {ID: "d3", Serial: "S3"}}
	res, stats := a.Engine().Evaluate(t.Context(), devices)
	for _, o := range a.observers {
		o.ObserveBatch(t.Context(), server.Batch{At: time.Now(), Devices: devices, Results: res, Stats: stats})
	}
	return a, srv.AdminHandler(), base
}

func TestWhatIfRoute(t *testing.T) {
	_, admin, base := whatIfApp(t)
	post := func(query, body string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		admin.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/whatif"+query, strings.NewReader(body)))
		return w
	}
	// Unmatched devices score 70 instead of 0: d3 rises across 50.
	w := post("?thresholds=50,95", base+"posture: {unmatched_score: 70}\n")
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	for _, want := range []string{`"devices":3`, `"changed":1`, `"raised":1`, `"threshold":50,"down":[],"up":[{"device_id":"d3","from":0,"to":70,"reason":"providers unchanged; no provider matched: unmatched_score"}]`, `"threshold":95,"down":[],"up":[]`} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("answer lacks %s:\n%s", want, w.Body)
		}
	}

	for _, tc := range []struct {
		name, query, body string
		status            int
		err               string
	}{
		{"threshold not a number", "?thresholds=50,abc", base, 400, `thresholds: "abc" is not a score 1..100`},
		{"threshold out of range", "?thresholds=0", base, 400, `thresholds: "0" is not a score 1..100`},
		{"too many thresholds", "?thresholds=1,2,3,4,5,6,7,8,9,10,11", base, 400, "thresholds: at most 10, got 11"},
		{"bad window", "?window=-1h", base, 400, `window: "-1h" is not a positive duration`},
		{"invalid proposed config", "", base + "posture: {unmatched_score: 200}\n", 400, "proposed config: line 6: posture.unmatched_score: must be 0..100, got 200"},
		{"empty proposed config", "", "", 400, "proposed config: file is empty"},
		{"oversized proposed config", "", base + "#" + strings.Repeat("x", maxProposedBytes), 413, "proposed config larger than 1048576 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := post(tc.query, tc.body)
			if w.Code != tc.status || !strings.Contains(w.Body.String(), `"error":"`+strings.ReplaceAll(tc.err, `"`, `\"`)+`"`) {
				t.Errorf("status %d %s, want %d with error %q", w.Code, w.Body, tc.status, tc.err)
			}
		})
	}

	// The server's environment fills ${VAR}s, but an error never quotes
	// what it filled in: the endpoint is no way to read a secret back.
	t.Setenv("WHATIF_TEST_SECRET", "s3cr3t-token-value")
	w = post("", strings.Replace(base, `listen: "127.0.0.1:0"`, `listen: "${WHATIF_TEST_SECRET}"`, 1))
	if w.Code != http.StatusBadRequest || strings.Contains(w.Body.String(), "s3cr3t") ||
		!strings.Contains(w.Body.String(), `listen: \"${WHATIF_TEST_SECRET}\" is not host:port`) {
		t.Errorf("status %d %s: want 400 naming ${WHATIF_TEST_SECRET}, never its value", w.Code, w.Body)
	}

	w = httptest.NewRecorder()
	admin.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v1/whatif", nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/whatif: %d", w.Code)
	}
}

func TestShadowPolicyConfig(t *testing.T) {
	dir := t.TempDir()
	inv := filepath.Join(dir, "inventory.yaml")
	writeFile(t, inv, "devices:\n  - {id: a1, serial_number: S1, score: 90}\n", time.Now())
	base := "access: {insecure_skip_verify: true}\nlisten: \"127.0.0.1:0\"\nproviders:\n  - {name: inventory, type: static, weight: 1, file: \"" + inv + "\"}\nshadow_policies:\n"
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"valid", "  - {name: strict, unmatched_score: 0, providers: {inventory: {weight: 2, required: true, on_error: zero, max_last_seen: 7d}}}\n", ""},
		{"bad name", "  - {name: \"Strict Policy\"}\n", `line 6: shadow_policies[0].name: must be 1-63 of a-z, 0-9, _ and -, got "Strict Policy"`},
		{"duplicate name", "  - {name: a}\n  - {name: a}\n", `line 7: shadow_policies[1].name: "a" is used twice`},
		{"unknown provider", "  - {name: a, providers: {jamf: {weight: 1}}}\n", "line 6: shadow_policies[0].providers.jamf: names no provider of this config"},
		{"weight", "  - {name: a, providers: {inventory: {weight: 0}}}\n", "line 6: shadow_policies[0].providers.inventory.weight: must be > 0, got 0"},
		{"on_error", "  - {name: a, providers: {inventory: {on_error: ignore}}}\n", `line 6: shadow_policies[0].providers.inventory.on_error: must be stale, exclude or zero, got "ignore"`},
		{"unmatched score", "  - {name: a, unmatched_score: 101}\n", "line 6: shadow_policies[0].unmatched_score: must be 0..100, got 101"},
		{"scoring keys are not policy", "  - {name: a, providers: {inventory: {file: /x}}}\n", `unknown key "file"`},
		{"too many", strings.Repeat("  - {name: a}\n", 6), "shadow_policies: at most 5 policies (each re-scores every batch), got 6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(base+tc.yaml), Registry(), func(string) (string, bool) { return "", false })
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

// External Evaluation and what-if read one posture memory: a 100k fleet's
// identifiers are held once, whichever of the two is on.
func TestOnePostureMemory(t *testing.T) {
	dir := t.TempDir()
	inv := filepath.Join(dir, "inventory.yaml")
	writeFile(t, inv, "devices:\n  - {id: a1, serial_number: S1, score: 90}\n", time.Now())
	base := "listen: \"127.0.0.1:0\"\naccess: {team_domain: \"https://example.cloudflareaccess.com\", audience: [aud]}\nproviders:\n  - {name: inventory, type: static, weight: 1, file: \"" + inv + "\"}\n"
	const admin = "admin_listen: \"127.0.0.1:0\"\n"
	ee := "external_evaluation:\n  enabled: true\n  key_file: \"" + filepath.Join(dir, "ee.pem") + "\"\n  rules:\n    - {name: r, action: allow, when: {score: {min: 50}}}\n"
	for _, tc := range []struct {
		name, yaml string
		want       int
	}{
		{"neither", base, 0},
		{"admin_listen", base + admin, 1},
		{"external evaluation", base + ee, 1},
		{"both", base + admin + ee, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.yaml), Registry(), func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatal(err)
			}
			a, err := Build(cfg, Registry(), slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, o := range a.observers {
				if _, ok := o.(*server.PostureMemory); ok {
					n++
				}
			}
			if n != tc.want || (a.memory != nil) != (tc.want > 0) {
				t.Errorf("%d posture memories observe batches (memory set: %v), want %d", n, a.memory != nil, tc.want)
			}
		})
	}
}

package main

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/postured/postured/internal/redistest"
)

// TestHistoryAPIAndCLI: a device re-enrolled between two batches has one
// change, with its causes, in GET /v1/history and in `postured history`
// (reading the Redis the server writes); a device answered twice with the
// same score has none; a device never seen is 404 and an error.
func TestHistoryAPIAndCLI(t *testing.T) {
	dir := t.TempDir()
	writeInventory(t, dir, 60)
	srv := redistest.StartTLS(t, "postured:*")
	cfg := strings.ReplaceAll(e2eConfig, "%DIR%", dir) +
		"cache: {backend: redis, redis_url: \"" + srv.URL + "\", redis_tls_ca_file: \"" + srv.CAFile + "\"}\n" +
		"history: {enabled: true, max_changes: 5, retention: 1h}\n"
	in := startPostured(t, cfg)
	token, err := in.issuer.AppToken(testAUD, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// cf-1 first carries serial 1 (score 1), then serial 50 (score 50):
	// re-enrolled as another inventory record.
	for _, serial := range []string{"ser00001", "ser00050"} {
		body := batch(1, 2, func(i int, d map[string]string) {
			if i == 1 {
				d["serial_number"] = serial
			}
		})
		if code, b := in.post(t, "/posture", token, body); code != http.StatusOK {
			t.Fatalf("posture: %d %s", code, b)
		}
	}
	cli := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"history", "-c", in.cfgPath}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}

	code, api := in.do(t, http.MethodGet, "/v1/history?device_id=cf-1", token, nil)
	if code != http.StatusOK {
		t.Fatalf("/v1/history: %d %s", code, api)
	}
	if c, out, errs := cli("--device-id", "cf-1", "--json"); c != 0 || out != string(api) {
		t.Errorf("history --json: exit %d %s\n%s\nwant the API's\n%s", c, errs, out, api)
	}
	for _, want := range []string{`"score": 50`, `"old_score": 1`, `"new_score": 50`,
		`"inventory re-enrolled: record asset-1 -> asset-50"`, `"inventory reason \"inventory score 1\" -> \"inventory score 50\""`} {
		if !strings.Contains(string(api), want) {
			t.Errorf("/v1/history lacks %s:\n%s", want, api)
		}
	}
	c, out, errs := cli("--device-id", "cf-1")
	text := regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  1    50   inventory re-enrolled: record asset-1 -> asset-50; inventory reason "inventory score 1" -> "inventory score 50"$`)
	if c != 0 || !strings.HasPrefix(out, "device: cf-1\nscore:  50 (last answered ") || !text.MatchString(out) {
		t.Errorf("history: exit %d %s\n%s", c, errs, out)
	}

	// The status page's device view reads the same history.
	code, page := in.do(t, http.MethodGet, "/status?serial=ser00050&device_id=cf-1", token, nil)
	change := regexp.MustCompile(`<tr class="change"><td class="time">\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ</td><td class="num">1 -&gt; 50</td>` +
		`<td>inventory re-enrolled: record asset-1 -&gt; asset-50<br>inventory reason &#34;inventory score 1&#34; -&gt; &#34;inventory score 50&#34;</td></tr>`)
	if code != http.StatusOK || !change.Match(page) {
		t.Errorf("/status device view: %d, lacks the change:\n%s", code, page)
	}
	if code, page := in.do(t, http.MethodGet, "/status?serial=ser00002&device_id=cf-2", token, nil); code != http.StatusOK ||
		!strings.Contains(string(page), "No change since first seen.") {
		t.Errorf("/status steady device: %d\n%s", code, page)
	}

	code, api = in.do(t, http.MethodGet, "/v1/history?device_id=cf-2", token, nil)
	if code != http.StatusOK || !strings.Contains(string(api), `"changes": []`) || !strings.Contains(string(api), `"score": 2`) {
		t.Errorf("steady device: %d %s", code, api)
	}
	if c, out, _ := cli("--device-id", "cf-2"); c != 0 || !strings.HasSuffix(out, "\nno score change recorded\n") {
		t.Errorf("steady device: exit %d\n%s", c, out)
	}

	if code, api := in.do(t, http.MethodGet, "/v1/history?device_id=cf-404", token, nil); code != http.StatusNotFound {
		t.Errorf("never-seen device: %d %s", code, api)
	}
	if c, _, errs := cli("--device-id", "cf-404"); c != 1 || errs != "postured: history: device cf-404 not seen in any batch (or forgotten after history.retention)\n" {
		t.Errorf("never-seen device: exit %d %q", c, errs)
	}
	if code, _ := in.do(t, http.MethodGet, "/v1/history?device_id=cf-1", "", nil); code != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", code)
	}
	if c, _, errs := cli(); c != 1 || errs != "postured: history: --device-id is required\n" {
		t.Errorf("no device id: exit %d %q", c, errs)
	}
}

func TestHistoryCLIRefusesWhatItCannotRead(t *testing.T) {
	dir := t.TempDir()
	inv := writeFile(t, dir, "inv.yaml", minimalInventory)
	base := "access: {team_domain: t.cloudflareaccess.com, audience: [a]}\nproviders:\n  - {name: inv, type: static, weight: 1, file: " + inv + "}\n"
	tests := []struct{ name, extra, want string }{
		{"memory backend", "history: {enabled: true}\n",
			"postured: history: with cache.backend: memory the history lives in the serving process; ask it with GET /v1/history?device_id=ID (Access JWT, like /posture)\n"},
		{"disabled", "", "postured: history: not enabled (history.enabled: false)\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, t.TempDir(), "c.yaml", base+tc.extra)
			var out, errb bytes.Buffer
			if code := run(context.Background(), []string{"history", "-c", p, "--device-id", "x"}, &out, &errb); code != 1 || errb.String() != tc.want {
				t.Errorf("exit %d, stderr %q, want %q", code, errb.String(), tc.want)
			}
		})
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/internal/app"
	"github.com/postured/postured/internal/redistest"
)

// TestAdjustConfigErrors: posture.hysteresis and overrides are validated
// with exact messages and the file line of the key at fault.
func TestAdjustConfigErrors(t *testing.T) {
	dir := t.TempDir()
	inv := writeFile(t, dir, "inv.yaml", minimalInventory)
	base := "access: {team_domain: t.cloudflareaccess.com, audience: [a]}\nproviders:\n  - {name: inv, type: static, weight: 1, file: " + inv + "}\n"
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"valid", "posture:\n  hysteresis: {threshold: 50, hold_evaluations: 3, hold_for: 15m}\noverrides:\n" +
			"  - {serial: S1, score: 100, until: \"2026-12-01T00:00:00Z\", reason: \"loaner, ticket 123\"}\n" +
			"  - {device_id: cf-1, score: 0, until: \"2026-12-01T00:00:00Z\", reason: lost}\n" +
			"  - {email: a@example.com, score: 70, until: \"2026-12-01T00:00:00Z\", reason: travel}\n", nil},
		{"hysteresis threshold and count", "posture:\n  hysteresis:\n    threshold: 0\n    hold_evaluations: 1\n", []string{
			"line 6: posture.hysteresis.threshold: must be 1..100, got 0",
			"line 7: posture.hysteresis.hold_evaluations: must be >= 2 (1 would hold nothing), or 0 to hold by hold_for alone, got 1",
		}},
		{"hysteresis holding nothing", "posture:\n  hysteresis: {threshold: 50}\n", []string{
			"line 5: posture.hysteresis: needs hold_evaluations, hold_for or both",
		}},
		{"hysteresis unknown key", "posture:\n  hysteresis: {threshold: 50, hold_evaluation: 3}\n", []string{
			`line 5: unknown key "hold_evaluation" (did you mean "hold_evaluations"?)`,
		}},
		{"override without reason or until", "overrides:\n  - serial: S1\n    score: 100\n", []string{
			"line 5: overrides[0].until: is required: when the override ends (RFC 3339, e.g. 2026-12-01T00:00:00Z)",
			"line 5: overrides[0].reason: is required: say why (a ticket, a loaner)",
		}},
		{"override with two selectors and a bad score", "overrides:\n  - {serial: S1, email: a@example.com, score: 101, until: \"2026-12-01T00:00:00Z\", reason: r}\n", []string{
			"line 5: overrides[0]: needs exactly one of serial, device_id, email, got serial and email",
			"line 5: overrides[0].score: must be 0..100, got 101",
		}},
		{"override without selector or score", "overrides:\n  - reason: r\n    until: \"2026-12-01T00:00:00Z\"\n", []string{
			"line 5: overrides[0]: needs exactly one of serial, device_id, email",
			"line 5: overrides[0].score: is required (0..100)",
		}},
		{"override bad time and placeholder serial", "overrides:\n  - serial: \"0\"\n    score: 1\n    until: 2026-12-01\n    reason: r\n", []string{
			`line 5: overrides[0].serial: "0" is not a usable serial (blank, a placeholder or over 256 bytes)`,
			`line 7: overrides[0].until: "2026-12-01" is not an RFC 3339 time (e.g. 2026-12-01T00:00:00Z)`,
		}},
		{"two overrides for one device", "overrides:\n  - {serial: s1, score: 1, until: \"2026-12-01T00:00:00Z\", reason: r}\n  - {serial: S1, score: 2, until: \"2026-12-01T00:00:00Z\", reason: r}\n", []string{
			`line 6: overrides[1]: serial "S1" already has an override: overrides[0] (line 5)`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, t.TempDir(), "postured.yaml", base+tc.yaml)
			_, err := app.Load(p, app.Registry(), env(nil))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			got := strings.Split(strings.TrimPrefix(err.Error(), "config: "+p+": "), "\n")
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("errors\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestCheckConfigWarnsExpiredOverride: an override whose until has passed
// is valid (it simply no longer applies) but check-config says so.
func TestCheckConfigWarnsExpiredOverride(t *testing.T) {
	dir := t.TempDir()
	inv := writeFile(t, dir, "inv.yaml", minimalInventory)
	future := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	p := writeFile(t, dir, "c.yaml", "access: {team_domain: t.cloudflareaccess.com, audience: [a]}\nproviders:\n  - {name: inv, type: static, weight: 1, file: "+inv+"}\n"+
		"overrides:\n  - {serial: S1, score: 100, until: \""+future+"\", reason: current}\n  - serial: S2\n    score: 100\n    until: \"2020-01-01T00:00:00Z\"\n    reason: old loaner\n")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"check-config", "-c", p}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	want := "postured: warning: line 8: overrides[1].until: 2020-01-01T00:00:00Z is in the past: the override no longer applies; remove it\n"
	if errb.String() != want {
		t.Errorf("stderr %q, want %q", errb.String(), want)
	}
	if !strings.Contains(out.String(), "reason: old loaner") {
		t.Errorf("effective config lacks the overrides:\n%s", out.String())
	}
}

// TestOverrideCLI adds, lists and removes runtime overrides in Redis (TLS,
// ACL user), checks that a postured built on the same config applies
// them, and that with the memory backend the commands say to use the
// config file.
func TestOverrideCLI(t *testing.T) {
	dir := t.TempDir()
	inv := writeFile(t, dir, "inv.yaml", "devices:\n  - {id: a1, serial_number: S1, score: 20}\n")
	future := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	common := "access: {team_domain: t.cloudflareaccess.com, audience: [a]}\nproviders:\n  - {name: inv, type: static, weight: 1, file: " + inv + "}\n" +
		"overrides:\n  - {email: a@example.com, score: 70, until: \"" + future + "\", reason: travel}\n"
	cli := func(t *testing.T, args ...string) (int, string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"override"}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}

	t.Run("memory backend", func(t *testing.T) {
		p := writeFile(t, t.TempDir(), "c.yaml", common)
		const msg = "postured: override add: overrides: cache.backend is memory: a running postured keeps its state in its own memory, which this command cannot reach; " +
			"add the override to overrides: in the config file (and restart), or use cache.backend: redis\n"
		if code, _, errb := cli(t, "add", "-c", p, "--serial", "S1", "--score", "100", "--until", future, "--reason", "loaner"); code != 1 || errb != msg {
			t.Errorf("add: exit %d, stderr %q; want 1, %q", code, errb, msg)
		}
		code, out, errb := cli(t, "list", "-c", p)
		if code != 0 || !strings.Contains(out, "config  email     a@example.com  70     "+future+"  active  travel") {
			t.Errorf("list: exit %d\n%s%s", code, out, errb)
		}
	})

	srv := redistest.StartTLS(t, "postured:*")
	p := writeFile(t, dir, "redis.yaml", common+"cache:\n  backend: redis\n  redis_url: \""+srv.URL+"\"\n  redis_tls_ca_file: "+srv.CAFile+"\n")
	cfg, err := app.Load(p, app.Registry(), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.Build(cfg, app.Registry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	score := func(t *testing.T) aggregate.Explanation {
		t.Helper()
		return a.Explain(t.Context(), aggregate.Device{Serial: "s1"})
	}
	if ex := score(t); ex.Score != 20 {
		t.Fatalf("before add: score %d", ex.Score)
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
		out  string
		errb string
	}{
		{"add needs a reason and a selector", []string{"add", "-c", p, "--score", "100", "--until", future}, 1, "",
			"postured: override add: needs exactly one of --serial, --device-id, --email; --reason is required: say why (a ticket, a loaner)\n"},
		{"add needs a score", []string{"add", "-c", p, "--serial", "S1", "--until", future, "--reason", "r"}, 1, "",
			"postured: override add: --score is required (0..100)\n"},
		{"add refuses the past", []string{"add", "-c", p, "--serial", "S1", "--score", "100", "--until", "2020-01-01T00:00:00Z", "--reason", "r"}, 1, "",
			"postured: overrides: add: until 2020-01-01T00:00:00Z is not in the future\n"},
		{"add", []string{"add", "-c", p, "--serial", "s1", "--score", "100", "--until", future, "--reason", "loaner, ticket 123"}, 0,
			"added: serial S1 scores 100 until " + future + " (loaner, ticket 123)\n", ""},
		{"remove an unknown one", []string{"remove", "-c", p, "--device-id", "cf-9"}, 1, "",
			"postured: override remove: no runtime override for device_id cf-9 (config file overrides are removed by editing the file)\n"},
		{"unknown verb", []string{"edit", "-c", p}, 1, "", "postured: " + overrideUsage + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errb := cli(t, tc.args...)
			if code != tc.code || out != tc.out || errb != tc.errb {
				t.Errorf("exit %d\nstdout %q\nstderr %q\nwant %d\n%q\n%q", code, out, errb, tc.code, tc.out, tc.errb)
			}
		})
	}

	ex := score(t)
	if ex.Score != 100 || len(ex.Adjustments) != 1 || ex.Adjustments[0].Note != "runtime override on serial until "+future+": loaner, ticket 123" {
		t.Errorf("after add: score %d, adjustments %+v", ex.Score, ex.Adjustments)
	}

	var text, errText bytes.Buffer
	if code := run(context.Background(), []string{"explain", "-c", p, "--serial", "S1"}, &text, &errText); code != 0 ||
		!strings.Contains(text.String(), "\nadjusted: override 20 -> 100: runtime override on serial until "+future+": loaner, ticket 123\n") {
		t.Errorf("explain: exit %d\n%s%s", code, text.String(), errText.String())
	}

	code, out, errb := cli(t, "list", "-c", p, "--json")
	var listed []struct {
		Source, Kind, Value, Reason string
		Score                       int
		Active                      bool
	}
	if code != 0 || json.Unmarshal([]byte(out), &listed) != nil {
		t.Fatalf("list --json: exit %d\n%s%s", code, out, errb)
	}
	if len(listed) != 2 || listed[0].Source != "config" || listed[0].Kind != "email" ||
		listed[1].Source != "runtime" || listed[1].Value != "S1" || listed[1].Score != 100 || !listed[1].Active {
		t.Errorf("list: %+v", listed)
	}

	if code, out, errb := cli(t, "remove", "-c", p, "--serial", "S1"); code != 0 || out != "removed: serial S1\n" {
		t.Fatalf("remove: exit %d\n%s%s", code, out, errb)
	}
	if ex := score(t); ex.Score != 20 || len(ex.Adjustments) != 0 {
		t.Errorf("after remove: score %d, adjustments %+v", ex.Score, ex.Adjustments)
	}
}

// TestExternalEvaluationSeesOverrides: External Evaluation decides on the
// final score, override included, both from the batch it remembers and
// when it recomputes a stale one (cache.ttl 1ns: always).
func TestExternalEvaluationSeesOverrides(t *testing.T) {
	dir := t.TempDir()
	writeInventory(t, dir, 100) // asset-7 scores 7
	until := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	cfgText := strings.ReplaceAll(e2eConfig, "%DIR%", dir) + `
external_evaluation:
  enabled: true
  key_file: "%DIR%/ee-key.pem"
  rules:
    - {name: healthy, action: allow, when: {score: {min: 50}}}
overrides:
  - {device_id: cf-7, score: 90, until: "` + until + `", reason: "loaner, ticket 123"}
`
	for _, tc := range []struct {
		name, cache string
	}{{"remembered", ""}, {"recomputed", "cache: {ttl: 1ns}\n"}} {
		t.Run(tc.name, func(t *testing.T) {
			in := startPostured(t, cfgText+tc.cache)
			token, _ := in.issuer.AppToken(testAUD, time.Minute)
			if code, b := in.post(t, "/posture", token, batch(0, 10, nil)); code != 200 || !strings.Contains(string(b), `"cf-7":{"s2s_id":"asset-7","score":90}`) {
				t.Fatalf("posture batch: %d %s", code, b)
			}
			for _, dev := range []struct {
				id    string
				allow bool
			}{{"cf-7", true}, {"cf-8", false}} {
				nonce := "nonce-" + dev.id
				code, b := evaluateToken(t, in, map[string]any{"nonce": nonce, "exp": time.Now().Add(time.Minute).Unix(), "iat": time.Now().Unix(),
					"identity": map[string]any{"email": "jdoe@example.com", "device_id": dev.id}})
				if code != 200 {
					t.Fatalf("%s: status %d: %s", dev.id, code, b)
				}
				if got := verifyAsAccess(t, in, b, nonce); got != dev.allow {
					t.Errorf("%s: success = %v, want %v", dev.id, got, dev.allow)
				}
			}
		})
	}
}

package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postured/postured/internal/app"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const minimalInventory = "devices:\n  - {id: a1, serial_number: S1, score: 80}\n"

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	inv := writeFile(t, dir, "inv.yaml", minimalInventory)
	base := func(extra string) string {
		return "access:\n  team_domain: t.cloudflareaccess.com\n  audience: [aud]\nproviders:\n  - {name: inv, type: static, weight: 1, file: " + inv + "}\n" + extra
	}
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		want []string
	}{
		{"empty file", "", nil, []string{"file is empty"}},
		{"unknown top-level key", base("lisen: \":80\"\n"), nil, []string{`line 6: unknown key "lisen" (did you mean "listen"?)`}},
		{"unknown nested key", base("posture:\n  max_device: 10\n"), nil, []string{`line 7: unknown key "max_device" (did you mean "max_devices"?)`}},
		{"unknown provider key", "access: {team_domain: t.cloudflareaccess.com, audience: [a]}\nproviders:\n  - name: inv\n    type: static\n    weight: 1\n    file: " + inv + "\n    wieght: 2\n", nil,
			[]string{`line 7: unknown key "wieght" (did you mean "weight"?)`}},
		{"unknown provider type", "access: {team_domain: t.cloudflareaccess.com, audience: [a]}\nproviders:\n  - {name: x, type: kandji, weight: 1}\n", nil,
			[]string{`line 3: providers[0]: unknown type "kandji" (known: `}},
		{"weight zero", "access: {team_domain: t.cloudflareaccess.com, audience: [a]}\nproviders:\n  - {name: x, type: static, weight: 0, file: " + inv + "}\n", nil,
			[]string{`line 3: providers[0]: provider "x": weight must be > 0, got 0`}},
		{"duplicate names", "access: {team_domain: t.cloudflareaccess.com, audience: [a]}\nproviders:\n  - {name: x, type: static, weight: 1, file: " + inv + "}\n  - {name: x, type: static, weight: 1, file: " + inv + "}\n", nil,
			[]string{`line 4: providers[1]: name "x" already used on line 3`}},
		{"bad duration", base("posture: {deadline: 4 seconds}\n"), nil, []string{`line 6: invalid duration "4 seconds"`}},
		{"bad on_error", "access: {team_domain: t.cloudflareaccess.com, audience: [a]}\nproviders:\n  - {name: x, type: static, weight: 1, on_error: ignore, file: " + inv + "}\n", nil,
			[]string{`on_error must be stale, exclude or zero, got "ignore"`}},
		{"unset variable", base("listen: \"${PORT_UNSET}\"\n"), nil, []string{"line 6: environment variable PORT_UNSET is not set"}},
		{"no providers", "access: {team_domain: t.cloudflareaccess.com, audience: [a]}\n", nil, []string{"providers: at least one provider is required"}},
		{"no team domain", "access: {audience: [a]}\nproviders:\n  - {name: x, type: static, weight: 1, file: " + inv + "}\n", nil,
			[]string{"access.team_domain: is required"}},
		{"empty audience", "access: {team_domain: t.cloudflareaccess.com, audience: []}\nproviders:\n  - {name: x, type: static, weight: 1, file: " + inv + "}\n", nil,
			[]string{"line 1: access.audience: at least one non-empty AUD tag is required"}},
		{"redis without url", base("cache: {backend: redis}\n"), nil, []string{"line 6: cache.redis_url: is required with backend: redis"}},
		{"shared crawls without redis", base("cache: {backend: memory, share_crawls: true}\n"), nil, []string{"line 6: cache.share_crawls: needs backend: redis"}},
		{"shared crawls off without redis", base("cache: {backend: memory, share_crawls: false}\n"), nil, nil},
		{"unknown s2s source", base("posture: {s2s_id_from: [nope]}\n"), nil, []string{`line 6: posture.s2s_id_from: names unknown provider "nope"`}},
		{"leeway over a minute", "access: {team_domain: t.cloudflareaccess.com, audience: [a], leeway: 2m}\nproviders:\n  - {name: x, type: static, weight: 1, file: " + inv + "}\n", nil,
			[]string{"line 1: access.leeway: must be 0s..60s, got 2m0s"}},
		{"valid", base(""), nil, nil},
		{"require_email_match_for serial", "access: {team_domain: t.cloudflareaccess.com, audience: [a]}\nproviders:\n  - {name: x, type: static, weight: 1, require_email_match_for: [hostname, serial], file: " + inv + "}\n", nil,
			[]string{`line 3: providers[0]: provider "x": require_email_match_for[1] must be mac or hostname, got "serial"`}},
		{"certs_url over http", "access: {team_domain: t.cloudflareaccess.com, audience: [a], certs_url: \"http://mockvendors:9000/certs\"}\nproviders:\n  - {name: x, type: static, weight: 1, file: " + inv + "}\n", nil,
			[]string{`line 1: access.certs_url: must use https: plain http is allowed only to a loopback host (localhost, 127.0.0.1, ::1), got "http://mockvendors:9000/certs"`}},
		{"certs_url over http to loopback", "access: {team_domain: t.cloudflareaccess.com, audience: [a], certs_url: \"http://127.0.0.1:9000/certs\"}\nproviders:\n  - {name: x, type: static, weight: 1, file: " + inv + "}\n", nil, nil},
		{"vendor base_url over http", base("  - {name: j, type: jamf, weight: 1, base_url: \"http://jamf.internal\", client_id: c, client_secret: s}\n"), nil,
			[]string{`line 6: providers[1]: provider "j": base_url must use https`}},
		{"history valid", base("history: {enabled: true, max_changes: 50, retention: 72h, max_bytes: 1048576}\n"), nil, nil},
		{"history max_changes", base("history:\n  enabled: true\n  max_changes: 1001\n"), nil, []string{"line 8: history.max_changes: must be 1..1000, got 1001"}},
		{"history negative max_changes", base("history: {enabled: true, max_changes: -1}\n"), nil, []string{"line 6: history.max_changes: must be 1..1000, got -1"}},
		{"history retention", base("history:\n  enabled: true\n  retention: -1h\n"), nil, []string{"line 8: history.retention: must be > 0"}},
		{"history max_bytes", base("history: {enabled: true, max_bytes: 4096}\n"), nil, []string{"line 6: history.max_bytes: must be >= 1048576 (1 MiB), got 4096"}},
		{"history unknown key", base("history: {enabled: true, max_change: 5}\n"), nil, []string{`unknown key "max_change" (did you mean "max_changes"?)`}},
		{"max devices", base("posture: {max_devices: 20000}\n"), nil, []string{"line 6: posture.max_devices: must be 1..10000, got 20000"}},
		{"bad listen", base("listen: \"8080\"\n"), nil, []string{`line 6: listen: "8080" is not host:port`}},
		{"bad admin_listen", base("admin_listen: \"9090\"\n"), nil, []string{`line 6: admin_listen: "9090" is not host:port`}},
		{"admin_listen same as listen", base("listen: \":8080\"\nadmin_listen: \":8080\"\n"), nil, []string{`line 7: admin_listen: must differ from listen`}},
		{"audit without path", base("audit: {enabled: true}\n"), nil, []string{"line 6: audit.path: is required with audit.enabled: true"}},
		{"audit path is a directory", base("audit:\n  enabled: true\n  path: /var/lib/postured/\n"), nil,
			[]string{`line 8: audit.path: "/var/lib/postured/" names a directory`}},
		{"audit files too small", base("audit:\n  enabled: true\n  path: /a/audit.jsonl\n  max_file_bytes: 4096\n"), nil,
			[]string{"line 9: audit.max_file_bytes: must be >= 1048576 (1 MiB), got 4096"}},
		{"audit negative retention", base("audit:\n  enabled: true\n  path: /a/audit.jsonl\n  retention:\n    max_files: -1\n    max_age: -1h\n"), nil,
			[]string{"line 10: audit.retention.max_files: must be >= 0", "line 11: audit.retention.max_age: must be >= 0"}},
		{"audit unknown key", base("audit: {enabled: true, path: /a/audit.jsonl, retention: {max_fils: 3}}\n"), nil,
			[]string{`line 6: unknown key "max_fils" (did you mean "max_files"?)`}},
		{"audit valid", base("audit:\n  enabled: true\n  path: /a/audit.jsonl\n  max_file_bytes: 1048576\n  retention: {max_files: 10, max_age: 2160h}\n"), nil, nil},
		{"audit disabled is not checked", base("audit: {enabled: false, max_file_bytes: 1}\n"), nil, nil},
		{"empty allowed common name", "access: {team_domain: t.cloudflareaccess.com, audience: [a], allowed_common_names: [x.access, \".access\"]}\nproviders:\n  - {name: x, type: static, weight: 1, file: " + inv + "}\n", nil,
			[]string{"line 1: access.allowed_common_names[1]: must be a service token client id"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, t.TempDir(), "postured.yaml", tc.yaml)
			_, err := app.Load(p, app.Registry(), env(tc.env))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.HasPrefix(err.Error(), "config: "+p+": ") && !strings.HasPrefix(err.Error(), "config: ") {
				t.Errorf("error does not name the file: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestEnvExpansionTypesAndKeys(t *testing.T) {
	dir := t.TempDir()
	inv := writeFile(t, dir, "inv.yaml", minimalInventory)
	y := "access: {team_domain: \"${TEAM}\", audience: [\"${AUD}\"]}\nposture:\n  max_devices: ${MAX}\nproviders:\n  - {name: inv, type: static, weight: 1, file: " + inv + "}\n"
	cfg, err := app.Parse([]byte(y), app.Registry(), env(map[string]string{"TEAM": "t.cloudflareaccess.com", "AUD": "a: b\nc", "MAX": "500"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Posture.MaxDevices != 500 || cfg.Access.Audience[0] != "a: b\nc" {
		t.Errorf("got %d %q", cfg.Posture.MaxDevices, cfg.Access.Audience)
	}
}

func TestCheckConfigRedactsSecrets(t *testing.T) {
	dir := t.TempDir()
	inv := writeFile(t, dir, "inv.yaml", minimalInventory)
	p := writeFile(t, dir, "c.yaml", "access: {team_domain: t.cloudflareaccess.com, audience: [a]}\n"+
		"cache: {backend: memory, redis_url: \"${REDIS}\"}\nproviders:\n  - {name: inv, type: static, weight: 1, file: "+inv+"}\n")
	t.Setenv("REDIS", "redis://:hunter2@localhost:6379/0")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"check-config", "-c", p}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if strings.Contains(out.String(), "hunter2") || !strings.Contains(out.String(), "redis_url: <redacted>") {
		t.Errorf("output:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "on_error: stale") || !strings.Contains(out.String(), "deadline: 4s") {
		t.Errorf("defaults not shown:\n%s", out.String())
	}
}

// TestCheckConfigSharesCrawls: with backend: redis crawls are shared
// unless share_crawls says otherwise, and the effective config says so.
func TestCheckConfigSharesCrawls(t *testing.T) {
	dir := t.TempDir()
	inv := writeFile(t, dir, "inv.yaml", minimalInventory)
	tests := []struct{ cache, want string }{
		{"{backend: redis, redis_url: \"redis://localhost:6379/0\"}", "share_crawls: true"},
		{"{backend: redis, redis_url: \"redis://localhost:6379/0\", share_crawls: false}", "share_crawls: false"},
		{"{backend: memory}", ""},
	}
	for _, tc := range tests {
		t.Run(tc.cache, func(t *testing.T) {
			p := writeFile(t, t.TempDir(), "c.yaml", "access: {team_domain: t.cloudflareaccess.com, audience: [a]}\n"+
				"cache: "+tc.cache+"\nproviders:\n  - {name: inv, type: static, weight: 1, file: "+inv+"}\n")
			var out, errb bytes.Buffer
			if code := run(context.Background(), []string{"check-config", "-c", p}, &out, &errb); code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			if got := strings.Contains(out.String(), "share_crawls"); tc.want == "" && got || tc.want != "" && !strings.Contains(out.String(), tc.want) {
				t.Errorf("effective config, want %q:\n%s", tc.want, out.String())
			}
		})
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	t.Setenv("FALCON_CLIENT_ID", "id")
	t.Setenv("FALCON_CLIENT_SECRET", "s")
	t.Setenv("INTUNE_TENANT_ID", "00000000-0000-0000-0000-000000000000")
	t.Setenv("INTUNE_CLIENT_ID", "id")
	t.Setenv("INTUNE_CLIENT_SECRET", "s")
	t.Setenv("JAMF_CLIENT_ID", "id")
	t.Setenv("JAMF_CLIENT_SECRET", "s")
	t.Setenv("CF_API_TOKEN", "t")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"check-config", "-c", "../../config.example.yaml"}, &out, &errb); code != 0 {
		t.Fatalf("config.example.yaml rejected (exit %d): %s", code, errb.String())
	}
}

func TestCLI(t *testing.T) {
	healthy := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer healthy.Close()
	unhealthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) }))
	defer unhealthy.Close()
	dir := t.TempDir()
	inv := writeFile(t, dir, "inv.yaml", "devices:\n  - {id: asset-42, serial_number: C02XK1ZZJGH5, hostname: mbp-42, score: 90, last_seen: 2026-11-20T10:00:00Z}\n  - {id: old, serial_number: C02XK1ZZJGH5, score: 10, last_seen: 2020-01-01T00:00:00Z}\n")
	cfgPath := writeFile(t, dir, "c.yaml", "access: {team_domain: t.cloudflareaccess.com, audience: [a]}\nproviders:\n  - {name: inv, type: static, weight: 2, file: "+inv+"}\n")
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   []string
		stderr   string
		notInOut string
	}{
		{"no args", nil, 2, nil, "usage: postured", ""},
		{"unknown command", []string{"frobnicate"}, 2, nil, `unknown command "frobnicate"`, ""},
		{"version", []string{"--version"}, 0, []string{"postured "}, "", ""},
		{"check-config needs -c", []string{"check-config"}, 1, nil, "check-config: -c FILE is required", ""},
		{"check-config missing file", []string{"check-config", "-c", filepath.Join(dir, "nope.yaml")}, 1, nil, "no such file", ""},
		{"explain table", []string{"explain", "-c", cfgPath, "--hostname", "MBP-42.corp.example"}, 0,
			[]string{"score:    90", `s2s_id:   "asset-42" (from inv)`, "hostname=mbp-42", "PROVIDER"}, "", ""},
		{"explain duplicate serial json", []string{"explain", "-c", cfgPath, "--serial", "c02xk1zzjgh5", "--json"}, 0,
			[]string{`"record_id": "asset-42"`, `"matched_on": "serial"`, `"candidates": 2`, "took the most recently seen"}, "", ""},
		{"explain unmatched", []string{"explain", "-c", cfgPath, "--email", "nobody@example.com"}, 0,
			[]string{"score:    0", "no provider matched", "unmatched"}, "", ""},
		{"missing inventory file", []string{"explain", "-c", writeFile(t, dir, "bad.yaml", "access: {team_domain: t.cloudflareaccess.com, audience: [a]}\nproviders:\n  - {name: inv, type: static, weight: 1, file: /nonexistent/inv.yaml}\n"), "--serial", "X"}, 1,
			nil, `provider "inv": static: stat /nonexistent/inv.yaml: no such file or directory`, ""},
		{"healthcheck needs a url", []string{"healthcheck"}, 1, nil, "healthcheck: want exactly one URL", ""},
		{"healthcheck unhealthy", []string{"healthcheck", unhealthy.URL}, 1, nil, "answered 503", ""},
		{"healthcheck healthy", []string{"healthcheck", healthy.URL}, 0, nil, "", ""},
		{"explain needs a key", []string{"explain", "-c", cfgPath}, 1, nil, "give at least one of", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), tc.args, &out, &errb)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out.String(), errb.String())
			}
			for _, s := range tc.stdout {
				if !strings.Contains(out.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, out.String())
				}
			}
			if !strings.Contains(errb.String(), tc.stderr) {
				t.Errorf("stderr lacks %q: %s", tc.stderr, errb.String())
			}
		})
	}
}

// TestCheckConfigWarnings: what is valid but probably a mistake is printed
// to stderr, naming the key and line; the config is still accepted.
func TestCheckConfigWarnings(t *testing.T) {
	dir := t.TempDir()
	inv := writeFile(t, dir, "inv.yaml", minimalInventory)
	const cn = "88bf3b6d86161464f6509f7219099e57.access"
	cfg := func(access, rules string) string {
		return "access: {team_domain: t.cloudflareaccess.com, audience: [a]" + access + "}\n" +
			"providers:\n  - {name: inv, type: static, weight: 1, file: " + inv + "}\n" +
			"external_evaluation:\n  enabled: true\n  key_file: " + filepath.Join(dir, "ee.pem") + "\n  rules:\n" + rules
	}
	const allowStaff = "    - {name: staff, action: allow, when: {email_domain: {in: [example.com]}}}\n"
	const denyUnhealthy = "    - {name: unhealthy, action: deny, when: {score: {max: 40}}}\n"
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"external evaluation without allowed_common_names", cfg("", allowStaff), []string{
			"postured: warning: line 1: access.allowed_common_names: is empty while external_evaluation is enabled: /posture accepts any service token of the team (user tokens are refused), and what a batch carries decides logins; list the posture integration's client id",
		}},
		{"deny on score before an allow", cfg(", allowed_common_names: ["+cn+"]", denyUnhealthy+allowStaff), []string{
			`postured: warning: line 8: external_evaluation.rules[0].when.score: deny rule "unhealthy" does not fire when the device has no posture (never in a batch, or its providers did not count), and the later allow rule "staff" (rules[1]) has no posture condition, so it can allow such a device; require a minimum score in the allow rules instead`,
		}},
		{"no warnings", cfg(", allowed_common_names: ["+cn+"]", allowStaff+denyUnhealthy), nil},
		{"external evaluation off", "access: {team_domain: t.cloudflareaccess.com, audience: [a]}\nproviders:\n  - {name: inv, type: static, weight: 1, file: " + inv + "}\n", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, t.TempDir(), "c.yaml", tc.yaml)
			var out, errb bytes.Buffer
			if code := run(context.Background(), []string{"check-config", "-c", p}, &out, &errb); code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			var got []string
			if s := strings.TrimSpace(errb.String()); s != "" {
				got = strings.Split(s, "\n")
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("stderr\n got %q\nwant %q", got, tc.want)
			}
			if !strings.Contains(out.String(), "providers:") {
				t.Errorf("effective config not printed:\n%s", out.String())
			}
		})
	}
}

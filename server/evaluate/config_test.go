package evaluate

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/postured/postured/internal/conf"
	"github.com/postured/postured/server/evaluate/keyring"
	"github.com/postured/postured/server/evaluate/policy"
)

// decode decodes an external_evaluation section the way the config loader
// does: conf.DecodeStrict, then Defaults and Validate with lines.
func decode(t *testing.T, src string) (Config, error) {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(src), &root); err != nil {
		t.Fatalf("yaml: %v", err)
	}
	var cfg Config
	if err := conf.DecodeStrict(&root, &cfg); err != nil {
		return cfg, err
	}
	cfg.Defaults()
	return cfg, LocateErrors(cfg.Validate(), &root, "external_evaluation.")
}

func TestExampleConfig(t *testing.T) {
	src, err := os.ReadFile("testdata/external_evaluation.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := decode(t, string(src))
	if err != nil {
		t.Fatal(err)
	}
	rules := cfg.Policy.Rules
	if len(rules) != 3 || rules[2].When.Time.From != "08:00" || rules[0].When.Country.In[2] != "NO" {
		t.Errorf("decoded %+v", rules)
	}
	if cfg.Keyring.KeyFile != "/data/ee-signing-key.pem" || cfg.Keyring.RotationOverlap != conf.Duration(time.Hour) {
		t.Errorf("decoded key ring %+v", cfg.Keyring)
	}
	if got := cfg.Policy.ReferencedProviders(); len(got) != 1 || got[0] != "crowdstrike" {
		t.Errorf("ReferencedProviders %v", got)
	}
	// check-config prints the effective config: the token stays hidden, and
	// the key ring and rules fields stay keys of the section itself.
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"base_url: https://api.cloudflare.com/client/v4", "\nkey_file: /data/ee-signing-key.pem\n",
		"\nposture_deadline: 2s\n", "\nrules:\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("marshalled config lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "secret-from-env") {
		t.Errorf("marshalled config shows the token:\n%s", out)
	}
	if again, err := decode(t, string(out)); err != nil || len(again.Policy.Rules) != 3 {
		t.Errorf("the printed config does not decode back: %v", err)
	}
}

func TestDefaults(t *testing.T) {
	var c Config
	c.Policy.Rules = []policy.Rule{{Name: "r", Action: "allow", When: policy.When{Time: &policy.TimeWindow{Days: []string{"mon"}}}}}
	c.Defaults()
	k := c.Keyring
	if c.Enabled || k.KeyStore != "file" || k.KeyFile != "/data/ee-signing-key.pem" || k.RotationOverlap != conf.Duration(time.Hour) ||
		k.RotationGrace != conf.Duration(24*time.Hour) || c.Policy.PostureDeadline != conf.Duration(2*time.Second) ||
		c.Revoke.Enabled || c.Revoke.BaseURL != "https://api.cloudflare.com/client/v4" || c.Revoke.Timeout != conf.Duration(10*time.Second) ||
		c.Policy.Rules[0].When.Time.TimeZone != "UTC" {
		t.Errorf("defaults %+v", c)
	}
	r := Config{Keyring: keyring.Config{KeyStore: "redis", RedisURL: "redis://localhost:6379/0"}}
	r.Defaults()
	if r.Keyring.RedisPrefix != "postured:ee:" || r.Keyring.KeyFile != "" {
		t.Errorf("redis defaults %+v", r.Keyring)
	}
	if err := (&Config{}).Validate(); err == nil {
		t.Error("an undefaulted config validated")
	}
	disabled := Config{}
	disabled.Defaults()
	if err := disabled.Validate(); err != nil {
		t.Errorf("disabled, empty section: %v", err)
	}
}

// TestTyposAreStartupErrors: a misspelt key anywhere in a rule is an error
// naming its line (and suggesting the right key).
func TestTyposAreStartupErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"rule key", "enabled: true\nrules:\n  - name: a\n    acton: allow\n    when: {is_warp: true}\n", `line 4: unknown key "acton" (did you mean "action"?)`},
		{"condition", "rules:\n  - name: a\n    action: allow\n    when:\n      scroe: {min: 80}\n", `line 5: unknown key "scroe" (did you mean "score"?)`},
		{"range", "rules:\n  - name: a\n    action: allow\n    when:\n      score: {mn: 80}\n", `line 5: unknown key "mn" (did you mean "min"?)`},
		{"provider range", "rules:\n  - name: a\n    action: allow\n    when:\n      provider_scores:\n        crowdstrike:\n          mni: 5\n", `line 7: unknown key "mni"`},
		{"groups", "rules:\n  - name: a\n    action: allow\n    when:\n      groups: {anyy: [x]}\n", `line 5: unknown key "anyy" (did you mean "any"?)`},
		{"time", "rules:\n  - name: a\n    action: allow\n    when:\n      time:\n        days: [mon]\n        timezone: UTC\n", `line 7: unknown key "timezone"`},
		{"when misplaced", "rules:\n  - name: a\n    action: allow\n    score: {min: 1}\n", `line 4: unknown key "score"`},
		{"revoke", "revoke:\n  enabled: true\n  apitoken: x\n", `line 3: unknown key "apitoken" (did you mean "api_token"?)`},
		{"section", "enabeld: true\n", `line 1: unknown key "enabeld"`},
		{"wrong type", "rules:\n  - name: a\n    action: allow\n    when:\n      is_warp: maybe\n", "line 5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decode(t, tc.src)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v\nwant %q", err, tc.want)
			}
		})
	}
}

// TestValidateNamesFields: every semantic problem names the key path, the
// rule index and, through LocateErrors, the line.
func TestValidateNamesFields(t *testing.T) {
	rule := func(when string) string {
		return "enabled: true\nrules:\n  - name: ok\n    action: allow\n    when: {is_warp: true}\n  - name: r1\n    action: allow\n    when:\n      " + when + "\n"
	}
	tests := []struct {
		name, src, want string
	}{
		{"no rules", "enabled: true\n", "external_evaluation.rules: enabled with no rules: default deny would deny everyone; add rules or disable"},
		{"score min", rule("score: {min: 101}"), "line 9: external_evaluation.rules[1].when.score: min must be 0..100, got 101"},
		{"score max", rule("score: {max: -1}"), "rules[1].when.score: max must be 0..100"},
		{"score inverted", rule("score: {min: 80, max: 20}"), "rules[1].when.score: min 80 is above max 20"},
		{"score empty", rule("score: {}"), "rules[1].when.score: give min and/or max"},
		{"provider range", rule("provider_scores: {crowdstrike: {min: 200}}"), "line 9: external_evaluation.rules[1].when.provider_scores.crowdstrike: min must be 0..100"},
		{"provider empty", rule("provider_scores: {}"), "rules[1].when.provider_scores: name at least one provider"},
		{"no condition", "rules:\n  - name: a\n    action: allow\n", "rules[0].when: at least one condition is required"},
		{"empty when", "rules:\n  - name: a\n    action: allow\n    when: {}\n", "rules[0].when: at least one condition is required"},
		{"no action", "rules:\n  - name: a\n    when: {is_warp: true}\n", "rules[0].action: is required: allow or deny"},
		{"bad action", "rules:\n  - name: a\n    action: permit\n    when: {is_warp: true}\n", `line 3: external_evaluation.rules[0].action: must be allow or deny, got "permit"`},
		{"no name", "rules:\n  - action: allow\n    when: {is_warp: true}\n", "rules[0].name: is required"},
		{"duplicate name", rule("is_warp: false\n  - name: ok\n    action: deny\n    when: {is_warp: true}"), `line 10: external_evaluation.rules[2].name: "ok" is already used by rules[0]`},
		{"reserved name", "rules:\n  - name: default\n    action: deny\n    when: {is_warp: true}\n", `rules[0].name: "default" is reserved`},
		{"odd name", "rules:\n  - name: \"a b\"\n    action: deny\n    when: {is_warp: true}\n", `rules[0].name: "a b" must be`},
		{"country", rule("country: {in: [Korea]}"), `rules[1].when.country.in[0]: "Korea" must be a two-letter country code`},
		{"country empty", rule("country: {}"), "rules[1].when.country: give in or not_in"},
		{"email suffix", rule("email: {suffix: [example.com]}"), `rules[1].when.email.suffix[0]: "example.com" must start with "@" or "."`},
		{"email in", rule("email: {in: [bob]}"), `rules[1].when.email.in[0]: "bob" is not an email address`},
		{"email domain", rule("email_domain: {in: [\"@example.com\"]}"), "rules[1].when.email_domain.in[0]"},
		{"groups", rule("groups: {}"), "rules[1].when.groups: give any, all or none"},
		{"groups entry", rule("groups: {all: [\"\"]}"), "rules[1].when.groups.all[0]: must not be empty"},
		{"device_id", rule("device_id: {}"), "rules[1].when.device_id: present: true or false is required"},
		{"time empty", rule("time: {time_zone: UTC}"), "rules[1].when.time: give days and/or from and to"},
		{"time zone", rule("time: {days: [mon], time_zone: Mars/Olympus}"), `line 9: external_evaluation.rules[1].when.time.time_zone: "Mars/Olympus" is not an IANA time zone`},
		{"time zone local", rule("time: {days: [mon], time_zone: Local}"), "rules[1].when.time.time_zone"},
		{"day", rule("time: {days: [funday]}"), `rules[1].when.time.days[0]: "funday" is not a day`},
		{"from only", rule("time: {from: \"08:00\"}"), "rules[1].when.time: give both from and to"},
		{"bad from", rule("time: {from: \"8:00\", to: \"18:00\"}"), `rules[1].when.time.from: "8:00" must be HH:MM`},
		{"bad to", rule("time: {from: \"08:00\", to: \"25:00\"}"), `rules[1].when.time.to: "25:00" is not a time of day`},
		{"24:00 from", rule("time: {from: \"24:00\", to: \"06:00\"}"), "rules[1].when.time.from"},
		{"empty window", rule("time: {from: \"08:00\", to: \"08:00\"}"), "span the whole day or nothing"},
		{"key store", "key_store: s3\n", `key_store: must be file or redis, got "s3"`},
		{"redis url", "key_store: redis\n", "redis_url: is required with key_store: redis"},
		{"redis url bad", "key_store: redis\nredis_url: \"http://user:hunter2@x\"\n", "redis_url: is not a valid redis"},
		{"tls ca without rediss", "key_store: redis\nredis_url: \"redis://:hunter2@x:6379/0\"\ntls_ca_file: /ca.pem\n", "tls_ca_file: needs a rediss:// redis_url"},
		{"seal key not base64", "seal_key: \"hunter2!\"\n", "seal_key: must be 32 random bytes"},
		{"seal key short", "seal_key: \"aHVudGVyMg==\"\n", "seal_key: must be 32 random bytes"},
		{"grace", "rotation_grace: 30s\n", "rotation_grace: must be at least 1m0s"},
		{"overlap", "rotation_overlap: -1h\n", "rotation_overlap: must not be negative"},
		{"issuer", "issuer: \"http://team.cloudflareaccess.com\"\n", "issuer:"},
		{"audience", "audience: [\"\"]\n", "audience[0]: must not be empty"},
		{"revoke account", "revoke: {enabled: true, api_token: x}\n", "revoke.account_id: is required"},
		{"revoke token", "revoke: {enabled: true, account_id: 0123456789abcdef0123456789abcdef}\n", "revoke.api_token: is required"},
		{"revoke url", "revoke: {enabled: true, account_id: 0123456789abcdef0123456789abcdef, api_token: x, base_url: \"ftp://x\"}\n", `revoke.base_url: must be an absolute https URL, got "ftp://x"`},
		{"revoke url over http", "revoke: {enabled: true, account_id: 0123456789abcdef0123456789abcdef, api_token: x, base_url: \"http://api.cloudflare.test\"}\n", `revoke.base_url: must use https: plain http is allowed only to a loopback host`},
		{"revoke rule", rule("is_warp: true") + "revoke: {enabled: true, account_id: 0123456789abcdef0123456789abcdef, api_token: x, rules: [ok, nope]}\n",
			`revoke.rules[0]: rule "ok" allows; only deny rules`},
		{"revoke unknown rule", rule("is_warp: true") + "revoke: {enabled: true, account_id: 0123456789abcdef0123456789abcdef, api_token: x, rules: [nope]}\n",
			`revoke.rules[0]: names no rule: "nope"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decode(t, tc.src)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v\nwant %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Error("the Redis password leaked into the error")
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	_, err := decode(t, "enabled: true\nrules:\n  - name: a\n    action: x\n    when: {score: {min: 500}}\n  - name: a\n    action: allow\n")
	var fe *policy.FieldError
	if !errors.As(err, &fe) && err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"rules[0].action", "rules[0].when.score", "rules[1].name", "rules[1].when"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %s in:\n%v", want, err)
		}
	}
}

package providers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"30d", 30 * 24 * time.Hour, false},
		{"1d", 24 * time.Hour, false},
		{"0d", 0, false},
		{" 7d ", 7 * 24 * time.Hour, false},
		{"90s", 90 * time.Second, false},
		{"10m", 10 * time.Minute, false},
		{"720h", 720 * time.Hour, false},
		{"1h30m", 90 * time.Minute, false},
		{"250ms", 250 * time.Millisecond, false},
		{"0", 0, false},
		{"-1d", 0, true},
		{"1.5d", 0, true},
		{"d", 0, true},
		{"1h1d", 0, true},
		{"30", 0, true},
		{"", 0, true},
		{"abc", 0, true},
		{"10x", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseDuration(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseDuration(%q) = %v, want an error", tc.in, got)
				}
				if !strings.Contains(err.Error(), fmt.Sprintf("%q", strings.TrimSpace(tc.in))) {
					t.Errorf("error %q does not quote the input", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestParseDurationDaysOverflow(t *testing.T) {
	for _, in := range []string{"106752d", "213504d", "9999999999999d"} {
		if d, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an out-of-range error", in, d)
		}
	}
	if d, err := ParseDuration("106751d"); err != nil || d != 106751*24*time.Hour {
		t.Errorf("ParseDuration(106751d) = %v, %v; want the largest representable day count", d, err)
	}
}

func TestDurationYAML(t *testing.T) {
	type doc struct {
		D Duration `yaml:"d"`
	}
	tests := []struct {
		name    string
		src     string
		want    Duration
		wantErr string
	}{
		{"days", "d: 30d", Duration(720 * time.Hour), ""},
		{"hours", "d: 720h", Duration(720 * time.Hour), ""},
		{"seconds quoted", `d: "90s"`, Duration(90 * time.Second), ""},
		{"missing unit", "x: 1\nd: 30", 0, "line 2"},
		{"garbage", "\n\nd: soon", 0, "line 3"},
		{"mapping", "d:\n  a: 1", 0, "line 2: expected a duration"},
		{"sequence", "d: [1s]", 0, "line 1: expected a duration"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got doc
			err := yaml.Unmarshal([]byte(tc.src), &got)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Unmarshal(%q) error = %v, want it to contain %q", tc.src, err, tc.wantErr)
				}
				return
			}
			if err != nil || got.D != tc.want {
				t.Fatalf("Unmarshal(%q) = %v, %v; want %v", tc.src, got.D, err, tc.want)
			}
		})
	}

	t.Run("marshal round trip", func(t *testing.T) {
		for _, d := range []Duration{0, Duration(1500 * time.Millisecond), Duration(720 * time.Hour), Duration(90 * time.Second)} {
			b, err := yaml.Marshal(doc{D: d})
			if err != nil {
				t.Fatal(err)
			}
			var back doc
			if err := yaml.Unmarshal(b, &back); err != nil || back.D != d {
				t.Fatalf("round trip of %v via %q = %v, %v", d, b, back.D, err)
			}
		}
		if got := Duration(720 * time.Hour).String(); got != "720h0m0s" {
			t.Errorf("String() = %q", got)
		}
	})
}

const secretValue = "hunter2-S3cr3t"

func TestSecretFmt(t *testing.T) {
	s := Secret(secretValue)
	tests := []struct {
		verb string
		want string
	}{
		{"%v", "<redacted>"},
		{"%s", "<redacted>"},
		{"%q", `"<redacted>"`},
		{"%#v", `"<redacted>"`},
		{"%+v", "<redacted>"},
		{"%10s", "<redacted>"},
		{"%x", fmt.Sprintf("%x", "<redacted>")},
	}
	for _, tc := range tests {
		t.Run(tc.verb, func(t *testing.T) {
			got := fmt.Sprintf(tc.verb, s)
			if got != tc.want {
				t.Fatalf("Sprintf(%q, secret) = %q, want %q", tc.verb, got, tc.want)
			}
			if strings.Contains(got, secretValue) {
				t.Fatalf("Sprintf(%q) leaks the secret: %q", tc.verb, got)
			}
			// Through a pointer too.
			if p := fmt.Sprintf(tc.verb, &s); strings.Contains(p, secretValue) {
				t.Fatalf("Sprintf(%q, &secret) leaks the secret: %q", tc.verb, p)
			}
		})
	}

	t.Run("in a struct", func(t *testing.T) {
		type cfg struct {
			ClientID     string
			ClientSecret Secret
			Many         []Secret
			ByName       map[string]Secret
		}
		c := cfg{ClientID: "id", ClientSecret: s, Many: []Secret{s}, ByName: map[string]Secret{"k": s}}
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			for _, arg := range []any{c, &c} {
				if got := fmt.Sprintf(verb, arg); strings.Contains(got, secretValue) {
					t.Errorf("Sprintf(%q, %T) leaks the secret: %s", verb, arg, got)
				}
			}
		}
	})

	t.Run("empty prints empty", func(t *testing.T) {
		if got := fmt.Sprint(Secret("")); got != "" {
			t.Fatalf("empty secret printed as %q", got)
		}
	})

	t.Run("reveal", func(t *testing.T) {
		if s.Reveal() != secretValue {
			t.Fatalf("Reveal() = %q", s.Reveal())
		}
	})
}

func TestSecretFmtBadVerb(t *testing.T) {
	s := Secret(secretValue)
	// %p is not listed: fmt prints it before consulting any method, and
	// go vet rejects %p with a non-pointer argument, so vetted code cannot
	// leak that way.
	for _, verb := range []string{"%d", "%t", "%f", "%c", "%x", "%08s"} {
		if got := fmt.Sprintf(verb, s); strings.Contains(got, secretValue) {
			t.Errorf("Sprintf(%q) leaks the secret: %q", verb, got)
		}
	}
}

func TestSecretSlog(t *testing.T) {
	s := Secret(secretValue)
	type cfg struct {
		Name   string `json:"name"`
		Secret Secret `json:"secret"`
	}
	tests := []struct {
		name string
		attr slog.Attr
		want string // substring of the JSON output
	}{
		{"value", slog.Any("client_secret", s), `"client_secret":"<redacted>"`},
		{"pointer", slog.Any("client_secret", &s), `"client_secret"`},
		{"in a struct", slog.Any("cfg", cfg{Name: "n", Secret: s}), `"secret":"<redacted>"`},
		{"in a group", slog.Group("auth", slog.Any("secret", s)), `"auth":{"secret":"<redacted>"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for hname, mk := range map[string]func(*bytes.Buffer) slog.Handler{
				"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
				"text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
			} {
				var buf bytes.Buffer
				slog.New(mk(&buf)).LogAttrs(t.Context(), slog.LevelInfo, "msg", tc.attr)
				out := unescapeJSONAngles(buf.String())
				if strings.Contains(out, secretValue) {
					t.Fatalf("%s handler leaks the secret: %s", hname, out)
				}
				if hname == "json" && !strings.Contains(out, tc.want) {
					t.Fatalf("json output %s does not contain %s", out, tc.want)
				}
			}
		})
	}
	t.Run("args form", func(t *testing.T) {
		var buf bytes.Buffer
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", "secret", s)
		if out := unescapeJSONAngles(buf.String()); strings.Contains(out, secretValue) || !strings.Contains(out, `"secret":"<redacted>"`) {
			t.Fatalf("got %s", buf.String())
		}
	})
}

// unescapeJSONAngles undoes encoding/json's HTML escaping of < and >.
func unescapeJSONAngles(s string) string {
	return strings.NewReplacer(`\u003c`, "<", `\u003e`, ">").Replace(s)
}

func TestSecretJSONAndYAML(t *testing.T) {
	s := Secret(secretValue)
	type cfg struct {
		ID     string `json:"id" yaml:"id"`
		Secret Secret `json:"secret" yaml:"secret"`
		Ptr    *Secret
	}
	tests := []struct {
		name string
		v    any
	}{
		{"value", s},
		{"pointer", &s},
		{"struct", cfg{ID: "i", Secret: s, Ptr: &s}},
		{"struct pointer", &cfg{ID: "i", Secret: s}},
		{"slice", []Secret{s, s}},
		{"map", map[string]Secret{"k": s}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j, err := json.Marshal(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			if js := unescapeJSONAngles(string(j)); strings.Contains(js, secretValue) || !strings.Contains(js, `"<redacted>"`) {
				t.Fatalf("json.Marshal = %s", j)
			}
			y, err := yaml.Marshal(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(y), secretValue) || !strings.Contains(string(y), "<redacted>") {
				t.Fatalf("yaml.Marshal = %s", y)
			}
		})
	}
	t.Run("empty secret marshals empty", func(t *testing.T) {
		j, _ := json.Marshal(Secret(""))
		if string(j) != `""` {
			t.Fatalf("json = %s", j)
		}
	})
	t.Run("decoding keeps the value", func(t *testing.T) {
		var c cfg
		if err := yaml.Unmarshal([]byte("id: i\nsecret: "+secretValue), &c); err != nil || c.Secret.Reveal() != secretValue {
			t.Fatalf("yaml decode = %q, %v", c.Secret.Reveal(), err)
		}
		var d cfg
		if err := json.Unmarshal([]byte(`{"secret":"`+secretValue+`"}`), &d); err != nil || d.Secret.Reveal() != secretValue {
			t.Fatalf("json decode = %q, %v", d.Secret.Reveal(), err)
		}
	})
}

func validCommon() Common {
	return Common{Name: "crowdstrike", Type: "crowdstrike", Weight: 5, OnError: OnErrorStale, Mode: ModeQuery}
}

func TestCommonValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Common)
		wantErr []string // substrings; nil means valid
	}{
		{"valid query", func(*Common) {}, nil},
		{"valid sync", func(c *Common) { c.Mode = ModeSync; c.SyncInterval = Duration(time.Minute) }, nil},
		{"valid exclude", func(c *Common) { c.OnError = OnErrorExclude }, nil},
		{"valid zero", func(c *Common) { c.OnError = OnErrorZero }, nil},
		{"valid fractional weight", func(c *Common) { c.Weight = 0.25 }, nil},
		{"valid sync exactly 1s", func(c *Common) { c.Mode = ModeSync; c.SyncInterval = Duration(time.Second) }, nil},
		{"missing name", func(c *Common) { c.Name = "" }, []string{"name is required"}},
		{"zero weight", func(c *Common) { c.Weight = 0 }, []string{"weight must be > 0, got 0"}},
		{"negative weight", func(c *Common) { c.Weight = -1 }, []string{"weight must be > 0, got -1"}},
		{"NaN weight", func(c *Common) { c.Weight = math.NaN() }, []string{"weight must be > 0"}},
		{"bad on_error", func(c *Common) { c.OnError = "ignore" }, []string{`on_error must be stale, exclude or zero, got "ignore"`}},
		{"empty on_error", func(c *Common) { c.OnError = "" }, []string{"on_error"}},
		{"bad mode", func(c *Common) { c.Mode = "push" }, []string{`mode must be query or sync, got "push"`}},
		{"negative timeout", func(c *Common) { c.Timeout = Duration(-time.Second) }, []string{"durations must not be negative"}},
		{"negative max_last_seen", func(c *Common) { c.MaxLastSeen = Duration(-1) }, []string{"durations must not be negative"}},
		{"sync interval too short", func(c *Common) { c.Mode = ModeSync; c.SyncInterval = Duration(500 * time.Millisecond) },
			[]string{"sync_interval must be at least 1s, got 500ms"}},
		{"sync interval unset", func(c *Common) { c.Mode = ModeSync }, []string{"sync_interval must be at least 1s"}},
		{"every problem reported", func(c *Common) { *c = Common{Weight: -2, OnError: "x", Mode: "y"} },
			[]string{"name is required", "weight", "on_error", "mode"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validCommon()
			tc.mutate(&c)
			err := c.Validate()
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors %q", tc.wantErr)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestCommonValidateInfiniteWeight(t *testing.T) {
	c := validCommon()
	c.Weight = math.Inf(1)
	if err := c.Validate(); err == nil {
		t.Fatal("Validate() accepted an infinite weight")
	}
}

func TestCommonDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   Common
		want Common
	}{
		{"zero", Common{}, Common{OnError: OnErrorStale, Mode: ModeQuery}},
		{"sync gets interval", Common{Mode: ModeSync}, Common{OnError: OnErrorStale, Mode: ModeSync, SyncInterval: Duration(10 * time.Minute)}},
		{"explicit kept", Common{OnError: OnErrorZero, Mode: ModeSync, SyncInterval: Duration(time.Hour)},
			Common{OnError: OnErrorZero, Mode: ModeSync, SyncInterval: Duration(time.Hour)}},
		{"query leaves interval zero", Common{Mode: ModeQuery}, Common{OnError: OnErrorStale, Mode: ModeQuery}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.in
			c.Defaults()
			if c != tc.want {
				t.Fatalf("Defaults() = %+v, want %+v", c, tc.want)
			}
			if c.Base() != &c {
				t.Fatal("Base() must return the receiver")
			}
		})
	}
}

func TestHTTPConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*HTTPConfig)
		wantErr string
	}{
		{"default is valid", func(*HTTPConfig) {}, ""},
		{"retry_max zero is valid", func(h *HTTPConfig) { h.RetryMax = 0 }, ""},
		{"min equals max", func(h *HTTPConfig) { h.RetryWaitMax = h.RetryWaitMin }, ""},
		{"zero concurrency", func(h *HTTPConfig) { h.MaxConcurrency = 0 }, "max_concurrency must be >= 1, got 0"},
		{"zero rps", func(h *HTTPConfig) { h.RequestsPerSecond = 0 }, "requests_per_second must be > 0"},
		{"negative rps", func(h *HTTPConfig) { h.RequestsPerSecond = -1 }, "requests_per_second must be > 0"},
		{"NaN rps", func(h *HTTPConfig) { h.RequestsPerSecond = math.NaN() }, "requests_per_second must be > 0"},
		{"zero burst", func(h *HTTPConfig) { h.Burst = 0 }, "burst must be >= 1"},
		{"negative retry_max", func(h *HTTPConfig) { h.RetryMax = -1 }, "retry_max must be >= 0"},
		{"zero wait min", func(h *HTTPConfig) { h.RetryWaitMin = 0 }, "need 0 < retry_wait_min <= retry_wait_max"},
		{"max below min", func(h *HTTPConfig) { h.RetryWaitMax = h.RetryWaitMin - 1 }, "need 0 < retry_wait_min <= retry_wait_max"},
		{"zero request timeout", func(h *HTTPConfig) { h.RequestTimeout = 0 }, "request_timeout must be > 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := DefaultHTTP
			tc.mutate(&h)
			err := h.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate() = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestHTTPConfigDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   HTTPConfig
		want HTTPConfig
	}{
		{"zero takes all defaults", HTTPConfig{}, DefaultHTTP},
		{
			name: "set fields kept",
			in:   HTTPConfig{MaxConcurrency: 9, RequestsPerSecond: 1.5, Burst: 2, RetryMax: 7, RetryWaitMin: Duration(time.Second), RetryWaitMax: Duration(2 * time.Second), RequestTimeout: Duration(time.Minute)},
			want: HTTPConfig{MaxConcurrency: 9, RequestsPerSecond: 1.5, Burst: 2, RetryMax: 7, RetryWaitMin: Duration(time.Second), RetryWaitMax: Duration(2 * time.Second), RequestTimeout: Duration(time.Minute)},
		},
		{
			name: "partial",
			in:   HTTPConfig{Burst: 1, RequestTimeout: Duration(time.Second)},
			want: func() HTTPConfig { h := DefaultHTTP; h.Burst = 1; h.RequestTimeout = Duration(time.Second); return h }(),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.in
			h.Defaults(DefaultHTTP)
			if h != tc.want {
				t.Fatalf("Defaults() = %+v, want %+v", h, tc.want)
			}
			if err := h.Validate(); err != nil {
				t.Fatalf("defaulted config invalid: %v", err)
			}
		})
	}
	t.Run("yaml keys", func(t *testing.T) {
		var h HTTPConfig
		src := "max_concurrency: 2\nrequests_per_second: 3.5\nburst: 4\nretry_max: 5\nretry_wait_min: 100ms\nretry_wait_max: 2s\nrequest_timeout: 1d\n"
		if err := yaml.Unmarshal([]byte(src), &h); err != nil {
			t.Fatal(err)
		}
		want := HTTPConfig{2, 3.5, 4, 5, Duration(100 * time.Millisecond), Duration(2 * time.Second), Duration(24 * time.Hour)}
		if h != want {
			t.Fatalf("decoded %+v, want %+v", h, want)
		}
	})
}

type testConfig struct {
	Common `yaml:",inline"`
	Extra  string `yaml:"extra"`
}

func (c *testConfig) Defaults() { c.Common.Defaults() }
func (c *testConfig) Validate() error {
	return c.Common.Validate()
}

func TestEntry(t *testing.T) {
	f := Entry(func(c *testConfig, d Deps) (string, error) {
		return c.Name + "/" + c.Extra, nil
	})
	cfg := f.NewConfig()
	tc, ok := cfg.(*testConfig)
	if !ok {
		t.Fatalf("NewConfig() = %T, want *testConfig", cfg)
	}
	var n yaml.Node
	if err := yaml.Unmarshal([]byte("name: n\ntype: t\nweight: 1\nextra: x\n"), &n); err != nil {
		t.Fatal(err)
	}
	if err := DecodeStrict(&n, cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Base() != &tc.Common {
		t.Fatal("Base() is not the embedded Common")
	}
	got, err := f.Open(cfg, Deps{})
	if err != nil || got != "n/x" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	// Two NewConfig calls give independent configs.
	if f.NewConfig() == f.NewConfig() {
		t.Fatal("NewConfig returned a shared config")
	}
}

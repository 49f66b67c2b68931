package providers

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/postured/postured/internal/conf"
)

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
		{"valid sync", func(c *Common) { c.Mode = ModeSync; c.SyncInterval = conf.Duration(time.Minute) }, nil},
		{"valid exclude", func(c *Common) { c.OnError = OnErrorExclude }, nil},
		{"valid zero", func(c *Common) { c.OnError = OnErrorZero }, nil},
		{"valid fractional weight", func(c *Common) { c.Weight = 0.25 }, nil},
		{"valid sync exactly 1s", func(c *Common) { c.Mode = ModeSync; c.SyncInterval = conf.Duration(time.Second) }, nil},
		{"missing name", func(c *Common) { c.Name = "" }, []string{"name is required"}},
		{"zero weight", func(c *Common) { c.Weight = 0 }, []string{"weight must be > 0, got 0"}},
		{"negative weight", func(c *Common) { c.Weight = -1 }, []string{"weight must be > 0, got -1"}},
		{"NaN weight", func(c *Common) { c.Weight = math.NaN() }, []string{"weight must be > 0"}},
		{"bad on_error", func(c *Common) { c.OnError = "ignore" }, []string{`on_error must be stale, exclude or zero, got "ignore"`}},
		{"empty on_error", func(c *Common) { c.OnError = "" }, []string{"on_error"}},
		{"bad mode", func(c *Common) { c.Mode = "push" }, []string{`mode must be query or sync, got "push"`}},
		{"valid sync on_miss query", func(c *Common) {
			c.Mode, c.SyncInterval, c.OnMiss = ModeSync, conf.Duration(time.Minute), OnMissQuery
		}, nil},
		{"on_miss query in query mode", func(c *Common) { c.OnMiss = OnMissQuery }, []string{"on_miss: query needs mode: sync"}},
		{"bad on_miss", func(c *Common) { c.OnMiss = "crawl" }, []string{`on_miss must be none or query, got "crawl"`}},
		{"negative timeout", func(c *Common) { c.Timeout = conf.Duration(-time.Second) }, []string{"durations must not be negative"}},
		{"negative max_last_seen", func(c *Common) { c.MaxLastSeen = conf.Duration(-1) }, []string{"durations must not be negative"}},
		{"sync interval too short", func(c *Common) { c.Mode = ModeSync; c.SyncInterval = conf.Duration(500 * time.Millisecond) },
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
		{"zero", Common{}, Common{OnError: OnErrorStale, Mode: ModeQuery, OnMiss: OnMissNone}},
		{"sync gets interval", Common{Mode: ModeSync}, Common{OnError: OnErrorStale, Mode: ModeSync, SyncInterval: conf.Duration(10 * time.Minute), OnMiss: OnMissNone}},
		{"explicit kept", Common{OnError: OnErrorZero, Mode: ModeSync, SyncInterval: conf.Duration(time.Hour), OnMiss: OnMissQuery},
			Common{OnError: OnErrorZero, Mode: ModeSync, SyncInterval: conf.Duration(time.Hour), OnMiss: OnMissQuery}},
		{"query leaves interval zero", Common{Mode: ModeQuery}, Common{OnError: OnErrorStale, Mode: ModeQuery, OnMiss: OnMissNone}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.in
			c.Defaults()
			if !reflect.DeepEqual(c, tc.want) {
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
			in:   HTTPConfig{MaxConcurrency: 9, RequestsPerSecond: 1.5, Burst: 2, RetryMax: 7, RetryWaitMin: conf.Duration(time.Second), RetryWaitMax: conf.Duration(2 * time.Second), RequestTimeout: conf.Duration(time.Minute)},
			want: HTTPConfig{MaxConcurrency: 9, RequestsPerSecond: 1.5, Burst: 2, RetryMax: 7, RetryWaitMin: conf.Duration(time.Second), RetryWaitMax: conf.Duration(2 * time.Second), RequestTimeout: conf.Duration(time.Minute)},
		},
		{
			name: "partial",
			in:   HTTPConfig{Burst: 1, RequestTimeout: conf.Duration(time.Second)},
			want: func() HTTPConfig {
				h := DefaultHTTP
				h.Burst = 1
				h.RequestTimeout = conf.Duration(time.Second)
				return h
			}(),
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
		want := HTTPConfig{2, 3.5, 4, 5, conf.Duration(100 * time.Millisecond), conf.Duration(2 * time.Second), conf.Duration(24 * time.Hour)}
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
	if err := conf.DecodeStrict(&n, cfg); err != nil {
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

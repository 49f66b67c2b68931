package intune

import (
	"strings"
	"testing"
	"time"

	"github.com/postured/postured/providers"
)

func validConfig() *Config {
	return &Config{
		Common:       providers.Common{Name: "intune", Type: "intune", Weight: 3},
		TenantID:     "contoso.onmicrosoft.com",
		ClientID:     "4a1aa1d5-c567-49d0-ad0b-cd957a47f842",
		ClientSecret: "s3cr3t~value",
	}
}

func TestConfigDefaults(t *testing.T) {
	c := validConfig()
	c.Defaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"base_url", c.BaseURL, "https://graph.microsoft.com"},
		{"token_url", c.TokenURL, "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"},
		{"scope", c.Scope, "https://graph.microsoft.com/.default"},
		{"max_concurrency", c.MaxConcurrency, 4},
		{"requests_per_second", c.RequestsPerSecond, 5.0},
		{"burst", c.Burst, 100},
		{"request_timeout", time.Duration(c.RequestTimeout), 30 * time.Second},
		{"mode", c.Mode, providers.ModeQuery},
		{"default_score", c.DefaultScore, 0},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	// National clouds get their own login host and scope.
	c = validConfig()
	c.BaseURL = "https://graph.microsoft.us"
	c.Defaults()
	if c.TokenURL != "https://login.microsoftonline.us/contoso.onmicrosoft.com/oauth2/v2.0/token" || c.Scope != "https://graph.microsoft.us/.default" {
		t.Errorf("US gov: token_url %q scope %q", c.TokenURL, c.Scope)
	}
	// An explicit token_url wins, and makes tenant_id optional.
	c = validConfig()
	c.TenantID, c.TokenURL = "", "http://127.0.0.1:9/t/oauth2/v2.0/token"
	c.BaseURL = "http://127.0.0.1:9/intune/"
	c.Defaults()
	if err := c.Validate(); err != nil || c.TokenURL != "http://127.0.0.1:9/t/oauth2/v2.0/token" || c.BaseURL != "http://127.0.0.1:9/intune" {
		t.Errorf("err %v token_url %q base_url %q", err, c.TokenURL, c.BaseURL)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want []string // substrings of the error; none: valid
	}{
		{name: "valid", mod: func(*Config) {}},
		{name: "valid overrides", mod: func(c *Config) {
			c.ComplianceScores = map[string]int{"compliant": 90, "ingraceperiod": 60, "configManager": 40}
			c.DefaultScore = 10
		}},
		{name: "missing everything", mod: func(c *Config) { c.TenantID, c.ClientID, c.ClientSecret = "", "", "" },
			want: []string{"tenant_id is required", "client_id is required", "client_secret is required"}},
		{name: "bad tenant", mod: func(c *Config) { c.TenantID = "contoso/evil" }, want: []string{"tenant_id must be"}},
		{name: "relative base_url", mod: func(c *Config) { c.BaseURL = "graph.microsoft.com" }, want: []string{"base_url must be an absolute https URL"}},
		{name: "versioned base_url", mod: func(c *Config) { c.BaseURL = "https://graph.microsoft.com/v1.0" }, want: []string{"base_url must not include the API version"}},
		{name: "bad token_url", mod: func(c *Config) { c.TokenURL = "ftp://login" }, want: []string{"token_url must be an absolute"}},
		{name: "unknown state", mod: func(c *Config) { c.ComplianceScores = map[string]int{"compliantish": 100} }, want: []string{`unknown complianceState "compliantish"`}},
		{name: "score range", mod: func(c *Config) { c.ComplianceScores = map[string]int{"compliant": 101}; c.DefaultScore = -1 },
			want: []string{"compliance_scores.compliant must be 0-100", "default_score must be 0-100"}},
		{name: "common checked", mod: func(c *Config) { c.Weight = 0 }, want: []string{"weight must be > 0"}},
		{name: "http checked", mod: func(c *Config) { c.MaxConcurrency = -1 }, want: []string{"max_concurrency"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.mod(c)
			c.Defaults()
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %v", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("secret in error: %v", err)
			}
		})
	}
}

func TestScorer(t *testing.T) {
	tests := []struct {
		name   string
		scores map[string]int
		def    int
		want   map[string]int
	}{
		{name: "design defaults", want: map[string]int{
			"compliant": 100, "inGracePeriod": 50, "noncompliant": 0, "unknown": 0, "conflict": 0,
			"error": 0, "configManager": 0, "": 0, "somethingNew": 0,
		}},
		{name: "overrides merge over defaults", scores: map[string]int{"InGracePeriod": 70, "configManager": 60}, def: 10, want: map[string]int{
			"compliant": 100, "inGracePeriod": 70, "configManager": 60, "noncompliant": 10, "unknown": 10,
		}},
		{name: "compliant can be lowered", scores: map[string]int{"compliant": 80}, want: map[string]int{"compliant": 80, "inGracePeriod": 50}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newScorer(&Config{ComplianceScores: tc.scores, DefaultScore: tc.def})
			for state, want := range tc.want {
				got, reason := s.score(state)
				if got != want || reason != "complianceState="+state {
					t.Errorf("score(%q) = %d, %q; want %d", state, got, reason, want)
				}
			}
		})
	}
}

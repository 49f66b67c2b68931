package jamf

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/postured/postured/internal/conf"
	"github.com/postured/postured/providers"
)

func validConfig() *Config {
	return &Config{
		Common:       providers.Common{Name: "jamf", Type: "jamf", Weight: 2},
		BaseURL:      "https://example.jamfcloud.com",
		ClientID:     "client-id",
		ClientSecret: "s3cr3t-client-value",
	}
}

func TestConfigDefaults(t *testing.T) {
	c := validConfig()
	c.Defaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if !*c.MobileDevices || c.PageSize != 500 || *c.ScoreEncrypted != 100 || *c.ScoreUnencrypted != 50 || *c.ScoreUnmanaged != 0 {
		t.Fatalf("vendor defaults: %+v", c)
	}
	if c.MaxConcurrency != 5 || c.RequestTimeout != conf.Duration(30*time.Second) || c.Mode != providers.ModeQuery {
		t.Fatalf("http/common defaults: %+v", c.HTTPConfig)
	}
	zero := 0
	c = validConfig()
	c.ScoreUnencrypted = &zero
	c.MobileDevices = ptr(false)
	c.Defaults()
	if *c.ScoreUnencrypted != 0 || *c.MobileDevices {
		t.Fatal("explicit zero/false overridden by defaults")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mut  func(*Config)
		want string // "" = valid
	}{
		{"client credentials", func(*Config) {}, ""},
		{"basic auth", func(c *Config) { c.ClientID, c.ClientSecret, c.Username, c.Password = "", "", "api", "pw" }, ""},
		{"http base url to loopback for a lab", func(c *Config) { c.BaseURL = "http://127.0.0.1:9000/jamf/" }, ""},
		{"http base url elsewhere", func(c *Config) { c.BaseURL = "http://mockvendors:9000/jamf/" }, "base_url must use https: plain http is allowed only to a loopback host"},
		{"token path", func(c *Config) { c.TokenPath = "/api/oauth/token" }, ""},
		{"missing base url", func(c *Config) { c.BaseURL = "" }, "base_url is required"},
		{"relative base url", func(c *Config) { c.BaseURL = "example.jamfcloud.com" }, "base_url must be an absolute https URL"},
		{"ftp base url", func(c *Config) { c.BaseURL = "ftp://example.com" }, "base_url must be an absolute https URL"},
		{"base url with query", func(c *Config) { c.BaseURL = "https://x.jamfcloud.com/?a=b" }, "must not carry credentials, a query or a fragment"},
		{"no credentials", func(c *Config) { c.ClientID, c.ClientSecret = "", "" }, "client_id and client_secret (or username and password) are required"},
		{"both credential pairs", func(c *Config) { c.Username, c.Password = "api", "pw" }, "not both"},
		{"secret without id", func(c *Config) { c.ClientID = "" }, "client_id is required with client_secret"},
		{"id without secret", func(c *Config) { c.ClientSecret = "" }, "client_secret is required with client_id"},
		{"password without user", func(c *Config) { c.ClientID, c.ClientSecret, c.Password = "", "", "pw" }, "username is required with password"},
		{"user without password", func(c *Config) { c.ClientID, c.ClientSecret, c.Username = "", "", "api" }, "password is required with username"},
		{"relative token path", func(c *Config) { c.TokenPath = "api/oauth/token" }, "token_path must start with /"},
		{"token path with basic", func(c *Config) {
			c.ClientID, c.ClientSecret, c.Username, c.Password, c.TokenPath = "", "", "api", "pw", "/api/oauth/token"
		}, "token_path applies to client_id/client_secret only"},
		{"page size too big", func(c *Config) { c.PageSize = 5000 }, "page_size must be 1..2000"},
		{"score out of range", func(c *Config) { c.ScoreEncrypted = ptr(101) }, "score_encrypted must be 0..100"},
		{"negative score", func(c *Config) { c.ScoreUnmanaged = ptr(-1) }, "score_unmanaged must be 0..100"},
		{"common checked", func(c *Config) { c.Weight = 0 }, "weight must be > 0"},
		{"http checked", func(c *Config) { c.MaxConcurrency = -1 }, "max_concurrency must be >= 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.mut(c)
			c.Defaults()
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "s3cr3t") {
				t.Fatal("secret in validation error")
			}
		})
	}
}

func TestConfigNeverPrintsSecrets(t *testing.T) {
	c := validConfig()
	c.Password = "pw-value-xyz"
	for _, s := range []string{fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c)} {
		if strings.Contains(s, "s3cr3t") || strings.Contains(s, "pw-value-xyz") {
			t.Fatalf("secret printed: %s", s)
		}
	}
}

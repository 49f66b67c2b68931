package jamf

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/postured/postured/internal/conf"
	"github.com/postured/postured/providers"
)

// Config is the `type: jamf` provider section.
type Config struct {
	providers.Common     `yaml:",inline"`
	providers.HTTPConfig `yaml:",inline"`

	// BaseURL is the Jamf Pro server, e.g. https://example.jamfcloud.com or
	// https://jamf.corp.example:8443. Required.
	BaseURL string `yaml:"base_url"`
	// ClientID and ClientSecret are an API client (Jamf Pro 10.49+) whose
	// API role has Read Computers, plus Read Mobile Devices when
	// mobile_devices is on. Set these or username/password, not both.
	ClientID     string      `yaml:"client_id,omitempty"`
	ClientSecret conf.Secret `yaml:"client_secret,omitempty"`
	// Username and Password are a Jamf Pro user account for the legacy
	// basic-auth token endpoint (/api/v1/auth/token).
	Username string      `yaml:"username,omitempty"`
	Password conf.Secret `yaml:"password,omitempty"`
	// TokenPath pins the OAuth token endpoint path. Default: empty, which
	// tries /api/v1/oauth/token and falls back to /api/oauth/token (older
	// Jamf Pro) when the former is not a token endpoint on the server
	// (whether it answers 404, 405, 401 or a login page).
	TokenPath string `yaml:"token_path,omitempty"`
	// MobileDevices also looks up iOS/iPadOS/tvOS devices. Default: true.
	MobileDevices *bool `yaml:"mobile_devices,omitempty"`
	// PageSize is the page-size of every inventory call. Default: 500.
	PageSize int `yaml:"page_size,omitempty"`
	// ScoreEncrypted is the score of a managed computer with FileVault
	// ALL_ENCRYPTED or BOOT_ENCRYPTED, and of a managed mobile device with
	// a passcode. Default: 100.
	ScoreEncrypted *int `yaml:"score_encrypted,omitempty"`
	// ScoreUnencrypted is the score of a managed computer with any other
	// FileVault state, and of a managed mobile device without a passcode.
	// Default: 50.
	ScoreUnencrypted *int `yaml:"score_unencrypted,omitempty"`
	// ScoreUnmanaged is the score of a record Jamf no longer manages.
	// Default: 0. (A jailbroken mobile device always scores 0.)
	ScoreUnmanaged *int `yaml:"score_unmanaged,omitempty"`
}

const (
	defaultPageSize = 500
	// maxPageSize bounds page_size: 2000 is the largest page Jamf's
	// inventory listings take, which keeps a page of four sections at a
	// few MB.
	maxPageSize = 2000
	// jamfMaxConcurrency is Jamf's request: "Limit your interactions with
	// Jamf APIs to no more than 5 concurrent connections."
	// https://developer.jamf.com/jamf-pro/docs/jamf-pro-api-scalability-best-practices
	jamfMaxConcurrency = 5
)

// defaultHTTP: Jamf publishes no rate limit, only the concurrency request,
// so five connections are the throttle and the request budget only guards
// against runaway loops: at 200/s it never binds before the connections do
// (five in flight at Jamf's typical 50 ms+ per query is at most 100/s),
// whereas a tighter budget would slow a filter the server refuses, split
// down to single values in a few dozen calls. Inventory queries are slow
// on big instances, and a call filters on hundreds of values, hence the
// longer timeout.
var defaultHTTP = providers.HTTPConfig{
	MaxConcurrency:    jamfMaxConcurrency,
	RequestsPerSecond: 200,
	Burst:             50,
	RetryMax:          3,
	RetryWaitMin:      conf.Duration(200 * time.Millisecond),
	RetryWaitMax:      conf.Duration(5 * time.Second),
	RequestTimeout:    conf.Duration(30 * time.Second),
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	c.Common.Defaults()
	c.HTTPConfig.Defaults(defaultHTTP)
	c.BaseURL = strings.TrimSpace(c.BaseURL)
	if c.MobileDevices == nil {
		c.MobileDevices = ptr(true)
	}
	if c.PageSize == 0 {
		c.PageSize = defaultPageSize
	}
	if c.ScoreEncrypted == nil {
		c.ScoreEncrypted = ptr(100)
	}
	if c.ScoreUnencrypted == nil {
		c.ScoreUnencrypted = ptr(50)
	}
	if c.ScoreUnmanaged == nil {
		c.ScoreUnmanaged = ptr(0)
	}
}

// Validate reports every problem with the section.
func (c *Config) Validate() error {
	errs := []error{c.Common.Validate(), c.HTTPConfig.Validate()}
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if c.BaseURL == "" {
		add("base_url is required")
	} else if err := conf.CheckURL(c.BaseURL); err != nil {
		add("base_url %v", err)
	}

	oauth := c.ClientID != "" || c.ClientSecret != ""
	basic := c.Username != "" || c.Password != ""
	switch {
	case oauth && basic:
		add("set either client_id and client_secret or username and password, not both")
	case !oauth && !basic:
		add("client_id and client_secret (or username and password) are required")
	case oauth && c.ClientID == "":
		add("client_id is required with client_secret")
	case oauth && c.ClientSecret == "":
		add("client_secret is required with client_id")
	case basic && c.Username == "":
		add("username is required with password")
	case basic && c.Password == "":
		add("password is required with username")
	}
	if c.TokenPath != "" {
		if !strings.HasPrefix(c.TokenPath, "/") {
			add("token_path must start with /, got %q", c.TokenPath)
		}
		if basic && !oauth {
			add("token_path applies to client_id/client_secret only")
		}
	}
	if c.PageSize < 1 || c.PageSize > maxPageSize {
		add("page_size must be 1..%d, got %d", maxPageSize, c.PageSize)
	}
	for _, s := range []struct {
		key string
		v   *int
	}{{"score_encrypted", c.ScoreEncrypted}, {"score_unencrypted", c.ScoreUnencrypted}, {"score_unmanaged", c.ScoreUnmanaged}} {
		if s.v != nil && (*s.v < 0 || *s.v > 100) {
			add("%s must be 0..100, got %d", s.key, *s.v)
		}
	}
	return errors.Join(errs...)
}

func ptr[T any](v T) *T { return &v }

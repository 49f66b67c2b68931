package crowdstrike

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/postured/postured/internal/conf"
	"github.com/postured/postured/providers"
)

// clouds maps Falcon cloud names to their API base URLs (falconpy
// _enum/_base_url.py, gofalcon falcon/cloud.go).
var clouds = map[string]string{
	"us-1":     "https://api.crowdstrike.com",
	"us-2":     "https://api.us-2.crowdstrike.com",
	"eu-1":     "https://api.eu-1.crowdstrike.com",
	"us-gov-1": "https://api.laggar.gcw.crowdstrike.com",
	"us-gov-2": "https://api.us-gov-2.crowdstrike.mil",
}

// defaultCloud is where Falcon API clients start (and autodiscovery lives).
const defaultCloud = "us-1"

// Default scores (design.md scoring table).
const (
	defaultUnassessedScore = 50
	defaultContainedScore  = 0
)

// defaultPageSize is how many hosts one combined page asks for: a few MB
// with the fields postured reads.
const defaultPageSize = 5000

// defaultHTTP keeps well below Falcon's 6000 requests/minute per customer,
// a pool shared with every other integration the customer runs: 20/s is a
// fifth of it. The burst lets most of a cold 1000-device batch (about 100
// calls: serial, then MAC/hostname/email rounds) go through without waiting
// on the budget; sustained load is still held to 20/s.
var defaultHTTP = providers.HTTPConfig{
	MaxConcurrency:    4,
	RequestsPerSecond: 20,
	Burst:             60,
	RetryMax:          3,
	RetryWaitMin:      conf.Duration(250 * time.Millisecond),
	RetryWaitMax:      conf.Duration(5 * time.Second),
	RequestTimeout:    conf.Duration(15 * time.Second),
}

// Config is the `type: crowdstrike` provider section.
type Config struct {
	providers.Common     `yaml:",inline"`
	providers.HTTPConfig `yaml:",inline"`

	// BaseURL is the Falcon API: a full URL (https://api.eu-1.crowdstrike.com)
	// or a cloud name: us-1, us-2, eu-1, us-gov-1, us-gov-2. Default: us-1.
	BaseURL string `yaml:"base_url"`
	// ClientID and ClientSecret are an API client with the "Hosts: Read" and
	// "Zero Trust Assessment: Read" scopes. Required.
	ClientID     string      `yaml:"client_id"`
	ClientSecret conf.Secret `yaml:"client_secret"`
	// MemberCID locks the token to one child CID of an MSSP parent. Default:
	// none.
	MemberCID string `yaml:"member_cid,omitempty"`
	// UnassessedScore is the score of a host with no Zero Trust Assessment.
	// Default: 50.
	UnassessedScore *int `yaml:"unassessed_score,omitempty"`
	// ContainedScore is the score of a host whose status is contained,
	// containment_pending or lift_containment_pending, whatever its
	// assessment. Default: 0.
	ContainedScore *int `yaml:"contained_score,omitempty"`
	// PageSize is how many hosts one page of the combined devices endpoint
	// asks for. Default: 5000; maximum: 10000.
	PageSize int `yaml:"page_size,omitempty"`
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	c.Common.Defaults()
	c.HTTPConfig.Defaults(defaultHTTP)
	if strings.TrimSpace(c.BaseURL) == "" {
		c.BaseURL = defaultCloud
	}
	if c.UnassessedScore == nil {
		v := defaultUnassessedScore
		c.UnassessedScore = &v
	}
	if c.ContainedScore == nil {
		v := defaultContainedScore
		c.ContainedScore = &v
	}
	if c.PageSize == 0 {
		c.PageSize = defaultPageSize
	}
}

// Validate reports every problem with the section.
func (c *Config) Validate() error {
	errs := []error{c.Common.Validate(), c.HTTPConfig.Validate()}
	if strings.TrimSpace(c.ClientID) == "" {
		errs = append(errs, errors.New("client_id is required"))
	}
	if c.ClientSecret == "" {
		errs = append(errs, errors.New("client_secret is required"))
	}
	if _, err := c.apiBase(); err != nil {
		errs = append(errs, err)
	}
	if strings.ContainsAny(c.MemberCID, " \t\r\n") {
		errs = append(errs, errors.New("member_cid must not contain whitespace"))
	}
	for _, sc := range []struct {
		key string
		v   *int
	}{{"unassessed_score", c.UnassessedScore}, {"contained_score", c.ContainedScore}} {
		if sc.v != nil && (*sc.v < 0 || *sc.v > 100) {
			errs = append(errs, fmt.Errorf("%s must be between 0 and 100, got %d", sc.key, *sc.v))
		}
	}
	if c.PageSize < 1 || c.PageSize > maxCombinedLimit {
		errs = append(errs, fmt.Errorf("page_size must be between 1 and %d, got %d", maxCombinedLimit, c.PageSize))
	}
	return errors.Join(errs...)
}

// apiBase resolves base_url to an absolute URL without a trailing slash.
func (c *Config) apiBase() (string, error) {
	raw := strings.TrimSpace(c.BaseURL)
	if u, ok := clouds[strings.ToLower(raw)]; ok {
		return u, nil
	}
	if !strings.Contains(raw, "://") {
		return "", fmt.Errorf("base_url must be one of us-1, us-2, eu-1, us-gov-1, us-gov-2 or an https URL, got %q", raw)
	}
	if err := conf.CheckURL(raw); err != nil {
		return "", fmt.Errorf("base_url %w", err)
	}
	return strings.TrimSuffix(raw, "/"), nil
}

// cloudOf names the Falcon cloud a base URL belongs to, "" for others.
func cloudOf(base string) string {
	for name, u := range clouds {
		if strings.EqualFold(u, base) {
			return name
		}
	}
	return ""
}

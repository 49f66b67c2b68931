package intune

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/postured/postured/internal/conf"
	"github.com/postured/postured/providers"
)

// Config is one Intune provider section.
type Config struct {
	providers.Common     `yaml:",inline"`
	providers.HTTPConfig `yaml:",inline"`

	// TenantID is the Entra tenant (GUID or domain). Required unless
	// token_url is set.
	TenantID string `yaml:"tenant_id"`
	// ClientID and ClientSecret are the app registration's credentials; the
	// app needs the DeviceManagementManagedDevices.Read.All application
	// permission.
	ClientID     string      `yaml:"client_id"`
	ClientSecret conf.Secret `yaml:"client_secret"`
	// BaseURL is the Graph host, without the API version. Default
	// https://graph.microsoft.com (national clouds: graph.microsoft.us, ...).
	BaseURL string `yaml:"base_url,omitempty"`
	// TokenURL overrides the token endpoint. Default
	// https://login.microsoftonline.com/<tenant_id>/oauth2/v2.0/token
	// (login.microsoftonline.us or login.chinacloudapi.cn when base_url is
	// a national cloud's Graph host).
	TokenURL string `yaml:"token_url,omitempty"`
	// Scope is the OAuth scope asked for. Default
	// https://graph.microsoft.com/.default, or the national cloud's Graph
	// host + /.default.
	Scope string `yaml:"scope,omitempty"`
	// ComplianceScores overrides the score of complianceState values
	// (defaults: compliant 100, inGracePeriod 50). Keys are complianceState
	// values: unknown, compliant, noncompliant, conflict, error,
	// inGracePeriod, configManager.
	ComplianceScores map[string]int `yaml:"compliance_scores,omitempty"`
	// DefaultScore is the score of every state not in ComplianceScores (or
	// the defaults). Default 0.
	DefaultScore int `yaml:"default_score,omitempty"`
}

// Defaults and limits of the Graph / Entra endpoints.
const (
	defaultBaseURL  = "https://graph.microsoft.com"
	defaultLoginURL = "https://login.microsoftonline.com"
	// defaultScope: the client credentials grant asks for the resource's
	// .default scope.
	// https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow
	defaultScope = "https://graph.microsoft.com/.default"
	// tokenEarly refreshes tokens this long before they expire; Entra
	// tokens live 60-90 minutes.
	// https://learn.microsoft.com/entra/identity-platform/access-tokens#token-lifetime
	tokenEarly = 5 * time.Minute
)

// defaultHTTP: Graph's Intune limit, 2000 requests per 20 s per app per
// tenant with every $batch item counted, is kept by the provider's own
// budget (budget.go), which no setting loosens. The request limit here
// only paces HTTP calls: 5 a second with bursts of 100 lets a cold
// 1000-device lookup (50 $batch calls) go out at once.
var defaultHTTP = providers.HTTPConfig{
	MaxConcurrency:    4,
	RequestsPerSecond: 5,
	Burst:             100,
	RetryMax:          3,
	RetryWaitMin:      conf.Duration(200 * time.Millisecond),
	RetryWaitMax:      conf.Duration(5 * time.Second),
	// A 1000-device page is a few hundred KB and Graph can be slow with it.
	RequestTimeout: conf.Duration(30 * time.Second),
}

// nationalClouds maps a national cloud's Graph host to its Entra login host;
// the scope is the Graph host's /.default there.
// https://learn.microsoft.com/graph/deployments
var nationalClouds = map[string]string{
	"graph.microsoft.us":              "https://login.microsoftonline.us",
	"dod-graph.microsoft.us":          "https://login.microsoftonline.us",
	"microsoftgraph.chinacloudapi.cn": "https://login.chinacloudapi.cn",
}

// defaultComplianceScores is design.md's Intune rule.
var defaultComplianceScores = map[string]int{"compliant": 100, "inGracePeriod": 50}

// complianceStates is the v1.0 complianceState enum.
// https://learn.microsoft.com/graph/api/resources/intune-devices-compliancestate
var complianceStates = []string{"unknown", "compliant", "noncompliant", "conflict", "error", "inGracePeriod", "configManager"}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	c.Common.Defaults()
	c.HTTPConfig.Defaults(defaultHTTP)
	if c.BaseURL == "" {
		c.BaseURL = defaultBaseURL
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	login, scope := defaultLoginURL, defaultScope
	if u, err := url.Parse(c.BaseURL); err == nil {
		if l, ok := nationalClouds[strings.ToLower(u.Host)]; ok {
			login, scope = l, "https://"+strings.ToLower(u.Host)+"/.default"
		}
	}
	if c.TokenURL == "" && c.TenantID != "" {
		c.TokenURL = login + "/" + url.PathEscape(c.TenantID) + "/oauth2/v2.0/token"
	}
	if c.Scope == "" {
		c.Scope = scope
	}
}

// Validate reports every problem with the section.
func (c *Config) Validate() error {
	errs := []error{c.Common.Validate(), c.HTTPConfig.Validate()}
	if c.TenantID == "" && c.TokenURL == "" {
		errs = append(errs, errors.New("tenant_id is required"))
	}
	if c.TenantID != "" && strings.ContainsFunc(c.TenantID, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.')
	}) {
		errs = append(errs, fmt.Errorf("tenant_id must be a tenant GUID or domain name, got %q", c.TenantID))
	}
	if c.ClientID == "" {
		errs = append(errs, errors.New("client_id is required"))
	}
	if c.ClientSecret == "" {
		errs = append(errs, errors.New("client_secret is required"))
	}
	if err := conf.CheckURL(c.BaseURL); err != nil {
		errs = append(errs, fmt.Errorf("base_url %w", err))
	} else if u, _ := url.Parse(c.BaseURL); strings.HasSuffix(u.Path, "/"+apiVersion) || strings.HasSuffix(u.Path, "/beta") {
		errs = append(errs, fmt.Errorf("base_url must not include the API version (it is always %s), got %q", apiVersion, c.BaseURL))
	}
	if c.TokenURL != "" {
		if err := conf.CheckURL(c.TokenURL); err != nil {
			errs = append(errs, fmt.Errorf("token_url %w", err))
		}
	}
	if c.Scope == "" {
		errs = append(errs, errors.New("scope must not be empty"))
	}
	for _, k := range slices.Sorted(maps.Keys(c.ComplianceScores)) {
		v := c.ComplianceScores[k]
		if canonicalState(k) == "" {
			errs = append(errs, fmt.Errorf("compliance_scores: unknown complianceState %q (valid: %s)", k, strings.Join(complianceStates, ", ")))
		}
		if v < 0 || v > 100 {
			errs = append(errs, fmt.Errorf("compliance_scores.%s must be 0-100, got %d", k, v))
		}
	}
	if c.DefaultScore < 0 || c.DefaultScore > 100 {
		errs = append(errs, fmt.Errorf("default_score must be 0-100, got %d", c.DefaultScore))
	}
	return errors.Join(errs...)
}

// canonicalState returns the enum spelling of a complianceState, matched
// case-insensitively, or "" if it is not one.
func canonicalState(s string) string {
	for _, st := range complianceStates {
		if strings.EqualFold(st, s) {
			return st
		}
	}
	return ""
}

// scorer maps complianceState to a score.
type scorer struct {
	byState map[string]int // lower-cased state -> score
	def     int
}

func newScorer(c *Config) scorer {
	s := scorer{byState: map[string]int{}, def: c.DefaultScore}
	for k, v := range defaultComplianceScores {
		s.byState[strings.ToLower(k)] = v
	}
	for k, v := range c.ComplianceScores {
		s.byState[strings.ToLower(k)] = v
	}
	return s
}

// score returns the score and the reason for one complianceState.
func (s scorer) score(state string) (int, string) {
	v, ok := s.byState[strings.ToLower(state)]
	if !ok {
		v = s.def
	}
	return providers.Clamp(v), "complianceState=" + state
}

package evaluate

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.yaml.in/yaml/v3"

	"github.com/postured/postured/internal/conf"
	"github.com/postured/postured/server/access"
)

// Key store backends (key_store).
const (
	// KeyStoreFile keeps the key ring in key_file, PEM, mode 0600.
	KeyStoreFile = "file"
	// KeyStoreRedis keeps the key ring in Redis so every replica signs with
	// the same keys.
	KeyStoreRedis = "redis"
)

// Defaults of the external_evaluation section.
const (
	DefaultKeyFile         = "/data/ee-signing-key.pem"
	DefaultRedisPrefix     = "postured:ee:"
	DefaultRotationOverlap = time.Hour
	DefaultRotationGrace   = 24 * time.Hour
	DefaultPostureDeadline = 2 * time.Second
	// DefaultRevokeBaseURL is Cloudflare's API v4 root
	// (https://developers.cloudflare.com/api/).
	DefaultRevokeBaseURL = "https://api.cloudflare.com/client/v4"
	DefaultRevokeTimeout = 10 * time.Second
)

// tokenLifetime is the validity of a response token: exp = iat + 60, as the
// reference worker signs it (cloudflare-protocols.md B.4).
const tokenLifetime = 60 * time.Second

// Config is the external_evaluation section. It is decoded strictly (plain
// structs, no UnmarshalYAML), then Defaults and Validate are called.
type Config struct {
	// Enabled serves POST /evaluate and GET /keys. Default: false.
	Enabled bool `yaml:"enabled"`
	// KeyStore is where the signing key ring lives: "file" (key_file) or
	// "redis" (redis_url; every replica then signs with the same keys).
	// Default: file.
	KeyStore string `yaml:"key_store"`
	// KeyFile is the PEM key ring with key_store: file. Created with mode
	// 0600 at first start if missing, never regenerated; a file readable by
	// group or others, or holding a key under 2048 bits, is refused. A plain
	// RSA private key (PKCS#1 or PKCS#8 PEM) may be supplied instead.
	// Default: /data/ee-signing-key.pem.
	KeyFile string `yaml:"key_file,omitempty"`
	// RedisURL is redis://[:password@]host:port/db (or rediss://) with
	// key_store: redis. The private keys are stored there: protect it.
	RedisURL conf.Secret `yaml:"redis_url,omitempty"`
	// RedisPrefix namespaces the Redis key. Default: "postured:ee:".
	RedisPrefix string `yaml:"redis_prefix,omitempty"`
	// RotationOverlap is how long `postured keys rotate` publishes a new key
	// before signing with it, so Access has fetched it. Default: 1h.
	RotationOverlap conf.Duration `yaml:"rotation_overlap"`
	// RotationGrace is how long a key that stopped signing stays published.
	// At least 1m (a response token lives 60s). Default: 24h.
	RotationGrace conf.Duration `yaml:"rotation_grace"`
	// Issuer, if set, is required as the incoming token's iss
	// ("https://<team>.cloudflareaccess.com"; the scheme may be omitted).
	// Unset: iss is not checked, since Cloudflare does not document it on
	// this token.
	Issuer string `yaml:"issuer,omitempty"`
	// Audience, if set, requires the incoming token's aud to contain one of
	// these. Unset: aud is not checked.
	Audience []string `yaml:"audience,omitempty"`
	// PostureDeadline bounds the device posture lookup (a live
	// recomputation when the remembered score is stale). Default: 2s.
	PostureDeadline conf.Duration `yaml:"posture_deadline"`
	// Rules are evaluated in order; the first whose conditions all hold
	// decides; no match denies.
	Rules []Rule `yaml:"rules"`
	// Revoke optionally revokes the user's Access sessions on deny.
	Revoke RevokeConfig `yaml:"revoke"`
}

// RevokeConfig calls Cloudflare's revoke_user API when a login is denied.
type RevokeConfig struct {
	// Enabled turns revocation on. Default: false.
	Enabled bool `yaml:"enabled"`
	// AccountID is the Cloudflare account id.
	AccountID string `yaml:"account_id,omitempty"`
	// APIToken is a Cloudflare API token with Access: Organizations,
	// Identity Providers, and Groups Write; typically "${CF_API_TOKEN}".
	APIToken conf.Secret `yaml:"api_token,omitempty"`
	// BaseURL is the API root. Default: https://api.cloudflare.com/client/v4.
	BaseURL string `yaml:"base_url,omitempty"`
	// Timeout bounds one revocation call. Default: 10s.
	Timeout conf.Duration `yaml:"timeout,omitempty"`
	// Rules limits revocation to denials by these rules ("default" is the
	// default deny). Empty: every denial revokes. Note that revoke_user
	// ends the user's sessions in every Access application.
	Rules []string `yaml:"rules,omitempty"`
}

// Defaults fills unset fields with their defaults.
func (c *Config) Defaults() {
	if c.KeyStore == "" {
		c.KeyStore = KeyStoreFile
	}
	if c.KeyStore == KeyStoreFile && c.KeyFile == "" {
		c.KeyFile = DefaultKeyFile
	}
	if c.KeyStore == KeyStoreRedis && c.RedisPrefix == "" {
		c.RedisPrefix = DefaultRedisPrefix
	}
	if c.RotationOverlap == 0 {
		c.RotationOverlap = conf.Duration(DefaultRotationOverlap)
	}
	if c.RotationGrace == 0 {
		c.RotationGrace = conf.Duration(DefaultRotationGrace)
	}
	if c.PostureDeadline == 0 {
		c.PostureDeadline = conf.Duration(DefaultPostureDeadline)
	}
	for i := range c.Rules {
		if t := c.Rules[i].When.Time; t != nil && t.TimeZone == "" {
			t.TimeZone = "UTC"
		}
	}
	if c.Revoke.BaseURL == "" {
		c.Revoke.BaseURL = DefaultRevokeBaseURL
	}
	if c.Revoke.Timeout == 0 {
		c.Revoke.Timeout = conf.Duration(DefaultRevokeTimeout)
	}
}

// FieldError is one problem with the section. Path is relative to
// external_evaluation, e.g. "rules[2].when.score".
type FieldError struct {
	Path string
	Msg  string
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Msg }

// errorList collects FieldErrors.
type errorList []error

func (l *errorList) add(path, format string, args ...any) {
	*l = append(*l, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Validate reports every problem with the section, defaults applied. Each
// error is a *FieldError naming the key path and rule index; LocateErrors
// adds the line.
func (c *Config) Validate() error {
	var errs errorList
	switch c.KeyStore {
	case KeyStoreFile:
		if strings.TrimSpace(c.KeyFile) == "" {
			errs.add("key_file", "is required with key_store: file")
		}
	case KeyStoreRedis:
		if c.RedisURL == "" {
			errs.add("redis_url", "is required with key_store: redis")
		} else if _, err := redis.ParseURL(c.RedisURL.Reveal()); err != nil {
			// The URL may carry a password: never echo it.
			errs.add("redis_url", "is not a valid redis:// or rediss:// URL")
		}
	default:
		errs.add("key_store", "must be file or redis, got %q", c.KeyStore)
	}
	if c.RotationOverlap < 0 {
		errs.add("rotation_overlap", "must not be negative")
	}
	if c.RotationGrace < conf.Duration(tokenLifetime) {
		errs.add("rotation_grace", "must be at least %s (a response token lives that long), got %s", tokenLifetime, c.RotationGrace)
	}
	if c.PostureDeadline <= 0 {
		errs.add("posture_deadline", "must be > 0")
	}
	if c.Issuer != "" {
		if _, err := access.TeamIssuer(c.Issuer); err != nil {
			errs.add("issuer", "%v", err)
		}
	}
	for i, a := range c.Audience {
		if strings.TrimSpace(a) == "" {
			errs.add(fmt.Sprintf("audience[%d]", i), "must not be empty")
		}
	}
	if c.Enabled && len(c.Rules) == 0 {
		errs.add("rules", "enabled with no rules: default deny would deny everyone; add rules or disable")
	}
	_, ruleErrs := compileRules(c.Rules)
	errs = append(errs, ruleErrs...)
	c.Revoke.validate(c.Rules, &errs)
	return errors.Join(errs...)
}

func (r *RevokeConfig) validate(rules []Rule, errs *errorList) {
	if !r.Enabled {
		return
	}
	if r.AccountID == "" {
		errs.add("revoke.account_id", "is required with revoke.enabled")
	} else if !accountIDRe.MatchString(r.AccountID) {
		errs.add("revoke.account_id", "must be the 32-character hex account id, got %q", r.AccountID)
	}
	if r.APIToken == "" {
		errs.add("revoke.api_token", "is required with revoke.enabled (e.g. \"${CF_API_TOKEN}\")")
	}
	if u, err := url.Parse(r.BaseURL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		errs.add("revoke.base_url", "%q is not an absolute http(s) URL", r.BaseURL)
	}
	if r.Timeout <= 0 {
		errs.add("revoke.timeout", "must be > 0")
	}
	actions := map[string]string{defaultRule: actionDeny}
	for _, rule := range rules {
		actions[rule.Name] = rule.Action
	}
	for i, name := range r.Rules {
		switch a, ok := actions[name]; {
		case !ok:
			errs.add(fmt.Sprintf("revoke.rules[%d]", i), "names no rule: %q", name)
		case a != actionDeny:
			errs.add(fmt.Sprintf("revoke.rules[%d]", i), "rule %q allows; only deny rules (or \"default\") can revoke", name)
		}
	}
}

// accountIDRe matches a Cloudflare account id.
var accountIDRe = regexp.MustCompile(`^[0-9a-fA-F]{32}$`)

// ReferencedProviders lists the provider names the rules' provider_scores
// conditions use, so the caller can check them against the providers
// section.
func (c *Config) ReferencedProviders() []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range c.Rules {
		for name := range r.When.ProviderScores {
			if !seen[name] {
				seen[name] = true
				out = append(out, name)
			}
		}
	}
	return out
}

// LocateErrors prefixes every *FieldError in err with the line of its key
// in section (the external_evaluation mapping node) and with prefix (e.g.
// "external_evaluation."): "line 42: external_evaluation.rules[2].when.score:
// min must be 0..100". Other errors pass through unchanged.
func LocateErrors(err error, section *yaml.Node, prefix string) error {
	if err == nil {
		return nil
	}
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	out := make([]error, 0, len(list))
	for _, e := range list {
		var fe *FieldError
		if !errors.As(e, &fe) {
			out = append(out, e)
			continue
		}
		loc := ""
		if line := conf.Line(section, fe.Path); line > 0 {
			loc = fmt.Sprintf("line %d: ", line)
		}
		out = append(out, fmt.Errorf("%s%s%s: %s", loc, prefix, fe.Path, fe.Msg))
	}
	return errors.Join(out...)
}

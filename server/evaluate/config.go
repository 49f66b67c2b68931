package evaluate

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.yaml.in/yaml/v3"

	"github.com/postured/postured/internal/conf"
	"github.com/postured/postured/server/access"
	"github.com/postured/postured/server/evaluate/keyring"
	"github.com/postured/postured/server/evaluate/policy"
)

// Defaults of the revoke section.
const (
	// defaultRevokeBaseURL is Cloudflare's API v4 root
	// (https://developers.cloudflare.com/api/).
	defaultRevokeBaseURL = "https://api.cloudflare.com/client/v4"
	defaultRevokeTimeout = 10 * time.Second
	// defaultRevokeDedupWindow: a user denied again within it is not
	// revoked again.
	defaultRevokeDedupWindow = 5 * time.Minute
)

// Config is the external_evaluation section. It is decoded strictly (plain
// structs, no UnmarshalYAML), then Defaults and Validate are called. The
// key ring and rules fields sit inline in the section, as they always have.
type Config struct {
	// Enabled serves POST /evaluate and GET /keys. Default: false.
	Enabled bool `yaml:"enabled"`
	// Keyring is where the signing keys live and how they rotate: key_store,
	// key_file, redis_url, redis_prefix, rotation_overlap, rotation_grace.
	Keyring keyring.Config `yaml:",inline"`
	// Issuer, if set, is required as the incoming token's iss
	// ("https://<team>.cloudflareaccess.com"; the scheme may be omitted).
	// Unset: the team's (access.team_domain) is required when the token
	// carries an iss; a token without one is accepted, since Cloudflare
	// does not document iss on this token.
	Issuer string `yaml:"issuer,omitempty"`
	// Audience, if set, requires the incoming token's aud to contain one of
	// these. Unset: aud is not checked.
	Audience []string `yaml:"audience,omitempty"`
	// Policy is the rules deciding a login: posture_deadline, rules.
	Policy policy.Config `yaml:",inline"`
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
	// DedupWindow is how long after revoking a user's sessions a further
	// denial of the same email does not revoke again. Default: 5m.
	DedupWindow conf.Duration `yaml:"dedup_window,omitempty"`
	// Rules limits revocation to denials by these rules ("default" is the
	// default deny). Empty: every denial revokes. Note that revoke_user
	// ends the user's sessions in every Access application.
	Rules []string `yaml:"rules,omitempty"`
}

// Defaults fills unset fields with their defaults.
func (c *Config) Defaults() {
	c.Keyring.Defaults()
	c.Policy.Defaults()
	if c.Revoke.BaseURL == "" {
		c.Revoke.BaseURL = defaultRevokeBaseURL
	}
	if c.Revoke.Timeout == 0 {
		c.Revoke.Timeout = conf.Duration(defaultRevokeTimeout)
	}
	if c.Revoke.DedupWindow == 0 {
		c.Revoke.DedupWindow = conf.Duration(defaultRevokeDedupWindow)
	}
}

// errorList collects the section's problems, each a *policy.FieldError.
type errorList []error

func (l *errorList) add(path, format string, args ...any) {
	*l = append(*l, &policy.FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// addJoined adds the errors err joins, one by one, so that LocateErrors
// sees each.
func (l *errorList) addJoined(err error) {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		*l = append(*l, j.Unwrap()...)
	} else if err != nil {
		*l = append(*l, err)
	}
}

// Validate reports every problem with the section, defaults applied. Each
// error is a *policy.FieldError naming the key path and rule index;
// LocateErrors adds the line.
func (c *Config) Validate() error {
	var errs errorList
	c.validateKeyring(&errs)
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
	if c.Enabled && len(c.Policy.Rules) == 0 {
		errs.add("rules", "enabled with no rules: default deny would deny everyone; add rules or disable")
	}
	errs.addJoined(c.Policy.Validate())
	c.Revoke.validate(c.Policy.Rules, &errs)
	return errors.Join(errs...)
}

// Warnings reports what is valid but probably a mistake (see
// policy.Config.Warnings), as *policy.FieldErrors for LocateErrors; nil
// when the section is disabled.
func (c *Config) Warnings() error {
	if !c.Enabled {
		return nil
	}
	return c.Policy.Warnings()
}

// validateKeyring checks the key ring fields here rather than in keyring:
// their floor (rotation_grace) is this protocol's token lifetime.
func (c *Config) validateKeyring(errs *errorList) {
	k := c.Keyring
	switch k.KeyStore {
	case keyring.StoreFile:
		if strings.TrimSpace(k.KeyFile) == "" {
			errs.add("key_file", "is required with key_store: file")
		}
	case keyring.StoreRedis:
		if k.RedisURL == "" {
			errs.add("redis_url", "is required with key_store: redis")
		} else if _, err := redis.ParseURL(k.RedisURL.Reveal()); err != nil {
			// The URL may carry a password: never echo it.
			errs.add("redis_url", "is not a valid redis:// or rediss:// URL")
		} else if k.TLSCAFile != "" && !strings.HasPrefix(k.RedisURL.Reveal(), "rediss://") {
			errs.add("tls_ca_file", "needs a rediss:// redis_url")
		}
	default:
		errs.add("key_store", "must be file or redis, got %q", k.KeyStore)
	}
	if _, err := keyring.ParseSealKey(k.SealKey.Reveal()); err != nil {
		errs.add("seal_key", "%v", err)
	}
	if k.RotationOverlap < 0 {
		errs.add("rotation_overlap", "must not be negative")
	}
	if k.RotationGrace < conf.Duration(tokenLifetime) {
		errs.add("rotation_grace", "must be at least %s (a response token lives that long), got %s", tokenLifetime, k.RotationGrace)
	}
}

func (r *RevokeConfig) validate(rules []policy.Rule, errs *errorList) {
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
	if err := conf.CheckURL(r.BaseURL); err != nil {
		errs.add("revoke.base_url", "%v", err)
	}
	if r.Timeout <= 0 {
		errs.add("revoke.timeout", "must be > 0")
	}
	if r.DedupWindow < 0 {
		errs.add("revoke.dedup_window", "must not be negative")
	}
	actions := map[string]string{policy.DefaultRule: policy.ActionDeny}
	for _, rule := range rules {
		actions[rule.Name] = rule.Action
	}
	for i, name := range r.Rules {
		switch a, ok := actions[name]; {
		case !ok:
			errs.add(fmt.Sprintf("revoke.rules[%d]", i), "names no rule: %q", name)
		case a != policy.ActionDeny:
			errs.add(fmt.Sprintf("revoke.rules[%d]", i), "rule %q allows; only deny rules (or \"default\") can revoke", name)
		}
	}
}

// accountIDRe matches a Cloudflare account id.
var accountIDRe = regexp.MustCompile(`^[0-9a-fA-F]{32}$`)

// LocateErrors prefixes every *policy.FieldError in err with the line of its key
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
		var fe *policy.FieldError
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

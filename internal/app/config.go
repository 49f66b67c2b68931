// Package app is postured assembled: the configuration file, the provider
// registry, and the wiring from a Config to a running server. cmd/postured
// is its command line; the demo in cmd/mockvendors runs it in-process.
package app

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/postured/postured/adjust"
	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/internal/conf"
	"github.com/postured/postured/internal/redisopt"
	"github.com/postured/postured/providers"
	"github.com/postured/postured/server/evaluate"
	"github.com/postured/postured/server/evaluate/keyring"
)

// Config is postured's configuration file. Field docs are in
// config.example.yaml, which check-config must accept.
type Config struct {
	Listen             string          `yaml:"listen"`
	AdminListen        string          `yaml:"admin_listen,omitempty"`
	Log                LogConfig       `yaml:"log"`
	Access             AccessConfig    `yaml:"access"`
	Posture            PostureConfig   `yaml:"posture"`
	Providers          ProviderList    `yaml:"providers"`
	Cache              CacheConfig     `yaml:"cache"`
	Server             ServerConfig    `yaml:"server"`
	History            HistoryConfig   `yaml:"history"`
	Audit              AuditConfig     `yaml:"audit"`
	ExternalEvaluation evaluate.Config `yaml:"external_evaluation"`
	ShadowPolicies     []ShadowPolicy  `yaml:"shadow_policies,omitempty"`
	// Overrides are time-boxed exceptions to devices' scores.
	Overrides []adjust.Spec `yaml:"overrides,omitempty"`

	// overrides are Overrides parsed; validate fills them.
	overrides []adjust.Override

	// warnings are what Parse found valid but probably a mistake.
	warnings []error
}

// Warnings are the problems Parse found that do not make the config
// invalid, each naming its key (and line): check-config prints them, serve
// logs them.
func (c *Config) Warnings() []error { return c.warnings }

// LogConfig selects log verbosity and format.
type LogConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// AccessConfig says whose Access tokens postured accepts.
type AccessConfig struct {
	TeamDomain         string        `yaml:"team_domain"`
	Audience           []string      `yaml:"audience"`
	CertsURL           string        `yaml:"certs_url,omitempty"`
	InsecureSkipVerify bool          `yaml:"insecure_skip_verify,omitempty"`
	AllowedCommonNames []string      `yaml:"allowed_common_names,omitempty"`
	Leeway             conf.Duration `yaml:"leeway"`
	RefetchCooldown    conf.Duration `yaml:"refetch_cooldown"`
}

// PostureConfig holds the batch policies.
type PostureConfig struct {
	MaxDevices     int           `yaml:"max_devices"`
	Deadline       conf.Duration `yaml:"deadline"`
	UnmatchedScore int           `yaml:"unmatched_score"`
	S2SIDFrom      []string      `yaml:"s2s_id_from,omitempty"`
	// Hysteresis, if set, holds a falling device's last good score (package
	// adjust).
	Hysteresis *adjust.HysteresisConfig `yaml:"hysteresis,omitempty"`
}

// CacheConfig selects and tunes the lookup cache.
type CacheConfig struct {
	Backend     string        `yaml:"backend"`
	TTL         conf.Duration `yaml:"ttl"`
	StaleTTL    conf.Duration `yaml:"stale_ttl"`
	NegativeTTL conf.Duration `yaml:"negative_ttl"`
	MaxEntries  int           `yaml:"max_entries"`
	RedisURL    conf.Secret   `yaml:"redis_url,omitempty"`
	// RedisTLSCAFile verifies a rediss:// redis_url against this PEM CA
	// bundle instead of the system pool (a private CA).
	RedisTLSCAFile string `yaml:"redis_tls_ca_file,omitempty"`
	// ShareCrawls lets replicas sharing the Redis crawl each sync-mode
	// provider once per interval between them (internal/crawlshare).
	// Default true with backend: redis; not allowed with memory.
	ShareCrawls *bool `yaml:"share_crawls,omitempty"`
}

// SharesCrawls reports whether sync-mode crawls are shared through Redis.
func (c CacheConfig) SharesCrawls() bool {
	return c.Backend == "redis" && c.ShareCrawls != nil && *c.ShareCrawls
}

// HistoryConfig turns on the per-device score history (GET /v1/history,
// `postured history`), kept in the cache backend.
type HistoryConfig struct {
	Enabled bool `yaml:"enabled"`
	// MaxChanges is how many score changes are kept per device.
	MaxChanges int `yaml:"max_changes"`
	// Retention forgets a device no batch has carried for this long.
	Retention conf.Duration `yaml:"retention"`
	// MaxBytes bounds the memory backend's history (devices are also
	// bounded by cache.max_entries).
	MaxBytes int `yaml:"max_bytes"`
}

// ServerConfig tunes the HTTP server.
type ServerConfig struct {
	ShutdownTimeout conf.Duration `yaml:"shutdown_timeout"`
	TrustedProxies  []string      `yaml:"trusted_proxies,omitempty"`
}

// AuditConfig is the audit log of every answer (package audit).
type AuditConfig struct {
	Enabled bool `yaml:"enabled"`
	// Path is the current file; rotated files go next to it.
	Path         string         `yaml:"path,omitempty"`
	MaxFileBytes int64          `yaml:"max_file_bytes"`
	Retention    AuditRetention `yaml:"retention"`
}

// AuditRetention says which rotated audit files are deleted; zero keeps
// them (when they are shipped and pruned elsewhere).
type AuditRetention struct {
	// MaxFiles counts the current file.
	MaxFiles int           `yaml:"max_files"`
	MaxAge   conf.Duration `yaml:"max_age"`
}

// minAuditFileBytes keeps a rotated file larger than any one line.
const minAuditFileBytes = 1 << 20

// ProviderList is the providers: section. Each entry is decoded into the
// config type its `type:` names, so it is kept as YAML until the registry
// is known.
type ProviderList struct {
	nodes   []*yaml.Node
	Configs []providers.Config
}

// UnmarshalYAML keeps the raw entries; Load decodes them.
func (p *ProviderList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.SequenceNode {
		return fmt.Errorf("line %d: providers must be a list", n.Line)
	}
	p.nodes = n.Content
	return nil
}

// MarshalYAML prints the decoded, defaulted sections (secrets redacted).
func (p ProviderList) MarshalYAML() (any, error) { return p.Configs, nil }

// Load reads, expands, strictly decodes, defaults and validates a config
// file. Every error names the file and, where there is one, the line.
func Load(path string, reg providers.Registry[aggregate.Provider], getenv func(string) (string, bool)) (*Config, error) {
	data, err := os.ReadFile(path) // #nosec G304 -- the operator's -c config file
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := Parse(data, reg, getenv)
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	return cfg, nil
}

// Parse is Load on bytes.
func Parse(data []byte, reg providers.Registry[aggregate.Provider], getenv func(string) (string, bool)) (*Config, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("file is empty")
		}
		return nil, err
	}
	if err := conf.ExpandEnv(&root, getenv); err != nil {
		return nil, err
	}
	var cfg Config
	if err := conf.DecodeStrict(&root, &cfg); err != nil {
		return nil, err
	}
	var errs []error
	names := make(map[string]int)
	for i, n := range cfg.Providers.nodes {
		pc, err := decodeProvider(n, reg)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: providers[%d]: %w", n.Line, i, err))
			continue
		}
		name := pc.Base().Name
		if prev, dup := names[name]; dup {
			errs = append(errs, fmt.Errorf("line %d: providers[%d]: name %q already used on line %d", n.Line, i, name, prev))
		}
		names[name] = n.Line
		cfg.Providers.Configs = append(cfg.Providers.Configs, pc)
	}
	cfg.defaults()
	errs = append(errs, cfg.validate(&root)...)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	cfg.warnings = cfg.warn(&root)
	return &cfg, nil
}

// Hash is the hex SHA-256 of the effective config as check-config prints
// it (defaults applied, environment expanded, secrets redacted), which the
// audit log records with every answer. No secret, nor anything derived
// from one, goes into it: changing only a secret's value leaves it alone.
func (c *Config) Hash() (string, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return "", fmt.Errorf("config: hash: %w", err)
	}
	if err := enc.Close(); err != nil {
		return "", fmt.Errorf("config: hash: %w", err)
	}
	sum := sha256.Sum256(b.Bytes())
	return hex.EncodeToString(sum[:]), nil
}

// warn lists what is valid but probably a mistake.
func (c *Config) warn(root *yaml.Node) []error {
	at := locator{root}
	var warns []error
	if c.ExternalEvaluation.Enabled && len(c.Access.AllowedCommonNames) == 0 && !c.Access.InsecureSkipVerify {
		warns = append(warns, at.errorf("access.allowed_common_names",
			"is empty while external_evaluation is enabled: /posture accepts any service token of the team (user tokens are refused), "+
				"and what a batch carries decides logins; list the posture integration's client id"))
	}
	for i, o := range c.overrides {
		if o.Expired(time.Now()) {
			warns = append(warns, at.errorf(fmt.Sprintf("overrides[%d].until", i), "%s is in the past: the override no longer applies; remove it", o.Until.Format(time.RFC3339)))
		}
	}
	err := evaluate.LocateErrors(c.ExternalEvaluation.Warnings(), conf.Lookup(root, "external_evaluation"), "external_evaluation.")
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		warns = append(warns, j.Unwrap()...)
	} else if err != nil {
		warns = append(warns, err)
	}
	return warns
}

func decodeProvider(n *yaml.Node, reg providers.Registry[aggregate.Provider]) (providers.Config, error) {
	if n.Kind != yaml.MappingNode {
		return nil, errors.New("each provider must be a mapping")
	}
	typ := conf.Lookup(n, "type")
	if typ == nil || typ.Value == "" {
		return nil, errors.New("type is required")
	}
	f, ok := reg[typ.Value]
	if !ok {
		known := make([]string, 0, len(reg))
		for k := range reg {
			known = append(known, k)
		}
		sort.Strings(known)
		return nil, fmt.Errorf("unknown type %q (known: %s)", typ.Value, strings.Join(known, ", "))
	}
	pc := f.NewConfig()
	if err := conf.DecodeStrict(n, pc); err != nil {
		return nil, err
	}
	pc.Defaults()
	if err := pc.Validate(); err != nil {
		name := pc.Base().Name
		return nil, fmt.Errorf("provider %q: %w", name, err)
	}
	return pc, nil
}

func (c *Config) defaults() {
	setDefault(&c.Listen, ":8080")
	setDefault(&c.Log.Level, "info")
	setDefault(&c.Log.Format, "json")
	setDefault(&c.Access.Leeway, conf.Duration(30*time.Second))
	setDefault(&c.Access.RefetchCooldown, conf.Duration(10*time.Second))
	setDefault(&c.Posture.MaxDevices, 1000)
	setDefault(&c.Posture.Deadline, conf.Duration(4*time.Second))
	setDefault(&c.Cache.Backend, "memory")
	setDefault(&c.Cache.TTL, conf.Duration(5*time.Minute))
	setDefault(&c.Cache.StaleTTL, conf.Duration(24*time.Hour))
	setDefault(&c.Cache.NegativeTTL, conf.Duration(time.Minute))
	setDefault(&c.Cache.MaxEntries, 1_000_000)
	if c.Cache.Backend == "redis" && c.Cache.ShareCrawls == nil {
		on := true
		c.Cache.ShareCrawls = &on
	}
	setDefault(&c.Server.ShutdownTimeout, conf.Duration(15*time.Second))
	setDefault(&c.History.MaxChanges, 20)
	setDefault(&c.History.Retention, conf.Duration(30*24*time.Hour))
	setDefault(&c.History.MaxBytes, 64<<20)
	setDefault(&c.Audit.MaxFileBytes, 64<<20)
	c.ExternalEvaluation.Defaults()
	if k := &c.ExternalEvaluation.Keyring; k.KeyStore == keyring.StoreRedis && k.RedisURL == "" {
		k.RedisURL = c.Cache.RedisURL // one Redis for cache and keys unless told otherwise
		if k.TLSCAFile == "" {
			k.TLSCAFile = c.Cache.RedisTLSCAFile
		}
	}
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// validate runs every check on the defaulted config and reports all the
// problems at once, each located in the file where root has the key.
func (c *Config) validate(root *yaml.Node) []error {
	at := locator{root}
	names := c.providerNames()
	return slices.Concat(
		c.validateServe(at),
		c.validateAccess(at),
		c.validatePosture(at),
		c.validateProviders(at, names),
		c.validateCache(at),
		c.validateServer(at),
		c.validateHistory(at),
		c.validateAudit(at),
		c.validateExternalEvaluation(at, names),
		c.validateShadowPolicies(at, names),
		c.validateAdjust(at),
	)
}

// validateAdjust checks posture.hysteresis and overrides, and keeps the
// parsed overrides.
func (c *Config) validateAdjust(at locator) []error {
	var errs []error
	located := func(base string, probs []adjust.Problem) {
		for _, p := range probs {
			path := base
			if p.Field != "" {
				path += "." + p.Field
			}
			errs = append(errs, at.errorf(path, "%s", p.Msg))
		}
	}
	if h := c.Posture.Hysteresis; h != nil {
		located("posture.hysteresis", h.Problems())
	}
	c.overrides = nil
	seen := make(map[string]int, len(c.Overrides))
	for i, s := range c.Overrides {
		path := fmt.Sprintf("overrides[%d]", i)
		o, probs := s.Parse()
		if len(probs) > 0 {
			located(path, probs)
			continue
		}
		if j, dup := seen[o.Key()]; dup {
			errs = append(errs, at.errorf(path, "%s %q already has an override: overrides[%d] (line %d)", o.Kind, o.Value, j, conf.Line(at.root, fmt.Sprintf("overrides[%d]", j))))
			continue
		}
		seen[o.Key()] = i
		c.overrides = append(c.overrides, o)
	}
	return errs
}

// ParsedOverrides are the config file's overrides, validated.
func (c *Config) ParsedOverrides() []adjust.Override { return c.overrides }

// maxHistoryChanges bounds history.max_changes: every change is kept per
// device, in memory or in Redis.
const maxHistoryChanges = 1000

func (c *Config) validateHistory(at locator) []error {
	h := c.History
	if !h.Enabled {
		return nil
	}
	var errs []error
	if h.MaxChanges < 1 || h.MaxChanges > maxHistoryChanges {
		errs = append(errs, at.errorf("history.max_changes", "must be 1..%d, got %d", maxHistoryChanges, h.MaxChanges))
	}
	if h.Retention <= 0 {
		errs = append(errs, at.errorf("history.retention", "must be > 0"))
	}
	if h.MaxBytes < 1<<20 {
		errs = append(errs, at.errorf("history.max_bytes", "must be >= 1048576 (1 MiB), got %d", h.MaxBytes))
	}
	return errs
}

// locator turns a key path and a message into an error that names the
// path and, when the key is in the file, its line.
type locator struct{ root *yaml.Node }

func (l locator) errorf(path, format string, args ...any) error {
	loc := ""
	if line := conf.Line(l.root, path); line > 0 {
		loc = fmt.Sprintf("line %d: ", line)
	}
	return fmt.Errorf("%s%s: %s", loc, path, fmt.Sprintf(format, args...))
}

func (c *Config) providerNames() map[string]bool {
	names := make(map[string]bool, len(c.Providers.Configs))
	for _, p := range c.Providers.Configs {
		names[p.Base().Name] = true
	}
	return names
}

// validateServe checks the listen address and the log settings.
func (c *Config) validateServe(at locator) []error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, at.errorf("listen", "%q is not host:port", c.Listen))
	}
	if c.AdminListen != "" {
		if _, port, err := net.SplitHostPort(c.AdminListen); err != nil {
			errs = append(errs, at.errorf("admin_listen", "%q is not host:port", c.AdminListen))
		} else if c.AdminListen == c.Listen && port != "0" {
			errs = append(errs, at.errorf("admin_listen", "must differ from listen"))
		}
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		errs = append(errs, at.errorf("log.level", "must be debug, info, warn or error, got %q", c.Log.Level))
	}
	if !slices.Contains([]string{"json", "text"}, c.Log.Format) {
		errs = append(errs, at.errorf("log.format", "must be json or text, got %q", c.Log.Format))
	}
	return errs
}

func (c *Config) validateAccess(at locator) []error {
	var errs []error
	a := &c.Access
	if !a.InsecureSkipVerify {
		if strings.TrimSpace(a.TeamDomain) == "" {
			errs = append(errs, at.errorf("access.team_domain", "is required (or access.insecure_skip_verify: true on a loopback listen address)"))
		}
		if len(a.Audience) == 0 || slices.Contains(a.Audience, "") {
			errs = append(errs, at.errorf("access.audience", "at least one non-empty AUD tag is required"))
		}
	}
	if a.CertsURL != "" {
		if err := conf.CheckURL(a.CertsURL); err != nil {
			errs = append(errs, at.errorf("access.certs_url", "%v", err))
		}
	}
	for i, cn := range a.AllowedCommonNames {
		if strings.TrimSuffix(strings.TrimSpace(cn), ".access") == "" {
			errs = append(errs, at.errorf(fmt.Sprintf("access.allowed_common_names[%d]", i), "must be a service token client id"))
		}
	}
	if a.Leeway < 0 || a.Leeway > conf.Duration(time.Minute) {
		errs = append(errs, at.errorf("access.leeway", "must be 0s..60s, got %s", a.Leeway))
	}
	return errs
}

func (c *Config) validatePosture(at locator) []error {
	var errs []error
	p := &c.Posture
	if p.MaxDevices < 1 || p.MaxDevices > 10000 {
		errs = append(errs, at.errorf("posture.max_devices", "must be 1..10000, got %d", p.MaxDevices))
	}
	if p.Deadline <= 0 {
		errs = append(errs, at.errorf("posture.deadline", "must be > 0"))
	}
	if p.UnmatchedScore < 0 || p.UnmatchedScore > 100 {
		errs = append(errs, at.errorf("posture.unmatched_score", "must be 0..100, got %d", p.UnmatchedScore))
	}
	return errs
}

// validateProviders checks there is a provider and that the posture
// section names only providers that exist. The sections themselves were
// validated as they were decoded.
func (c *Config) validateProviders(at locator, names map[string]bool) []error {
	var errs []error
	if len(c.Providers.nodes) == 0 {
		errs = append(errs, at.errorf("providers", "at least one provider is required"))
	}
	for _, n := range c.Posture.S2SIDFrom {
		if !names[n] {
			errs = append(errs, at.errorf("posture.s2s_id_from", "names unknown provider %q", n))
		}
	}
	return errs
}

func (c *Config) validateCache(at locator) []error {
	var errs []error
	switch c.Cache.Backend {
	case "memory":
	case "redis":
		if c.Cache.RedisURL == "" {
			errs = append(errs, at.errorf("cache.redis_url", "is required with backend: redis"))
		} else if _, err := redisopt.Options(redisopt.Config{URL: c.Cache.RedisURL.Reveal()}); err != nil {
			errs = append(errs, at.errorf("cache.redis_url", "%v", err))
		} else if c.Cache.RedisTLSCAFile != "" && !strings.HasPrefix(c.Cache.RedisURL.Reveal(), "rediss://") {
			errs = append(errs, at.errorf("cache.redis_tls_ca_file", "needs a rediss:// redis_url"))
		}
	default:
		errs = append(errs, at.errorf("cache.backend", "must be memory or redis, got %q", c.Cache.Backend))
	}
	if c.Cache.Backend != "redis" && c.Cache.ShareCrawls != nil && *c.Cache.ShareCrawls {
		errs = append(errs, at.errorf("cache.share_crawls", "needs backend: redis (replicas share crawls through it)"))
	}
	if c.Cache.TTL <= 0 || c.Cache.StaleTTL < 0 || c.Cache.NegativeTTL < 0 {
		errs = append(errs, at.errorf("cache", "ttl must be > 0, stale_ttl and negative_ttl >= 0"))
	}
	if c.Cache.MaxEntries < 1 {
		errs = append(errs, at.errorf("cache.max_entries", "must be >= 1"))
	}
	return errs
}

func (c *Config) validateServer(at locator) []error {
	var errs []error
	if c.Server.ShutdownTimeout <= 0 {
		errs = append(errs, at.errorf("server.shutdown_timeout", "must be > 0"))
	}
	for _, p := range c.Server.TrustedProxies {
		if _, _, err := net.ParseCIDR(p); err != nil && net.ParseIP(p) == nil {
			errs = append(errs, at.errorf("server.trusted_proxies", "%q is not an IP or CIDR", p))
		}
	}
	return errs
}

// validateAudit checks the audit section when it is enabled: nothing
// reads it otherwise. The path is not checked here: check-config may run
// where the volume is not mounted; serve refuses to start without it.
func (c *Config) validateAudit(at locator) []error {
	a := &c.Audit
	if !a.Enabled {
		return nil
	}
	var errs []error
	if strings.TrimSpace(a.Path) == "" {
		errs = append(errs, at.errorf("audit.path", "is required with audit.enabled: true"))
	} else if strings.HasSuffix(a.Path, "/") {
		errs = append(errs, at.errorf("audit.path", "%q names a directory; name the current file, e.g. %saudit.jsonl", a.Path, a.Path))
	}
	if a.MaxFileBytes < minAuditFileBytes {
		errs = append(errs, at.errorf("audit.max_file_bytes", "must be >= %d (1 MiB), got %d", minAuditFileBytes, a.MaxFileBytes))
	}
	if a.Retention.MaxFiles < 0 {
		errs = append(errs, at.errorf("audit.retention.max_files", "must be >= 0 (0 keeps every file), got %d", a.Retention.MaxFiles))
	}
	if a.Retention.MaxAge < 0 {
		errs = append(errs, at.errorf("audit.retention.max_age", "must be >= 0 (0 keeps files of any age), got %s", a.Retention.MaxAge))
	}
	return errs
}

// validateExternalEvaluation checks the section, and the providers its
// rules name, only when it is enabled: nothing reads it otherwise.
func (c *Config) validateExternalEvaluation(at locator, names map[string]bool) []error {
	ee := &c.ExternalEvaluation
	if !ee.Enabled {
		return nil
	}
	var errs []error
	if c.Access.InsecureSkipVerify {
		errs = append(errs, at.errorf("external_evaluation.enabled", "needs the team's Access keys: not allowed with access.insecure_skip_verify"))
	}
	if err := ee.Validate(); err != nil {
		errs = append(errs, evaluate.LocateErrors(err, conf.Lookup(at.root, "external_evaluation"), "external_evaluation."))
	}
	for _, p := range ee.Policy.ReferencedProviders() {
		if !names[p] {
			errs = append(errs, at.errorf("external_evaluation.rules", "provider_scores names unknown provider %q", p))
		}
	}
	return errs
}

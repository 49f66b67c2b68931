// Package app is postured assembled: the configuration file, the provider
// registry, and the wiring from a Config to a running server. cmd/postured
// is its command line; the demo in cmd/mockvendors runs it in-process.
package app

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/providers"
	"github.com/postured/postured/server/evaluate"
)

// Config is postured's configuration file. Field docs are in
// config.example.yaml, which check-config must accept.
type Config struct {
	Listen             string          `yaml:"listen"`
	Log                LogConfig       `yaml:"log"`
	Access             AccessConfig    `yaml:"access"`
	Posture            PostureConfig   `yaml:"posture"`
	Providers          ProviderList    `yaml:"providers"`
	Cache              CacheConfig     `yaml:"cache"`
	Server             ServerConfig    `yaml:"server"`
	ExternalEvaluation evaluate.Config `yaml:"external_evaluation"`
}

// LogConfig selects log verbosity and format.
type LogConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// AccessConfig says whose Access tokens postured accepts.
type AccessConfig struct {
	TeamDomain         string             `yaml:"team_domain"`
	Audience           []string           `yaml:"audience"`
	CertsURL           string             `yaml:"certs_url,omitempty"`
	InsecureSkipVerify bool               `yaml:"insecure_skip_verify,omitempty"`
	Leeway             providers.Duration `yaml:"leeway"`
	RefetchCooldown    providers.Duration `yaml:"refetch_cooldown"`
}

// PostureConfig holds the batch policies.
type PostureConfig struct {
	MaxDevices     int                `yaml:"max_devices"`
	Deadline       providers.Duration `yaml:"deadline"`
	UnmatchedScore int                `yaml:"unmatched_score"`
	S2SIDFrom      []string           `yaml:"s2s_id_from,omitempty"`
}

// CacheConfig selects and tunes the lookup cache.
type CacheConfig struct {
	Backend     string             `yaml:"backend"`
	TTL         providers.Duration `yaml:"ttl"`
	StaleTTL    providers.Duration `yaml:"stale_ttl"`
	NegativeTTL providers.Duration `yaml:"negative_ttl"`
	MaxEntries  int                `yaml:"max_entries"`
	RedisURL    providers.Secret   `yaml:"redis_url,omitempty"`
}

// ServerConfig tunes the HTTP server.
type ServerConfig struct {
	ShutdownTimeout providers.Duration `yaml:"shutdown_timeout"`
	TrustedProxies  []string           `yaml:"trusted_proxies,omitempty"`
}

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
	data, err := os.ReadFile(path)
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
	if err := expandEnv(&root, getenv); err != nil {
		return nil, err
	}
	var cfg Config
	if err := providers.DecodeStrict(&root, &cfg); err != nil {
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
	return &cfg, nil
}

func decodeProvider(n *yaml.Node, reg providers.Registry[aggregate.Provider]) (providers.Config, error) {
	if n.Kind != yaml.MappingNode {
		return nil, errors.New("each provider must be a mapping")
	}
	typ := mappingValue(n, "type")
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
	if err := providers.DecodeStrict(n, pc); err != nil {
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
	setDefault(&c.Access.Leeway, providers.Duration(30*time.Second))
	setDefault(&c.Access.RefetchCooldown, providers.Duration(10*time.Second))
	setDefault(&c.Posture.MaxDevices, 1000)
	setDefault(&c.Posture.Deadline, providers.Duration(4*time.Second))
	setDefault(&c.Cache.Backend, "memory")
	setDefault(&c.Cache.TTL, providers.Duration(5*time.Minute))
	setDefault(&c.Cache.StaleTTL, providers.Duration(24*time.Hour))
	setDefault(&c.Cache.NegativeTTL, providers.Duration(time.Minute))
	setDefault(&c.Cache.MaxEntries, 1_000_000)
	setDefault(&c.Server.ShutdownTimeout, providers.Duration(15*time.Second))
	c.ExternalEvaluation.Defaults()
	if c.ExternalEvaluation.KeyStore == evaluate.KeyStoreRedis && c.ExternalEvaluation.RedisURL == "" {
		c.ExternalEvaluation.RedisURL = c.Cache.RedisURL // one Redis for cache and keys unless told otherwise
	}
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

func (c *Config) validate(root *yaml.Node) []error {
	var errs []error
	bad := func(path string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s%s: %s", lineOf(root, path), path, fmt.Sprintf(format, args...)))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", "%q is not host:port", c.Listen)
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		bad("log.level", "must be debug, info, warn or error, got %q", c.Log.Level)
	}
	if !slices.Contains([]string{"json", "text"}, c.Log.Format) {
		bad("log.format", "must be json or text, got %q", c.Log.Format)
	}
	if !c.Access.InsecureSkipVerify {
		if strings.TrimSpace(c.Access.TeamDomain) == "" {
			bad("access.team_domain", "is required (or access.insecure_skip_verify: true on a loopback listen address)")
		}
		if len(c.Access.Audience) == 0 || slices.Contains(c.Access.Audience, "") {
			bad("access.audience", "at least one non-empty AUD tag is required")
		}
	}
	if c.Access.CertsURL != "" {
		if u, err := url.Parse(c.Access.CertsURL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			bad("access.certs_url", "%q is not an absolute http(s) URL", c.Access.CertsURL)
		}
	}
	if c.Access.Leeway < 0 || c.Access.Leeway > providers.Duration(time.Minute) {
		bad("access.leeway", "must be 0s..60s, got %s", c.Access.Leeway)
	}
	if c.Posture.MaxDevices < 1 || c.Posture.MaxDevices > 10000 {
		bad("posture.max_devices", "must be 1..10000, got %d", c.Posture.MaxDevices)
	}
	if c.Posture.Deadline <= 0 {
		bad("posture.deadline", "must be > 0")
	}
	if c.Posture.UnmatchedScore < 0 || c.Posture.UnmatchedScore > 100 {
		bad("posture.unmatched_score", "must be 0..100, got %d", c.Posture.UnmatchedScore)
	}
	if len(c.Providers.nodes) == 0 {
		bad("providers", "at least one provider is required")
	}
	names := make(map[string]bool)
	for _, p := range c.Providers.Configs {
		names[p.Base().Name] = true
	}
	for _, n := range c.Posture.S2SIDFrom {
		if !names[n] {
			bad("posture.s2s_id_from", "names unknown provider %q", n)
		}
	}
	switch c.Cache.Backend {
	case "memory":
	case "redis":
		if c.Cache.RedisURL == "" {
			bad("cache.redis_url", "is required with backend: redis")
		}
	default:
		bad("cache.backend", "must be memory or redis, got %q", c.Cache.Backend)
	}
	if c.Cache.TTL <= 0 || c.Cache.StaleTTL < 0 || c.Cache.NegativeTTL < 0 {
		bad("cache", "ttl must be > 0, stale_ttl and negative_ttl >= 0")
	}
	if c.Cache.MaxEntries < 1 {
		bad("cache.max_entries", "must be >= 1")
	}
	if c.Server.ShutdownTimeout <= 0 {
		bad("server.shutdown_timeout", "must be > 0")
	}
	for _, p := range c.Server.TrustedProxies {
		if _, _, err := net.ParseCIDR(p); err != nil && net.ParseIP(p) == nil {
			bad("server.trusted_proxies", "%q is not an IP or CIDR", p)
		}
	}
	if ee := &c.ExternalEvaluation; ee.Enabled {
		if c.Access.InsecureSkipVerify {
			bad("external_evaluation.enabled", "needs the team's Access keys: not allowed with access.insecure_skip_verify")
		}
		if err := ee.Validate(); err != nil {
			errs = append(errs, evaluate.LocateErrors(err, mappingValue(docRoot(root), "external_evaluation"), "external_evaluation."))
		}
		for _, p := range ee.ReferencedProviders() {
			if !names[p] {
				bad("external_evaluation.rules", "provider_scores names unknown provider %q", p)
			}
		}
	}
	return errs
}

func docRoot(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		return n.Content[0]
	}
	return n
}

// lineOf returns "line N: " for a dotted key path, or "" if the key is not
// in the file (a default failed validation).
func lineOf(root *yaml.Node, path string) string {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	line := 0
	for _, k := range strings.Split(path, ".") {
		v := mappingValue(n, k)
		if v == nil {
			break
		}
		line, n = v.Line, v
	}
	if line == 0 {
		return ""
	}
	return fmt.Sprintf("line %d: ", line)
}

func mappingValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// expandEnv replaces ${NAME} in scalar values (never keys) with the
// environment variable's value. An unset variable is an error naming it;
// "$${" is a literal "${". Expanding parsed values rather than the raw
// file means a value cannot inject YAML structure and a "$" in a secret
// is left alone.
func expandEnv(n *yaml.Node, getenv func(string) (string, bool)) error {
	var errs []error
	var walk func(n *yaml.Node, isKey bool)
	walk = func(n *yaml.Node, isKey bool) {
		switch n.Kind {
		case yaml.ScalarNode:
			if isKey || !strings.Contains(n.Value, "${") {
				return
			}
			v, err := expand(n.Value, getenv)
			if err != nil {
				errs = append(errs, fmt.Errorf("line %d: %w", n.Line, err))
				return
			}
			n.Value = v
			if n.Style == 0 {
				n.Tag = "" // let "${PORT}" -> "8080" resolve as an int again
			}
		case yaml.MappingNode:
			for i, c := range n.Content {
				walk(c, i%2 == 0)
			}
		default:
			for _, c := range n.Content {
				walk(c, false)
			}
		}
	}
	walk(n, false)
	return errors.Join(errs...)
}

func expand(s string, getenv func(string) (string, bool)) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		if i > 0 && s[i-1] == '$' { // "$${" escapes
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("unterminated ${ in value")
		}
		name := s[i+2 : i+end]
		if !validEnvName(name) {
			return "", fmt.Errorf("invalid environment variable name %q", name)
		}
		v, ok := getenv(name)
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set", name)
		}
		b.WriteString(v)
		s = s[i+end+1:]
	}
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.yaml.in/yaml/v3"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/internal/conf"
	"github.com/postured/postured/providers"
	"github.com/postured/postured/whatif"
)

// ShadowPolicy is one entry of shadow_policies: the running config with
// some policy knobs changed, scored on every batch and never answered.
type ShadowPolicy struct {
	Name string `yaml:"name"`
	// UnmatchedScore replaces posture.unmatched_score when set.
	UnmatchedScore *int `yaml:"unmatched_score,omitempty"`
	// Providers changes the policy of the named providers.
	Providers map[string]ProviderPolicy `yaml:"providers,omitempty"`
}

// ProviderPolicy is what a shadow policy may change in one provider: how
// its record counts, never how the record is scored (what-if and shadow
// policies score the records the running config fetched).
type ProviderPolicy struct {
	Weight      *float64           `yaml:"weight,omitempty"`
	Required    *bool              `yaml:"required,omitempty"`
	OnError     *providers.OnError `yaml:"on_error,omitempty"`
	MaxLastSeen *conf.Duration     `yaml:"max_last_seen,omitempty"`
}

// maxShadowPolicies bounds shadow_policies: each one re-scores every batch.
const maxShadowPolicies = 5

var shadowNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

func (c *Config) validateShadowPolicies(at locator, names map[string]bool) []error {
	var errs []error
	if len(c.ShadowPolicies) > maxShadowPolicies {
		errs = append(errs, at.errorf("shadow_policies", "at most %d policies (each re-scores every batch), got %d", maxShadowPolicies, len(c.ShadowPolicies)))
	}
	seen := map[string]bool{}
	for i, sp := range c.ShadowPolicies {
		key := fmt.Sprintf("shadow_policies[%d]", i)
		switch {
		case !shadowNameRe.MatchString(sp.Name):
			errs = append(errs, at.errorf(key+".name", "must be 1-63 of a-z, 0-9, _ and -, got %q", sp.Name))
		case seen[sp.Name]:
			errs = append(errs, at.errorf(key+".name", "%q is used twice", sp.Name))
		}
		seen[sp.Name] = true
		if u := sp.UnmatchedScore; u != nil && (*u < 0 || *u > 100) {
			errs = append(errs, at.errorf(key+".unmatched_score", "must be 0..100, got %d", *u))
		}
		for _, name := range slices.Sorted(maps.Keys(sp.Providers)) {
			pp, pkey := sp.Providers[name], key+".providers."+name
			if !names[name] {
				errs = append(errs, at.errorf(pkey, "names no provider of this config"))
				continue
			}
			if w := pp.Weight; w != nil && (!(*w > 0) || math.IsInf(*w, 0)) {
				errs = append(errs, at.errorf(pkey+".weight", "must be > 0, got %v", *w))
			}
			if o := pp.OnError; o != nil && *o != providers.OnErrorStale && *o != providers.OnErrorExclude && *o != providers.OnErrorZero {
				errs = append(errs, at.errorf(pkey+".on_error", "must be stale, exclude or zero, got %q", *o))
			}
			if m := pp.MaxLastSeen; m != nil && *m < 0 {
				errs = append(errs, at.errorf(pkey+".max_last_seen", "must not be negative"))
			}
		}
	}
	return errs
}

// frozenEngine builds an engine for c whose providers answer only from
// what this app holds (see whatif.Frozen), sharing its cache store. A
// provider of c this app does not run has no data (whatif.Absent). Every
// stored entry counts as fresh: what-if scores what postured knows now,
// however old, rather than failing over to on_error for an entry a live
// batch would have refreshed. The warnings say where the answer is
// approximate.
func (a *App) frozenEngine(c *Config) (*aggregate.Engine, []string, error) {
	live := make(map[string]aggregate.Source, len(a.sources))
	for _, s := range a.sources {
		live[s.Name] = s
	}
	liveCfg := make(map[string]providers.Config, len(a.cfg.Providers.Configs))
	for _, pc := range a.cfg.Providers.Configs {
		liveCfg[pc.Base().Name] = pc
	}
	var sources []aggregate.Source
	var warnings []string
	for _, pc := range c.Providers.Configs {
		base := pc.Base()
		src := sourceFor(base, nil, nil)
		l, ok := live[base.Name]
		switch {
		case !ok || liveCfg[base.Name].Base().Type != base.Type:
			src = whatif.Absent(src)
			warnings = append(warnings, fmt.Sprintf("provider %s: not in the running config; no data, so on_error: %s applies to every device", base.Name, base.OnError))
		default:
			src.Provider, src.Miss = l.Provider, l.Miss
			src = whatif.Frozen(src)
			if !sameScoring(pc, liveCfg[base.Name]) {
				warnings = append(warnings, fmt.Sprintf("provider %s: scoring settings differ from the running config; records are scored as the running config scored them", base.Name))
			}
		}
		sources = append(sources, src)
	}
	fresh := time.Duration(a.cfg.Cache.TTL + a.cfg.Cache.StaleTTL)
	e, err := aggregate.New(aggregate.Config{
		Sources:        sources,
		Deadline:       time.Duration(c.Posture.Deadline),
		UnmatchedScore: c.Posture.UnmatchedScore,
		S2SIDFrom:      c.Posture.S2SIDFrom,
		Store:          a.store,
		CacheTTL:       fresh,
		NegativeTTL:    fresh,
		Logger:         a.logger.With("component", "whatif"),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("whatif: %w", err)
	}
	return e, warnings, nil
}

// sourceFor is the engine source for one provider's policy; Build and
// what-if both use it, so they cannot read the policy differently.
func sourceFor(base *providers.Common, p, miss aggregate.Provider) aggregate.Source {
	return aggregate.Source{
		Name: base.Name, Weight: base.Weight, Required: base.Required, OnError: base.OnError,
		MaxLastSeen: time.Duration(base.MaxLastSeen), Timeout: time.Duration(base.Timeout), Provider: p,
		Miss: miss, RequireEmailFor: base.EmailCheckedKinds(),
	}
}

// sameScoring reports whether two configs of one provider differ only in
// the common keys (policy, mode), which what-if applies; anything else
// (credentials redacted) changes how the vendor's records are scored.
func sameScoring(a, b providers.Config) bool {
	strip := func(pc providers.Config) map[string]any {
		out, err := yaml.Marshal(pc)
		var m map[string]any
		if err != nil || yaml.Unmarshal(out, &m) != nil {
			return nil
		}
		for _, k := range commonKeys {
			delete(m, k)
		}
		return m
	}
	if po, ok := a.(policyOverride); ok {
		a = po.Config // a shadow policy: the same scoring by construction
	}
	sa, sb := strip(a), strip(b)
	return sa != nil && reflect.DeepEqual(sa, sb)
}

// commonKeys are providers.Common's YAML keys.
var commonKeys = func() []string {
	t := reflect.TypeFor[providers.Common]()
	keys := make([]string, 0, t.NumField())
	for f := range t.Fields() {
		keys = append(keys, strings.Split(f.Tag.Get("yaml"), ",")[0])
	}
	return keys
}()

// shadowEngine is the running config with one shadow policy applied.
func (a *App) shadowEngine(sp ShadowPolicy) (*aggregate.Engine, error) {
	c := *a.cfg
	if sp.UnmatchedScore != nil {
		c.Posture.UnmatchedScore = *sp.UnmatchedScore
	}
	c.Providers.Configs = nil
	for _, pc := range a.cfg.Providers.Configs {
		pp, ok := sp.Providers[pc.Base().Name]
		if !ok {
			c.Providers.Configs = append(c.Providers.Configs, pc)
			continue
		}
		changed := policyOverride{Config: pc, common: *pc.Base()}
		if pp.Weight != nil {
			changed.common.Weight = *pp.Weight
		}
		if pp.Required != nil {
			changed.common.Required = *pp.Required
		}
		if pp.OnError != nil {
			changed.common.OnError = *pp.OnError
		}
		if pp.MaxLastSeen != nil {
			changed.common.MaxLastSeen = *pp.MaxLastSeen
		}
		c.Providers.Configs = append(c.Providers.Configs, changed)
	}
	e, _, err := a.frozenEngine(&c)
	return e, err
}

// policyOverride is a provider config with another common section, so a
// shadow policy never edits the running config.
type policyOverride struct {
	providers.Config
	common providers.Common
}

func (p policyOverride) Base() *providers.Common { return &p.common }

// WhatIfOptions narrow a what-if run.
type WhatIfOptions struct {
	// Thresholds are the scores to report crossings of.
	Thresholds []int
	// Window: devices seen by a batch this long ago or since.
	Window time.Duration
}

// WhatIf scores the devices batches carried in the last opts.Window under
// the running config and under proposed, both from the cache and indexes
// only (no vendor calls), and reports who crosses each threshold.
func (a *App) WhatIf(ctx context.Context, proposed *Config, opts WhatIfOptions) (whatif.Report, error) {
	if a.cfg.AdminListen == "" {
		return whatif.Report{}, fmt.Errorf("whatif: this postured does not remember devices (set admin_listen)")
	}
	current, _, err := a.frozenEngine(a.cfg)
	if err != nil {
		return whatif.Report{}, err
	}
	next, warnings, err := a.frozenEngine(proposed)
	if err != nil {
		return whatif.Report{}, err
	}
	devices := a.memory.Since(time.Now().Add(-opts.Window))
	var cur, prop []aggregate.Result
	for chunk := range slices.Chunk(devices, a.cfg.Posture.MaxDevices) {
		if err := ctx.Err(); err != nil {
			return whatif.Report{}, fmt.Errorf("whatif: %w", err)
		}
		r1, _ := current.Evaluate(ctx, chunk)
		r2, _ := next.Evaluate(ctx, chunk)
		cur, prop = append(cur, r1...), append(prop, r2...)
	}
	report, err := whatif.Compare(cur, prop, opts.Thresholds)
	if err != nil {
		return whatif.Report{}, err
	}
	report.Warnings = append(report.Warnings, warnings...)
	return report, nil
}

// maxProposedBytes bounds the proposed config a what-if request carries.
const maxProposedBytes = 1 << 20

// whatIfRoute serves POST /v1/whatif on the admin listener: the body is
// the proposed config (YAML, ${VAR}s expanded from this process's
// environment), ?thresholds=50,70,80 and ?window=1h narrow it.
func (a *App) whatIfRoute(r gin.IRouter) {
	r.POST("/v1/whatif", func(c *gin.Context) {
		opts, err := parseWhatIfQuery(c.Query("thresholds"), c.Query("window"))
		if err != nil {
			c.AbortWithStatusJSON(http.StatusBadRequest, gin.H{"success": false, "error": err.Error()})
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxProposedBytes))
		if err != nil {
			c.AbortWithStatusJSON(http.StatusRequestEntityTooLarge, gin.H{"success": false, "error": fmt.Sprintf("proposed config larger than %d bytes", maxProposedBytes)})
			return
		}
		proposed, err := parseProposed(body, os.LookupEnv)
		if err != nil {
			c.AbortWithStatusJSON(http.StatusBadRequest, gin.H{"success": false, "error": "proposed config: " + err.Error()})
			return
		}
		report, err := a.WhatIf(c.Request.Context(), proposed, opts)
		if err != nil {
			c.AbortWithStatusJSON(http.StatusInternalServerError, gin.H{"success": false, "error": err.Error()})
			return
		}
		c.JSON(http.StatusOK, report)
	})
}

// parseProposed parses a proposed config with ${VAR}s expanded from this
// process's environment, as the running config was. Validation errors quote
// values ("got %q"), so a proposal putting ${CF_API_TOKEN} where it cannot
// be valid would read the secret back: every expanded value is put back as
// its ${NAME} in the error.
func parseProposed(data []byte, getenv func(string) (string, bool)) (*Config, error) {
	expanded := map[string]string{}
	cfg, err := Parse(data, Registry(), func(k string) (string, bool) {
		v, ok := getenv(k)
		if ok && v != "" {
			expanded[v] = "${" + k + "}"
		}
		return v, ok
	})
	if err == nil {
		return cfg, nil
	}
	msg := err.Error()
	// Longest first, so a value containing another is replaced whole.
	values := slices.SortedFunc(maps.Keys(expanded), func(a, b string) int { return len(b) - len(a) })
	for _, v := range values {
		msg = strings.ReplaceAll(msg, v, expanded[v])
	}
	return nil, errors.New(msg)
}

// DefaultThresholds and DefaultWindow are what a what-if asks when told
// nothing.
var DefaultThresholds = []int{50, 70, 80}

const DefaultWindow = time.Hour

func parseWhatIfQuery(thresholds, window string) (WhatIfOptions, error) {
	opts := WhatIfOptions{Thresholds: DefaultThresholds, Window: DefaultWindow}
	if thresholds != "" {
		opts.Thresholds = nil
		for f := range strings.SplitSeq(thresholds, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 || n > 100 {
				return opts, fmt.Errorf("thresholds: %q is not a score 1..100", f)
			}
			if !slices.Contains(opts.Thresholds, n) {
				opts.Thresholds = append(opts.Thresholds, n)
			}
		}
		if len(opts.Thresholds) > 10 {
			return opts, fmt.Errorf("thresholds: at most 10, got %d", len(opts.Thresholds))
		}
		slices.Sort(opts.Thresholds)
	}
	if window != "" {
		d, err := time.ParseDuration(window)
		if err != nil || d <= 0 {
			return opts, fmt.Errorf("window: %q is not a positive duration", window)
		}
		opts.Window = d
	}
	return opts, nil
}

// buildWhatIf sets up the shadow policies. What-if's devices are the
// posture memory's (buildMemory).
func (a *App) buildWhatIf() error {
	if len(a.cfg.ShadowPolicies) == 0 {
		return nil
	}
	var policies []whatif.ShadowPolicy
	for _, sp := range a.cfg.ShadowPolicies {
		e, err := a.shadowEngine(sp)
		if err != nil {
			return fmt.Errorf("shadow_policies: %s: %w", sp.Name, err)
		}
		policies = append(policies, whatif.ShadowPolicy{Name: sp.Name, Engine: e})
	}
	sh, err := whatif.NewShadow(whatif.ShadowConfig{Policies: policies, Registry: a.registry, Logger: a.logger.With("component", "shadow")})
	if err != nil {
		return err
	}
	a.observers = append(a.observers, sh)
	a.runners = append(a.runners, sh)
	return nil
}

// adminRoutes are the admin listener's extra routes: what-if, which reads
// every recent device and so is no public endpoint.
func (a *App) adminRoutes() func(gin.IRouter) {
	if a.cfg.AdminListen == "" {
		return nil
	}
	return a.whatIfRoute
}

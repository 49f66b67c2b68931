package providers

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/postured/postured/internal/conf"
)

// OnError is what a provider that failed contributes to a device's score.
type OnError string

const (
	// OnErrorStale uses cached records up to cache.stale_ttl old, else excludes.
	OnErrorStale OnError = "stale"
	// OnErrorExclude leaves the provider out of the weighted mean.
	OnErrorExclude OnError = "exclude"
	// OnErrorZero counts the provider as scoring 0 with its full weight.
	OnErrorZero OnError = "zero"
)

// Mode is how a provider finds records.
type Mode string

const (
	// ModeQuery looks the batch's identifiers up in the vendor API, cached.
	ModeQuery Mode = "query"
	// ModeSync crawls the whole vendor inventory every sync_interval and
	// answers lookups from that index, with no vendor call per request.
	ModeSync Mode = "sync"
)

// Common is the part of every provider's configuration the aggregator reads.
// Vendor configs embed it with `yaml:",inline"`.
type Common struct {
	Name         string        `yaml:"name"`
	Type         string        `yaml:"type"`
	Weight       float64       `yaml:"weight"`
	Required     bool          `yaml:"required,omitempty"`
	OnError      OnError       `yaml:"on_error,omitempty"`
	Mode         Mode          `yaml:"mode,omitempty"`
	SyncInterval conf.Duration `yaml:"sync_interval,omitempty"`
	MaxLastSeen  conf.Duration `yaml:"max_last_seen,omitempty"`
	// Timeout bounds one lookup (all its vendor calls); zero means the batch
	// deadline.
	Timeout conf.Duration `yaml:"timeout,omitempty"`
	// OnMiss, in sync mode, is what a device the last crawl did not see
	// gets: "none" (default: unmatched until the next crawl) or "query"
	// (looked up in the vendor on demand, cached, negative-cached).
	OnMiss OnMiss `yaml:"on_miss,omitempty"`
	// RequireEmailMatchFor lists the weak key kinds ("mac", "hostname")
	// whose match counts only when the record carries the device's email.
	RequireEmailMatchFor []string `yaml:"require_email_match_for,omitempty"`
}

// EmailCheckedKinds is RequireEmailMatchFor as kinds, skipping unknown
// names (Validate reports them).
func (c *Common) EmailCheckedKinds() []Kind {
	var ks []Kind
	for _, n := range c.RequireEmailMatchFor {
		switch n {
		case "mac":
			ks = append(ks, KindMAC)
		case "hostname":
			ks = append(ks, KindHostname)
		}
	}
	return ks
}

// OnMiss is what a sync-mode provider does for a device not in its index.
type OnMiss string

const (
	// OnMissNone leaves the device unmatched until the next crawl.
	OnMissNone OnMiss = "none"
	// OnMissQuery asks the vendor's query path, through the cache.
	OnMissQuery OnMiss = "query"
)

// Base returns c itself; it lets *Common satisfy most of Config for
// embedding types.
func (c *Common) Base() *Common { return c }

// Defaults fills the zero values with the documented defaults.
func (c *Common) Defaults() {
	if c.OnError == "" {
		c.OnError = OnErrorStale
	}
	if c.OnMiss == "" {
		c.OnMiss = OnMissNone
	}
	if c.Mode == "" {
		c.Mode = ModeQuery
	}
	if c.Mode == ModeSync && c.SyncInterval == 0 {
		c.SyncInterval = conf.Duration(10 * time.Minute)
	}
}

// Validate checks the fields every provider shares.
func (c *Common) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("name is required"))
	}
	if !(c.Weight > 0) || math.IsInf(c.Weight, 0) {
		errs = append(errs, fmt.Errorf("weight must be > 0, got %v", c.Weight))
	}
	switch c.OnError {
	case OnErrorStale, OnErrorExclude, OnErrorZero:
	default:
		errs = append(errs, fmt.Errorf("on_error must be stale, exclude or zero, got %q", c.OnError))
	}
	switch c.Mode {
	case ModeQuery, ModeSync:
	default:
		errs = append(errs, fmt.Errorf("mode must be query or sync, got %q", c.Mode))
	}
	switch {
	case c.OnMiss != "" && c.OnMiss != OnMissNone && c.OnMiss != OnMissQuery:
		errs = append(errs, fmt.Errorf("on_miss must be none or query, got %q", c.OnMiss))
	case c.OnMiss == OnMissQuery && c.Mode != ModeSync:
		errs = append(errs, errors.New("on_miss: query needs mode: sync (query mode always asks the vendor)"))
	}
	for i, n := range c.RequireEmailMatchFor {
		if n != "mac" && n != "hostname" {
			errs = append(errs, fmt.Errorf("require_email_match_for[%d] must be mac or hostname, got %q", i, n))
		}
	}
	if c.SyncInterval < 0 || c.MaxLastSeen < 0 || c.Timeout < 0 {
		errs = append(errs, errors.New("durations must not be negative"))
	}
	if c.Mode == ModeSync && c.SyncInterval < conf.Duration(time.Second) {
		errs = append(errs, fmt.Errorf("sync_interval must be at least 1s, got %s", c.SyncInterval))
	}
	return errors.Join(errs...)
}

// Config is one provider's decoded configuration section.
type Config interface {
	// Base returns the embedded common section.
	Base() *Common
	// Defaults fills unset fields (common and vendor) with their defaults.
	Defaults()
	// Validate reports every problem with the section, defaults applied.
	Validate() error
}

// Deps is what the process hands every provider it opens.
type Deps struct {
	// Logger is already scoped to the provider (name, type).
	Logger *slog.Logger
	// ObserveResponse, if set, is told the HTTP status of every answer the
	// vendor's API gives the provider (see ClientOptions.ObserveResponse).
	ObserveResponse func(status int)
}

// Factory opens one provider type: NewConfig returns an empty config to
// decode the section into, Open builds the provider from it.
type Factory[P any] struct {
	NewConfig func() Config
	Open      func(Config, Deps) (P, error)
}

// Entry builds a Factory from a vendor constructor. The type parameters keep
// the wiring compile-checked: open must take the vendor's *Config and return
// the consumer's interface P.
func Entry[P any, C any, PC interface {
	*C
	Config
}](open func(PC, Deps) (P, error)) Factory[P] {
	return Factory[P]{
		NewConfig: func() Config { return PC(new(C)) },
		Open:      func(c Config, d Deps) (P, error) { return open(c.(PC), d) },
	}
}

// Registry maps a provider type name (the `type:` key) to its factory. There
// is one, written out explicitly where the process is wired together.
type Registry[P any] map[string]Factory[P]

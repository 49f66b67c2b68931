// Package policy decides External Evaluation logins: the rules of the
// external_evaluation section, whose conditions read the Access identity,
// the device posture postured computed and the time of day, evaluated in
// order with a trace of why each condition held or failed.
package policy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/postured/postured/internal/conf"
)

// defaultPostureDeadline bounds a posture lookup when the config does not.
const defaultPostureDeadline = 2 * time.Second

// Config is the rules part of the external_evaluation section. It is
// decoded strictly (plain structs, no UnmarshalYAML), then Defaults and
// Validate are called.
type Config struct {
	// PostureDeadline bounds the device posture lookup (a live
	// recomputation when the remembered score is stale). Default: 2s.
	PostureDeadline conf.Duration `yaml:"posture_deadline"`
	// Rules are evaluated in order; the first whose conditions all hold
	// decides; no match denies.
	Rules []Rule `yaml:"rules"`
}

// Defaults fills unset fields with their defaults.
func (c *Config) Defaults() {
	if c.PostureDeadline == 0 {
		c.PostureDeadline = conf.Duration(defaultPostureDeadline)
	}
	for i := range c.Rules {
		if t := c.Rules[i].When.Time; t != nil && t.TimeZone == "" {
			t.TimeZone = "UTC"
		}
	}
}

// Validate reports every problem with the rules, defaults applied, joined;
// each is a *FieldError naming the key path and rule index.
func (c *Config) Validate() error {
	var errs errorList
	if c.PostureDeadline <= 0 {
		errs.add("posture_deadline", "must be > 0")
	}
	_, ruleErrs := compileRules(c.Rules)
	errs = append(errs, ruleErrs...)
	return errors.Join(errs...)
}

// Warnings reports rule orders that are valid but probably not what was
// meant, joined; each is a *FieldError. A deny rule on score or
// provider_scores does not fire for a device postured has no posture for
// (no batch carried it yet, or its providers did not count): posture
// conditions are then false. A later allow rule with no posture condition
// of its own then lets that device in, though the deny was written to
// keep unhealthy devices out.
func (c *Config) Warnings() error {
	var warns errorList
	for i, deny := range c.Rules {
		if deny.Action != ActionDeny || !deny.When.onPosture() {
			continue
		}
		for j := i + 1; j < len(c.Rules); j++ {
			allow := c.Rules[j]
			if allow.Action != actionAllow || allow.When.onPosture() {
				continue
			}
			key := "score"
			if deny.When.Score == nil {
				key = "provider_scores"
			}
			warns.add(fmt.Sprintf("rules[%d].when.%s", i, key),
				"deny rule %q does not fire when the device has no posture (never in a batch, or its providers did not count), "+
					"and the later allow rule %q (rules[%d]) has no posture condition, so it can allow such a device; "+
					"require a minimum score in the allow rules instead", deny.Name, allow.Name, j)
			break
		}
	}
	return errors.Join(warns...)
}

// onPosture reports whether any condition reads the device's posture.
func (w When) onPosture() bool { return w.Score != nil || w.ProviderScores != nil }

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

// FieldError is one problem with a field of the external_evaluation
// section. Path is relative to the section, e.g. "rules[2].when.score".
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

// PostureSource gives the posture postured computed for a Cloudflare
// device_id, remembered from the last batch or recomputed live. ok is false
// when postured knows nothing about the device.
type PostureSource interface {
	DevicePosture(ctx context.Context, deviceID string) (Posture, bool)
}

// Posture is one device's score as the posture endpoint computed it.
type Posture struct {
	// Score is the final 0-100 score.
	Score int
	// Providers holds the score of every provider that counted towards
	// Score, by provider name.
	Providers map[string]int
	// At is when the score was computed.
	At time.Time
}

// Policy is a compiled, validated rule list.
type Policy struct {
	rules    []compiledRule
	source   PostureSource
	deadline time.Duration
}

// New compiles cfg's rules. source may be nil: posture conditions are then
// false.
func New(cfg Config, source PostureSource) (*Policy, error) {
	compiled, errs := compileRules(cfg.Rules)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	deadline := time.Duration(cfg.PostureDeadline)
	if deadline <= 0 {
		deadline = defaultPostureDeadline
	}
	return &Policy{rules: compiled, source: source, deadline: deadline}, nil
}

// Decide evaluates the rules in order and stops at the first match; no
// match is a deny.
func (p *Policy) Decide(ctx context.Context, id Identity, now time.Time) Decision {
	return p.run(ctx, id, now, false)
}

// explain evaluates every rule and every condition, so the trace says why
// each held or failed; the decision is the same as Decide's.
func (p *Policy) explain(ctx context.Context, id Identity, now time.Time) Decision {
	return p.run(ctx, id, now, true)
}

func (p *Policy) run(ctx context.Context, id Identity, now time.Time, full bool) Decision {
	ec := &evalContext{ctx: ctx, id: id, now: now, source: p.source, deadline: p.deadline}
	d := Decision{Email: id.email(), DeviceID: id.deviceID(), Rules: make([]RuleTrace, 0, len(p.rules))}
	decided := false
	for _, r := range p.rules {
		if decided && !full {
			break
		}
		tr := RuleTrace{Name: r.name, Action: r.action, Matched: true}
		for _, c := range r.conds {
			ct := c.eval(ec)
			tr.Conditions = append(tr.Conditions, ct)
			if !ct.Held {
				tr.Matched = false
				if !full {
					break
				}
			}
		}
		if tr.Matched && !decided {
			decided, tr.Decides = true, true
			d.Allow, d.Rule = r.action == actionAllow, r.name
		}
		d.Rules = append(d.Rules, tr)
	}
	if ec.postOK {
		s := ec.posture.Score
		d.Score = &s
	}
	return d
}

// Explain decides for an identity (the JSON of /cdn-cgi/access/get-identity,
// or a whole token payload) with cfg's rules at now, evaluating every rule
// so the answer says why each held or failed. It backs `postured explain
// --identity FILE.json`. source may be nil.
func Explain(ctx context.Context, cfg Config, source PostureSource, now time.Time, identityJSON []byte) (Decision, error) {
	p, err := New(cfg, source)
	if err != nil {
		return Decision{}, err
	}
	id, err := parseIdentity(identityJSON)
	if err != nil {
		return Decision{}, err
	}
	return p.explain(ctx, id, now), nil
}

// condition is one compiled condition of a rule.
type condition interface {
	eval(ec *evalContext) ConditionTrace
}

// evalContext is one evaluation: the identity, the clock, and the device
// posture, looked up at most once and only if a condition needs it.
type evalContext struct {
	ctx      context.Context
	id       Identity
	now      time.Time
	source   PostureSource
	deadline time.Duration

	looked  bool
	posture Posture
	postOK  bool
	postWhy string
}

func (ec *evalContext) devicePosture() (Posture, string, bool) {
	if ec.looked {
		return ec.posture, ec.postWhy, ec.postOK
	}
	ec.looked = true
	dev := ec.id.deviceID()
	switch {
	case dev == "":
		ec.postWhy = "the identity has no device_id (not logged in through WARP?)"
	case ec.source == nil:
		ec.postWhy = "no device posture source is configured"
	default:
		ctx, cancel := context.WithTimeout(ec.ctx, ec.deadline)
		p, ok := ec.source.DevicePosture(ctx, dev)
		timedOut := ctx.Err() != nil
		cancel()
		switch {
		case ok:
			ec.posture, ec.postOK = p, true
		case timedOut:
			ec.postWhy = fmt.Sprintf("posture lookup for device %q did not finish within %s", dev, ec.deadline)
		default:
			ec.postWhy = fmt.Sprintf("postured has no posture data for device %q", dev)
		}
	}
	return ec.posture, ec.postWhy, ec.postOK
}

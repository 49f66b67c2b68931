package evaluate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Decision is the outcome of the rules for one identity, with the reasons.
type Decision struct {
	// Allow is the answer: success in the signed response.
	Allow bool `json:"allow"`
	// Rule is the rule that decided; "" when none matched (default deny).
	Rule string `json:"rule,omitempty"`
	// Email and DeviceID are the identity's, "" if absent.
	Email    string `json:"email,omitempty"`
	DeviceID string `json:"device_id,omitempty"`
	// Score is the device's posture score, when a rule looked it up and
	// postured had one.
	Score *int `json:"score,omitempty"`
	// Rules traces the rules in order. Serving a login stops at the deciding
	// rule (and at a rule's first failed condition); Explain evaluates every
	// rule and condition.
	Rules []RuleTrace `json:"rules"`
}

// RuleTrace says why one rule matched or not.
type RuleTrace struct {
	Name   string `json:"name"`
	Action string `json:"action"`
	// Matched: every condition held.
	Matched bool `json:"matched"`
	// Decides: this is the first rule that matched.
	Decides    bool             `json:"decides"`
	Conditions []ConditionTrace `json:"conditions"`
}

// ConditionTrace says why one condition held or not.
type ConditionTrace struct {
	// Condition is the key under when: (score, provider_scores.crowdstrike).
	Condition string `json:"condition"`
	Held      bool   `json:"held"`
	// Unknown: the identity or posture lacked the data; the condition is
	// false.
	Unknown bool   `json:"unknown,omitempty"`
	Reason  string `json:"reason"`
}

// Result is "allow" or "deny".
func (d Decision) Result() string {
	if d.Allow {
		return actionAllow
	}
	return actionDeny
}

// RuleLabel is the deciding rule's name, or "default" for the default deny.
func (d Decision) RuleLabel() string {
	if d.Rule == "" {
		return defaultRule
	}
	return d.Rule
}

func held(key, format string, args ...any) ConditionTrace {
	return ConditionTrace{Condition: key, Held: true, Reason: fmt.Sprintf(format, args...)}
}

func failed(key, format string, args ...any) ConditionTrace {
	return ConditionTrace{Condition: key, Reason: fmt.Sprintf(format, args...)}
}

func unknown(key, why string) ConditionTrace {
	return ConditionTrace{Condition: key, Unknown: true, Reason: why + " (unknown: condition is false)"}
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
	dev := ec.id.DeviceID()
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

// Policy is a compiled, validated rule list.
type Policy struct {
	rules    []compiledRule
	source   PostureSource
	deadline time.Duration
}

// NewPolicy compiles rules. source may be nil: posture conditions are then
// false. deadline bounds the posture lookup (default 2s).
func NewPolicy(rules []Rule, source PostureSource, deadline time.Duration) (*Policy, error) {
	compiled, errs := compileRules(rules)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if deadline <= 0 {
		deadline = DefaultPostureDeadline
	}
	return &Policy{rules: compiled, source: source, deadline: deadline}, nil
}

// Decide evaluates the rules in order and stops at the first match; no
// match is a deny.
func (p *Policy) Decide(ctx context.Context, id Identity, now time.Time) Decision {
	return p.run(ctx, id, now, false)
}

// Explain evaluates every rule and every condition, so the trace says why
// each held or failed; the decision is the same as Decide's.
func (p *Policy) Explain(ctx context.Context, id Identity, now time.Time) Decision {
	return p.run(ctx, id, now, true)
}

func (p *Policy) run(ctx context.Context, id Identity, now time.Time, full bool) Decision {
	ec := &evalContext{ctx: ctx, id: id, now: now, source: p.source, deadline: p.deadline}
	d := Decision{Email: id.Email(), DeviceID: id.DeviceID(), Rules: make([]RuleTrace, 0, len(p.rules))}
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
	p, err := NewPolicy(cfg.Rules, source, time.Duration(cfg.PostureDeadline))
	if err != nil {
		return Decision{}, err
	}
	id, err := ParseIdentity(identityJSON)
	if err != nil {
		return Decision{}, err
	}
	return p.Explain(ctx, id, now), nil
}

// WriteText prints the decision for a terminal.
func (d Decision) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "decision: %s", strings.ToUpper(d.Result()))
	if d.Rule != "" {
		fmt.Fprintf(&b, " by rule %q\n", d.Rule)
	} else {
		b.WriteString(" (no rule matched: default deny)\n")
	}
	fmt.Fprintf(&b, "email:    %s\ndevice:   %s\n", dashIfEmpty(d.Email), dashIfEmpty(d.DeviceID))
	if d.Score != nil {
		fmt.Fprintf(&b, "score:    %d\n", *d.Score)
	}
	for i, r := range d.Rules {
		verdict := "no match"
		switch {
		case r.Decides:
			verdict = "MATCH: decides"
		case r.Matched:
			verdict = "match, but an earlier rule decided"
		}
		fmt.Fprintf(&b, "\n%d. %s (%s): %s\n", i+1, r.Name, r.Action, verdict)
		for _, c := range r.Conditions {
			mark := "held  "
			if !c.Held {
				mark = "FAILED"
			}
			fmt.Fprintf(&b, "   %s %s: %s\n", mark, c.Condition, c.Reason)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

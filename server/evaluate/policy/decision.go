package policy

import (
	"fmt"
	"io"
	"strings"
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
	return ActionDeny
}

// RuleLabel is the deciding rule's name, or "default" for the default deny.
func (d Decision) RuleLabel() string {
	if d.Rule == "" {
		return DefaultRule
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

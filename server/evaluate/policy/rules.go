package policy

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Rule actions.
const (
	actionAllow = "allow"
	// ActionDeny is the action of deny rules, the only ones that may revoke.
	ActionDeny = "deny"
)

// Rule names no configured rule may take.
const (
	// DefaultRule names the default deny in logs, metrics and revoke.rules.
	DefaultRule = "default"
	// NoRule labels requests refused before any rule ran (metrics).
	NoRule = "none"
)

// Rule is one entry of external_evaluation.rules. The first rule whose
// conditions all hold decides; when none does, the login is denied.
type Rule struct {
	// Name identifies the rule in logs, metrics and explanations; unique.
	Name string `yaml:"name"`
	// Description is free text for humans.
	Description string `yaml:"description,omitempty"`
	// Action is allow or deny.
	Action string `yaml:"action"`
	// When holds the conditions; all of them must hold (AND). At least one
	// is required.
	When When `yaml:"when"`
}

// When is a rule's conditions. A condition over an identity field the token
// does not carry (or carries with an odd type) is false ("unknown"),
// whatever it asks: put positive requirements in allow rules rather than
// relying on a deny rule to catch missing data.
type When struct {
	// Email matches identity.email, case-insensitively: in (exact
	// addresses), not_in, suffix (must start with "@" or ".").
	Email *EmailMatch `yaml:"email,omitempty"`
	// EmailDomain matches the part of identity.email after the last "@",
	// case-insensitively and exactly (no subdomains).
	EmailDomain *StringMatch `yaml:"email_domain,omitempty"`
	// Groups matches identity.groups (strings, or objects by name else id),
	// case-sensitively. Absent groups: the condition is false.
	Groups *GroupMatch `yaml:"groups,omitempty"`
	// IdPType matches identity.idp.type (okta, azureAD, saml, onetimepin,
	// ...), case-insensitively.
	IdPType *StringMatch `yaml:"idp_type,omitempty"`
	// Country matches identity.geo.country (ISO 3166 alpha-2), e.g.
	// {in: [KP, IR]}.
	Country *StringMatch `yaml:"country,omitempty"`
	// IsWarp requires identity.is_warp to equal this.
	IsWarp *bool `yaml:"is_warp,omitempty"`
	// DeviceID requires identity.device_id to be present (or absent).
	DeviceID *DeviceIDMatch `yaml:"device_id,omitempty"`
	// Score bounds the posture score postured computed for
	// identity.device_id. No device_id or no posture data: false.
	Score *ScoreRange `yaml:"score,omitempty"`
	// ProviderScores bounds single providers' scores for that device, by
	// provider name. A provider that did not count: false.
	ProviderScores map[string]ScoreRange `yaml:"provider_scores,omitempty"`
	// Time restricts the rule to a weekly time window.
	Time *TimeWindow `yaml:"time,omitempty"`
}

// StringMatch is a set condition; every list given must agree.
type StringMatch struct {
	In    []string `yaml:"in,omitempty"`
	NotIn []string `yaml:"not_in,omitempty"`
}

// EmailMatch matches an address; every list given must agree.
type EmailMatch struct {
	In     []string `yaml:"in,omitempty"`
	NotIn  []string `yaml:"not_in,omitempty"`
	Suffix []string `yaml:"suffix,omitempty"`
}

// GroupMatch matches group membership; every list given must agree.
type GroupMatch struct {
	// Any: member of at least one.
	Any []string `yaml:"any,omitempty"`
	// All: member of every one.
	All []string `yaml:"all,omitempty"`
	// None: member of none.
	None []string `yaml:"none,omitempty"`
}

// DeviceIDMatch asks whether the login came with a device_id (WARP).
type DeviceIDMatch struct {
	Present *bool `yaml:"present,omitempty"`
}

// ScoreRange bounds a 0-100 score, both ends inclusive.
type ScoreRange struct {
	Min *int `yaml:"min,omitempty"`
	Max *int `yaml:"max,omitempty"`
}

// TimeWindow is a weekly window. to before from is an overnight window
// (22:00-06:00), which belongs to the day it starts on.
type TimeWindow struct {
	// Days: mon..sun (or full names), ranges like mon-fri. Empty: every day.
	Days []string `yaml:"days,omitempty"`
	// From and To are "HH:MM" wall-clock times in TimeZone, from inclusive,
	// to exclusive ("24:00" is the end of the day). Omit both for the whole
	// day.
	From string `yaml:"from,omitempty"`
	To   string `yaml:"to,omitempty"`
	// TimeZone is an IANA name (Europe/Berlin). Default: UTC.
	TimeZone string `yaml:"time_zone,omitempty"`
}

// ruleNameRe keeps rule names readable in logs and safe as metric labels.
var ruleNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// compiledRule is a validated rule, ready to evaluate.
type compiledRule struct {
	name, action string
	conds        []condition
}

// compileRules validates rules and builds their conditions.
func compileRules(rules []Rule) ([]compiledRule, errorList) {
	var errs errorList
	out := make([]compiledRule, 0, len(rules))
	seen := map[string]int{}
	for i, r := range rules {
		path := fmt.Sprintf("rules[%d]", i)
		switch {
		case r.Name == "":
			errs.add(path+".name", "is required")
		case r.Name == DefaultRule || r.Name == NoRule:
			errs.add(path+".name", "%q is reserved", r.Name)
		case !ruleNameRe.MatchString(r.Name):
			errs.add(path+".name", "%q must be 1-64 letters, digits, '.', '_' or '-'", r.Name)
		default:
			if prev, dup := seen[r.Name]; dup {
				errs.add(path+".name", "%q is already used by rules[%d]", r.Name, prev)
			}
			seen[r.Name] = i
		}
		switch r.Action {
		case actionAllow, ActionDeny:
		case "":
			errs.add(path+".action", "is required: allow or deny")
		default:
			errs.add(path+".action", "must be allow or deny, got %q", r.Action)
		}
		conds := compileWhen(r.When, path+".when", &errs)
		if len(conds) == 0 && !r.When.hasAny() {
			errs.add(path+".when", "at least one condition is required (a rule without conditions would match everyone)")
		}
		out = append(out, compiledRule{name: r.Name, action: r.Action, conds: conds})
	}
	return out, errs
}

func (w When) hasAny() bool {
	return w.Email != nil || w.EmailDomain != nil || w.Groups != nil || w.IdPType != nil || w.Country != nil ||
		w.IsWarp != nil || w.DeviceID != nil || w.Score != nil || w.ProviderScores != nil || w.Time != nil
}

// compileWhen builds the conditions in a fixed order: identity first, then
// posture (which may cost a lookup), then time.
func compileWhen(w When, path string, errs *errorList) []condition {
	var out []condition
	add := func(c condition, ok bool) {
		if ok {
			out = append(out, c)
		}
	}
	if w.Email != nil {
		add(compileEmail(*w.Email, path+".email", errs))
	}
	if w.EmailDomain != nil {
		add(compileSet("email_domain", *w.EmailDomain, path+".email_domain", errs, strings.ToLower, checkDomain, emailDomain))
	}
	if w.Groups != nil {
		add(compileGroups(*w.Groups, path+".groups", errs))
	}
	if w.IdPType != nil {
		add(compileSet("idp_type", *w.IdPType, path+".idp_type", errs, strings.ToLower, nil,
			func(id Identity) (string, bool) { return id.str("idp", "type") }))
	}
	if w.Country != nil {
		add(compileSet("country", *w.Country, path+".country", errs, strings.ToUpper, checkCountry,
			func(id Identity) (string, bool) { return id.str("geo", "country") }))
	}
	if w.IsWarp != nil {
		add(&isWarpCond{want: *w.IsWarp}, true)
	}
	if w.DeviceID != nil {
		if w.DeviceID.Present == nil {
			errs.add(path+".device_id", "present: true or false is required")
		} else {
			add(&deviceIDCond{present: *w.DeviceID.Present}, true)
		}
	}
	if w.Score != nil {
		add(compileRange("score", "", *w.Score, path+".score", errs))
	}
	if w.ProviderScores != nil {
		if len(w.ProviderScores) == 0 {
			errs.add(path+".provider_scores", "name at least one provider")
		}
		names := make([]string, 0, len(w.ProviderScores))
		for n := range w.ProviderScores {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			if strings.TrimSpace(n) == "" {
				errs.add(path+".provider_scores", "provider name must not be empty")
				continue
			}
			add(compileRange("provider_scores."+n, n, w.ProviderScores[n], path+".provider_scores."+n, errs))
		}
	}
	if w.Time != nil {
		add(compileTime(*w.Time, path+".time", errs))
	}
	return out
}

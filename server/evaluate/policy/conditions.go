package policy

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Conditions over identity.* fields.

// setCond matches one identity string against in / not_in lists.
type setCond struct {
	key       string
	get       func(Identity) (string, bool)
	normalize func(string) string
	in, notIn []string
}

func compileSet(key string, m StringMatch, path string, errs *errorList, normalize func(string) string,
	check func(string) error, get func(Identity) (string, bool)) (condition, bool) {
	ok := true
	if len(m.In) == 0 && len(m.NotIn) == 0 {
		errs.add(path, "give in or not_in")
		ok = false
	}
	norm := func(field string, vs []string) []string {
		out := make([]string, 0, len(vs))
		for i, v := range vs {
			v = strings.TrimSpace(v)
			if v == "" {
				errs.add(fmt.Sprintf("%s.%s[%d]", path, field, i), "must not be empty")
				ok = false
				continue
			}
			if check != nil {
				if err := check(v); err != nil {
					errs.add(fmt.Sprintf("%s.%s[%d]", path, field, i), "%v", err)
					ok = false
					continue
				}
			}
			out = append(out, normalize(v))
		}
		return out
	}
	c := &setCond{key: key, get: get, normalize: normalize, in: norm("in", m.In), notIn: norm("not_in", m.NotIn)}
	return c, ok
}

func (c *setCond) eval(ec *evalContext) ConditionTrace {
	raw, ok := c.get(ec.id)
	if !ok {
		return unknown(c.key, "the identity has no "+c.key)
	}
	v := c.normalize(raw)
	if len(c.in) > 0 && !slices.Contains(c.in, v) {
		return failed(c.key, "%q is not in %v", raw, c.in)
	}
	if slices.Contains(c.notIn, v) {
		return failed(c.key, "%q is in not_in %v", raw, c.notIn)
	}
	return held(c.key, "%q %s", raw, describeSet(c.in, c.notIn))
}

func describeSet(in, notIn []string) string {
	var parts []string
	if len(in) > 0 {
		parts = append(parts, fmt.Sprintf("is in %v", in))
	}
	if len(notIn) > 0 {
		parts = append(parts, fmt.Sprintf("is not in %v", notIn))
	}
	return strings.Join(parts, " and ")
}

func emailDomain(id Identity) (string, bool) {
	e, ok := id.str("email")
	if !ok {
		return "", false
	}
	at := strings.LastIndexByte(e, '@')
	if at < 0 || at == len(e)-1 {
		return "", false
	}
	return e[at+1:], true
}

func checkDomain(s string) error {
	if strings.ContainsAny(s, "@ ") || strings.HasPrefix(s, ".") {
		return fmt.Errorf("%q must be a bare domain like example.com", s)
	}
	return nil
}

var countryRe = regexp.MustCompile(`^[A-Za-z0-9]{2}$`)

func checkCountry(s string) error {
	if !countryRe.MatchString(s) {
		return fmt.Errorf("%q must be a two-letter country code like US", s)
	}
	return nil
}

// emailCond matches identity.email.
type emailCond struct {
	in, notIn, suffix []string
}

func compileEmail(m EmailMatch, path string, errs *errorList) (condition, bool) {
	ok := true
	if len(m.In) == 0 && len(m.NotIn) == 0 && len(m.Suffix) == 0 {
		errs.add(path, "give in, not_in or suffix")
		ok = false
	}
	norm := func(field string, vs []string, check func(string) bool, want string) []string {
		out := make([]string, 0, len(vs))
		for i, v := range vs {
			v = strings.ToLower(strings.TrimSpace(v))
			if !check(v) {
				errs.add(fmt.Sprintf("%s.%s[%d]", path, field, i), "%q %s", v, want)
				ok = false
				continue
			}
			out = append(out, v)
		}
		return out
	}
	isAddr := func(s string) bool { at := strings.IndexByte(s, '@'); return at > 0 && at < len(s)-1 }
	// A suffix without its "@" or "." would let bob@evilexample.com
	// match "example.com".
	isSuffix := func(s string) bool { return len(s) > 1 && (s[0] == '@' || s[0] == '.') }
	c := &emailCond{
		in:     norm("in", m.In, isAddr, "is not an email address"),
		notIn:  norm("not_in", m.NotIn, isAddr, "is not an email address"),
		suffix: norm("suffix", m.Suffix, isSuffix, `must start with "@" or "." (e.g. "@example.com"), or use email_domain`),
	}
	return c, ok
}

func (c *emailCond) eval(ec *evalContext) ConditionTrace {
	raw, ok := ec.id.str("email")
	if !ok {
		return unknown("email", "the identity has no email")
	}
	e := strings.ToLower(raw)
	if len(c.in) > 0 && !slices.Contains(c.in, e) {
		return failed("email", "%q is not in %v", raw, c.in)
	}
	if slices.Contains(c.notIn, e) {
		return failed("email", "%q is in not_in %v", raw, c.notIn)
	}
	if len(c.suffix) > 0 && !slices.ContainsFunc(c.suffix, func(s string) bool { return strings.HasSuffix(e, s) }) {
		return failed("email", "%q ends with none of %v", raw, c.suffix)
	}
	return held("email", "%q matches", raw)
}

// groupsCond matches identity.groups.
type groupsCond struct {
	any, all, none []string
}

func compileGroups(m GroupMatch, path string, errs *errorList) (condition, bool) {
	ok := true
	if len(m.Any) == 0 && len(m.All) == 0 && len(m.None) == 0 {
		errs.add(path, "give any, all or none")
		ok = false
	}
	for _, f := range []struct {
		name string
		vs   []string
	}{{"any", m.Any}, {"all", m.All}, {"none", m.None}} {
		for i, v := range f.vs {
			if strings.TrimSpace(v) == "" {
				errs.add(fmt.Sprintf("%s.%s[%d]", path, f.name, i), "must not be empty")
				ok = false
			}
		}
	}
	return &groupsCond{any: m.Any, all: m.All, none: m.None}, ok
}

func (c *groupsCond) eval(ec *evalContext) ConditionTrace {
	gs, ok := ec.id.groups()
	if !ok {
		return unknown("groups", "the identity has no groups list")
	}
	if len(c.any) > 0 && !slices.ContainsFunc(c.any, func(g string) bool { return slices.Contains(gs, g) }) {
		return failed("groups", "member of none of %v (groups: %v)", c.any, gs)
	}
	for _, g := range c.all {
		if !slices.Contains(gs, g) {
			return failed("groups", "not a member of %q, all of %v required (groups: %v)", g, c.all, gs)
		}
	}
	for _, g := range c.none {
		if slices.Contains(gs, g) {
			return failed("groups", "member of %q, which is excluded (none: %v)", g, c.none)
		}
	}
	return held("groups", "groups %v match", gs)
}

type isWarpCond struct{ want bool }

func (c *isWarpCond) eval(ec *evalContext) ConditionTrace {
	v, ok := ec.id.bool("is_warp")
	if !ok {
		return unknown("is_warp", "the identity has no is_warp")
	}
	if v != c.want {
		return failed("is_warp", "is_warp is %t, want %t", v, c.want)
	}
	return held("is_warp", "is_warp is %t", v)
}

type deviceIDCond struct{ present bool }

func (c *deviceIDCond) eval(ec *evalContext) ConditionTrace {
	id := ec.id.deviceID()
	switch {
	case id != "" && c.present:
		return held("device_id", "device_id %q is present", id)
	case id != "":
		return failed("device_id", "device_id %q is present, want none", id)
	case c.present:
		return failed("device_id", "the identity has no device_id")
	default:
		return held("device_id", "the identity has no device_id, as required")
	}
}

// Conditions over the device posture postured computed.

// rangeCond bounds the device score (provider "") or one provider's score.
type rangeCond struct {
	key      string
	provider string
	min, max *int
}

func compileRange(key, provider string, r ScoreRange, path string, errs *errorList) (condition, bool) {
	ok := true
	if r.Min == nil && r.Max == nil {
		errs.add(path, "give min and/or max")
		ok = false
	}
	if r.Min != nil && (*r.Min < 0 || *r.Min > 100) {
		errs.add(path, "min must be 0..100, got %d", *r.Min)
		ok = false
	}
	if r.Max != nil && (*r.Max < 0 || *r.Max > 100) {
		errs.add(path, "max must be 0..100, got %d", *r.Max)
		ok = false
	}
	if ok && r.Min != nil && r.Max != nil && *r.Min > *r.Max {
		errs.add(path, "min %d is above max %d", *r.Min, *r.Max)
		ok = false
	}
	return &rangeCond{key: key, provider: provider, min: r.Min, max: r.Max}, ok
}

func (c *rangeCond) eval(ec *evalContext) ConditionTrace {
	p, why, ok := ec.devicePosture()
	if !ok {
		return unknown(c.key, why)
	}
	score, what := p.Score, "device "+quote(ec.id.deviceID())
	if c.provider != "" {
		s, counted := p.Providers[c.provider]
		if !counted {
			return unknown(c.key, fmt.Sprintf("provider %q did not score device %q", c.provider, ec.id.deviceID()))
		}
		score, what = s, fmt.Sprintf("provider %q on device %q", c.provider, ec.id.deviceID())
	}
	age := ""
	if !p.At.IsZero() {
		age = fmt.Sprintf(", computed %s ago", ec.now.Sub(p.At).Truncate(time.Second))
	}
	if c.min != nil && score < *c.min {
		return failed(c.key, "%s scored %d, below min %d%s", what, score, *c.min, age)
	}
	if c.max != nil && score > *c.max {
		return failed(c.key, "%s scored %d, above max %d%s", what, score, *c.max, age)
	}
	return held(c.key, "%s scored %d, within %s%s", what, score, describeRange(c.min, c.max), age)
}

func describeRange(min, max *int) string {
	switch {
	case min != nil && max != nil:
		return fmt.Sprintf("%d..%d", *min, *max)
	case min != nil:
		return fmt.Sprintf("min %d", *min)
	default:
		return fmt.Sprintf("max %d", *max)
	}
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

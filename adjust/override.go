package adjust

import (
	"fmt"
	"strings"
	"time"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/providers"
)

// Selector kinds: what an override is keyed on.
const (
	KindDeviceID = "device_id"
	KindSerial   = "serial"
	KindEmail    = "email"
)

// selectorOrder is the precedence when several overrides match one
// device: the most specific selector wins (a device_id names one WARP
// enrolment, a serial one machine, an email all of a user's devices).
var selectorOrder = [...]string{KindDeviceID, KindSerial, KindEmail}

// Sources of an override.
const (
	SourceConfig  = "config"
	SourceRuntime = "runtime" // `postured override add`, kept in Redis
)

// Override is a time-boxed, reasoned exception: the device its selector
// names scores Score until Until, whatever the providers say.
type Override struct {
	// Kind is the selector kind (KindDeviceID, KindSerial, KindEmail) and
	// Value its value, normalised as matching normalises it.
	Kind   string    `json:"kind"`
	Value  string    `json:"value"`
	Score  int       `json:"score"`
	Until  time.Time `json:"until"`
	Reason string    `json:"reason"`
	// Added is when `override add` stored it; zero for config overrides.
	Added time.Time `json:"added,omitzero"`
	// Source is SourceConfig or SourceRuntime; not stored.
	Source string `json:"-"`
}

// Key identifies the device an override is for: at most one override per
// key and source.
func (o Override) Key() string { return o.Kind + ":" + o.Value }

// Expired reports whether the override no longer applies at now.
func (o Override) Expired(now time.Time) bool { return !now.Before(o.Until) }

// Spec is an override as written in the config file's overrides: list, or
// given to `postured override add`: exactly one selector, a score, an
// RFC 3339 end and a reason.
type Spec struct {
	Serial   string `yaml:"serial,omitempty"`
	DeviceID string `yaml:"device_id,omitempty"`
	Email    string `yaml:"email,omitempty"`
	Score    *int   `yaml:"score"`
	Until    string `yaml:"until"`
	Reason   string `yaml:"reason"`
}

// Problem is what is wrong with one field of a Spec; Field is empty for
// the spec as a whole (its selectors).
type Problem struct {
	Field string
	Msg   string
}

// Parse checks s and returns the override it describes, or every problem
// found. An end in the past is not a problem here: the override simply
// never applies (check-config warns, `override add` refuses).
func (s Spec) Parse() (Override, []Problem) {
	var o Override
	var probs []Problem
	o.Kind, o.Value, probs = s.selector()
	switch {
	case s.Score == nil:
		probs = append(probs, Problem{"score", "is required (0..100)"})
	case *s.Score < 0 || *s.Score > 100:
		probs = append(probs, Problem{"score", fmt.Sprintf("must be 0..100, got %d", *s.Score)})
	default:
		o.Score = *s.Score
	}
	if s.Until == "" {
		probs = append(probs, Problem{"until", "is required: when the override ends (RFC 3339, e.g. 2026-12-01T00:00:00Z)"})
	} else if t, err := time.Parse(time.RFC3339, s.Until); err != nil {
		probs = append(probs, Problem{"until", fmt.Sprintf("%q is not an RFC 3339 time (e.g. 2026-12-01T00:00:00Z)", s.Until)})
	} else {
		o.Until = t.UTC()
	}
	if o.Reason = strings.TrimSpace(s.Reason); o.Reason == "" {
		probs = append(probs, Problem{"reason", "is required: say why (a ticket, a loaner)"})
	}
	if len(probs) > 0 {
		return Override{}, probs
	}
	return o, nil
}

// selector is the spec's one selector, normalised.
func (s Spec) selector() (kind, value string, probs []Problem) {
	var kinds []string
	for _, sel := range []struct {
		kind, value string
		norm        func(string) (string, bool)
		what        string
	}{
		{KindSerial, s.Serial, providers.NormalizeSerial, "a usable serial (blank, a placeholder or over 256 bytes)"},
		{KindDeviceID, s.DeviceID, normalizeDeviceID, "a device id (blank or over 256 bytes)"},
		{KindEmail, s.Email, providers.NormalizeEmail, "an email address"},
	} {
		if sel.value == "" {
			continue
		}
		kinds = append(kinds, sel.kind)
		v, ok := sel.norm(sel.value)
		if !ok {
			probs = append(probs, Problem{sel.kind, fmt.Sprintf("%q is not %s", sel.value, sel.what)})
			continue
		}
		kind, value = sel.kind, v
	}
	if len(kinds) != 1 {
		msg := "needs exactly one of serial, device_id, email"
		if len(kinds) > 1 {
			msg += ", got " + strings.Join(kinds, " and ")
		}
		probs = append(probs, Problem{"", msg})
	}
	return kind, value, probs
}

// SelectorKey is the Key of the override the spec's selector names (its
// other fields are ignored): what `override remove` deletes.
func (s Spec) SelectorKey() (string, error) {
	kind, value, probs := s.selector()
	if len(probs) > 0 {
		p := probs[0]
		return "", fmt.Errorf("%s", strings.TrimSpace(p.Field+" "+p.Msg))
	}
	return kind + ":" + value, nil
}

// normalizeDeviceID accepts what the posture endpoint accepts as a
// device_id: anything non-blank within the identifier bound.
func normalizeDeviceID(s string) (string, bool) {
	s = strings.TrimSpace(s)
	return s, s != "" && len(s) <= providers.MaxIdentifierLen
}

// overrideSet finds the override for a device among those in force.
type overrideSet map[string]Override // by Key

// add keeps o unless an override for the same key from a source that
// ranks higher is already there: runtime overrides (the help desk's
// latest word) win over the config file's.
func (s overrideSet) add(o Override) {
	if prev, ok := s[o.Key()]; ok && prev.Source == SourceRuntime && o.Source != SourceRuntime {
		return
	}
	s[o.Key()] = o
}

// match is the override for d, the most specific selector first.
func (s overrideSet) match(d aggregate.Device) (Override, bool) {
	if len(s) == 0 {
		return Override{}, false
	}
	for _, kind := range selectorOrder {
		var v string
		var ok bool
		switch kind {
		case KindDeviceID:
			v, ok = normalizeDeviceID(d.ID)
		case KindSerial:
			v, ok = providers.NormalizeSerial(d.Serial)
		case KindEmail:
			v, ok = providers.NormalizeEmail(d.Email)
		}
		if !ok {
			continue
		}
		if o, found := s[kind+":"+v]; found {
			return o, true
		}
	}
	return Override{}, false
}

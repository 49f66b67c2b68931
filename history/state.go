package history

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/postured/postured/aggregate"
)

// maxFieldBytes bounds every string a state keeps (provider names, record
// ids, reasons, the decision), so a device's state, and with it every
// store's bytes, is bounded by the number of configured providers.
const maxFieldBytes = 256

// State is the compact form of one device's answer: what the next answer
// is diffed against.
type State struct {
	Score     int             `json:"s"`
	Decision  string          `json:"d,omitempty"`
	Providers []ProviderState `json:"p"`
}

// ProviderState is one provider's part in a State: its scoring fields only.
type ProviderState struct {
	Name     string `json:"n"`
	Outcome  string `json:"o"`
	RecordID string `json:"id,omitempty"`
	// Reason is the record's "key=value key=value" scoring fields.
	Reason string `json:"r,omitempty"`
	Score  int    `json:"s"`
	// LastSeen is the record's last-seen time, Unix seconds.
	LastSeen int64 `json:"ls,omitempty"`
	// Expired is set when the record is older than max_last_seen, which
	// zeroes its score.
	Expired bool `json:"x,omitempty"`
}

// size approximates the bytes a state holds in memory.
func (s *State) size() int {
	n := 48 + len(s.Decision)
	for _, p := range s.Providers {
		n += 64 + len(p.Name) + len(p.Outcome) + len(p.RecordID) + len(p.Reason)
	}
	return n
}

// none stands for a field a record did not carry.
const none = "(none)"

// Diff says what changed between two states of one device, at is when the
// new one was answered. Providers are named in the new state's order; a
// score change that no provider field explains is put down to the decision
// (a policy, an override, the configuration).
func Diff(old, cur State, at time.Time) []string {
	var causes []string
	before := make(map[string]ProviderState, len(old.Providers))
	for _, p := range old.Providers {
		before[p.Name] = p
	}
	now := make(map[string]bool, len(cur.Providers))
	for _, p := range cur.Providers {
		now[p.Name] = true
		o, ok := before[p.Name]
		if !ok {
			causes = append(causes, p.Name+" added to the configuration")
			continue
		}
		causes = append(causes, diffProvider(o, p, at)...)
	}
	for _, p := range old.Providers {
		if !now[p.Name] {
			causes = append(causes, p.Name+" removed from the configuration")
		}
	}
	if len(causes) == 0 {
		if old.Decision != cur.Decision {
			causes = append(causes, fmt.Sprintf("decision %q -> %q", old.Decision, cur.Decision))
		} else {
			causes = append(causes, "no provider field changed (weights or policy)")
		}
	}
	return causes
}

// matchedLike reports whether a provider had a record to score.
func matchedLike(outcome string) bool {
	return outcome == string(aggregate.OutcomeMatched) || outcome == string(aggregate.OutcomeStale)
}

func diffProvider(o, p ProviderState, at time.Time) []string {
	name := p.Name
	if !matchedLike(o.Outcome) || !matchedLike(p.Outcome) {
		switch {
		case o.Outcome == p.Outcome:
			return nil
		case matchedLike(p.Outcome):
			return []string{fmt.Sprintf("%s %s -> %s (record %s: %s)", name, o.Outcome, p.Outcome, orNone(p.RecordID), orNone(p.Reason))}
		default:
			return []string{fmt.Sprintf("%s %s -> %s", name, o.Outcome, p.Outcome)}
		}
	}
	var causes []string
	if o.Outcome != p.Outcome {
		causes = append(causes, fmt.Sprintf("%s %s -> %s", name, o.Outcome, p.Outcome))
	}
	if o.RecordID != p.RecordID {
		causes = append(causes, fmt.Sprintf("%s re-enrolled: record %s -> %s", name, orNone(o.RecordID), orNone(p.RecordID)))
	}
	for _, kv := range diffReason(o.Reason, p.Reason) {
		causes = append(causes, name+" "+kv)
	}
	switch {
	case p.Expired && !o.Expired:
		causes = append(causes, fmt.Sprintf("%s record stale (last seen %s)", name, age(at, p.LastSeen)))
	case o.Expired && !p.Expired:
		causes = append(causes, fmt.Sprintf("%s record fresh again (last seen %s)", name, age(at, p.LastSeen)))
	}
	if len(causes) == 0 && o.Score != p.Score {
		causes = append(causes, fmt.Sprintf("%s score %d -> %d", name, o.Score, p.Score))
	}
	return causes
}

// diffReason compares two "key=value key=value" reasons key by key, in the
// new reason's key order, then keys only the old one had. A reason that is
// not key=value pairs is compared whole.
func diffReason(old, cur string) []string {
	if old == cur {
		return nil
	}
	ob, okOld := parseReason(old)
	nk, okNew := parseReason(cur)
	if !okOld || !okNew {
		return []string{fmt.Sprintf("reason %q -> %q", old, cur)}
	}
	var out []string
	seen := make(map[string]bool, len(nk))
	for _, kv := range nk {
		seen[kv[0]] = true
		if was := lookup(ob, kv[0]); was != kv[1] {
			out = append(out, fmt.Sprintf("%s %s -> %s", kv[0], was, kv[1]))
		}
	}
	for _, kv := range ob {
		if !seen[kv[0]] {
			out = append(out, fmt.Sprintf("%s %s -> %s", kv[0], kv[1], none))
		}
	}
	return out
}

// parseReason splits a reason into ordered key, value pairs; ok is false
// when some field is not key=value.
func parseReason(r string) (kvs [][2]string, ok bool) {
	for f := range strings.FieldsSeq(r) {
		k, v, found := strings.Cut(f, "=")
		if !found || k == "" {
			return nil, false
		}
		kvs = append(kvs, [2]string{k, v})
	}
	return kvs, true
}

func lookup(kvs [][2]string, key string) string {
	for _, kv := range kvs {
		if kv[0] == key {
			return kv[1]
		}
	}
	return none
}

func orNone(s string) string {
	if s == "" {
		return none
	}
	return s
}

// age renders how long before at a record was last seen: days from two
// days on, hours from two hours on, else minutes.
func age(at time.Time, lastSeen int64) string {
	if lastSeen == 0 {
		return "unknown"
	}
	d := at.Sub(time.Unix(lastSeen, 0))
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	default:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	}
}

// clip cuts s to at most n bytes without splitting a UTF-8 sequence.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

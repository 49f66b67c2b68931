package aggregate

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/postured/postured/providers"
)

// Explanation is why a device got its score.
type Explanation struct {
	DeviceID  string `json:"device_id"`
	Score     int    `json:"score"`
	S2SID     string `json:"s2s_id"`
	S2SIDFrom string `json:"s2s_id_from,omitempty"`
	// Decision says how the final score was reached.
	Decision  string           `json:"decision"`
	Providers []ProviderDetail `json:"providers"`
	// Adjustments are what changed the folded score afterwards (package
	// adjust: an override, hysteresis), in the order applied; Score is
	// the final score.
	Adjustments []Adjustment `json:"adjustments,omitempty"`
}

// Adjustment is one change to a device's folded score, or a note on why
// one did not apply (From == To).
type Adjustment struct {
	Kind string `json:"kind"` // "override" or "hysteresis"
	From int    `json:"from"`
	To   int    `json:"to"`
	Note string `json:"note"`
}

// Adjust sets the device's final score to a.To and records why.
func (r *Result) Adjust(a Adjustment) {
	r.Score = a.To
	r.Explanation.Score = a.To
	r.Explanation.Adjustments = append(r.Explanation.Adjustments, a)
}

// Outcome is how one provider fared for one device.
type Outcome string

const (
	// OutcomeMatched: a record was found and scored.
	OutcomeMatched Outcome = "matched"
	// OutcomeStale: the lookup failed; an expired cached record was used
	// (on_error: stale).
	OutcomeStale Outcome = "matched-stale"
	// OutcomeUnmatched: the provider was asked and knows no such device.
	OutcomeUnmatched Outcome = "unmatched"
	// OutcomeError: the provider could not be asked, or failed.
	OutcomeError Outcome = "error"
)

// ProviderDetail is one provider's part in a device's score.
type ProviderDetail struct {
	Provider string  `json:"provider"`
	Weight   float64 `json:"weight"`
	Outcome  Outcome `json:"outcome"`
	// MatchedOn is the key kind that matched and MatchedValue its
	// normalised value; Candidates counts records carrying it.
	MatchedOn    string    `json:"matched_on,omitempty"`
	MatchedValue string    `json:"matched_value,omitempty"`
	Candidates   int       `json:"candidates,omitempty"`
	RecordID     string    `json:"record_id,omitempty"`
	LastSeen     time.Time `json:"last_seen,omitzero"`
	// Score is what the provider contributes (after max_last_seen and
	// on_error); Counted says whether it entered the weighted mean.
	Score   int  `json:"score"`
	Counted bool `json:"counted"`
	// RecordScore is the matched record's own score, before max_last_seen:
	// what a replay (FoldRecorded) recomputes Score from. Not in the JSON,
	// whose shape tests hold; Score is what counted.
	RecordScore int    `json:"-"`
	Reason      string `json:"reason,omitempty"`
	Tried       string `json:"tried,omitempty"`
	Error       string `json:"error,omitempty"`
	Note        string `json:"note,omitempty"`
	// Contained: the matched record is a network-contained host.
	Contained bool `json:"contained,omitempty"`
}

// fold combines one device's per-provider outcomes into its result.
func (e *Engine) fold(deviceID string, per []outcome, now time.Time) Result {
	ex := Explanation{DeviceID: deviceID, Providers: make([]ProviderDetail, len(per))}
	var t tally
	for i, o := range per {
		s := &e.sources[i]
		d, failsClosed := describe(s, o, now)
		if failsClosed {
			t.failClosed = append(t.failClosed, s.Name)
		}
		if d.Counted {
			t.num += s.Weight * float64(d.Score)
			t.den += s.Weight
			t.counted++
		}
		ex.Providers[i] = d
	}
	ex.Score, ex.Decision = t.decide(e.unmatch)
	for _, i := range e.s2sOrder {
		if per[i].rec != nil {
			ex.S2SID, ex.S2SIDFrom = per[i].rec.ID, e.sources[i].Name
			break
		}
	}
	return Result{DeviceID: deviceID, S2SID: ex.S2SID, Score: ex.Score, Explanation: ex, At: now}
}

// tally is what the providers' details add up to for one device.
type tally struct {
	num, den   float64  // weighted sum of counted scores, sum of their weights
	counted    int      // providers in the mean: matched, or on_error: zero
	failClosed []string // required providers with no usable record
}

// decide is the device's score and why.
func (t *tally) decide(unmatchedScore int) (int, string) {
	switch {
	case len(t.failClosed) > 0:
		return 0, "required provider " + strings.Join(t.failClosed, ", ") + " has no usable record"
	case t.counted == 0:
		return unmatchedScore, "no provider matched: unmatched_score"
	default:
		return roundHalfUp(t.num / t.den), fmt.Sprintf("weighted mean of %d provider(s)", t.counted)
	}
}

// describe is one provider's part in a device's score, and whether that
// provider fails the device closed (required, and no usable record).
func describe(s *source, o outcome, now time.Time) (ProviderDetail, bool) {
	d := ProviderDetail{Provider: s.Name, Weight: s.Weight, Tried: kindList(o.tried)}
	if o.err != nil {
		d.Error = o.err.Error()
	}
	notes := o.notes
	failsClosed := false
	switch {
	case o.rec != nil:
		notes = describeMatch(&d, s, o, now, notes)
	case o.err != nil:
		d.Outcome = OutcomeError
		if failsClosed = s.Required; failsClosed {
			notes = append(notes, "required provider could not be asked: device scores 0")
			break
		}
		if s.OnError == providers.OnErrorZero {
			d.Counted = true
			notes = append(notes, "on_error: zero, counts as 0")
		} else {
			notes = append(notes, fmt.Sprintf("on_error: %s, excluded", s.OnError))
		}
	default:
		d.Outcome = OutcomeUnmatched
		if len(o.tried) == 0 && len(o.notes) == 0 {
			notes = append(notes, "device has no usable identifier")
		}
		if failsClosed = s.Required; failsClosed {
			notes = append(notes, "required provider did not match: device scores 0")
		}
	}
	d.Note = strings.Join(notes, "; ")
	return d, failsClosed
}

// describeMatch fills d for a matched record: its score after
// max_last_seen, and notes on staleness and duplicates.
func describeMatch(d *ProviderDetail, s *source, o outcome, now time.Time, notes []string) []string {
	d.Outcome = OutcomeMatched
	if o.stale {
		d.Outcome = OutcomeStale
		notes = append(notes, "vendor lookup failed; using cached record (on_error: stale)")
	}
	d.MatchedOn, d.MatchedValue, d.Candidates = o.kind.String(), o.value, o.candidates
	d.RecordID, d.LastSeen, d.Reason, d.Contained = o.rec.ID, o.rec.LastSeen, o.rec.Reason, o.rec.Contained
	d.Score = providers.Clamp(o.rec.Score)
	d.RecordScore = d.Score
	d.Counted = true
	if o.candidates > 1 {
		notes = append(notes, fmt.Sprintf("%d records carry this %s; took the most recently seen", o.candidates, o.kind))
	}
	if age := now.Sub(o.rec.LastSeen); s.MaxLastSeen > 0 && !o.rec.LastSeen.IsZero() && age > s.MaxLastSeen {
		d.Score = 0
		notes = append(notes, fmt.Sprintf("last seen %s ago, over max_last_seen %s: scores 0",
			age.Truncate(time.Minute), s.MaxLastSeen))
	}
	return notes
}

// roundHalfUp rounds to the nearest integer, halves up, clamped to 0..100.
// The epsilon absorbs float error from fractional weights (a true 49.5 must
// not become 49.49999 and round down).
func roundHalfUp(x float64) int {
	if math.IsNaN(x) {
		return 0
	}
	return providers.Clamp(int(math.Floor(x + 0.5 + 1e-9)))
}

func kindList(ks []providers.Kind) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = k.String()
	}
	return strings.Join(s, ",")
}

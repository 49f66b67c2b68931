package aggregate

import (
	"fmt"
	"math"
	"slices"
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
	r.adjustments = append(r.adjustments, a)
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

// ProviderResult is one provider's part in a Result, in compact form: what
// the posture memory, metrics and policies read for every device. The
// strings of an explanation are built only by Result.Explain.
type ProviderResult struct {
	// Provider is the source's name (shared with the configuration).
	Provider string
	Outcome  Outcome
	// Score is what the provider contributes (after max_last_seen and
	// on_error); Counted says whether it entered the weighted mean.
	Score   int
	Counted bool
	// RecordID is the matched record's id and MatchedOn the key kind that
	// matched it; both unset unless Outcome is matched or matched-stale.
	RecordID  string
	MatchedOn providers.Kind
	// Contained: the matched record is a network-contained host.
	Contained bool
}

// batch is what a batch's Results share for Explain: the outcomes of
// every provider for every device, and the clock the scores were folded
// at.
type batch struct {
	e        *Engine
	outcomes [][]outcome // [source][device]
	now      time.Time
}

// ResultOf is a Result whose explanation is ex, already built, for
// whoever scores without an Engine (test fakes, replays of recorded
// explanations). Its compact fields are ex's.
func ResultOf(ex Explanation) Result {
	r := Result{DeviceID: ex.DeviceID, S2SID: ex.S2SID, Score: ex.Score, Providers: make([]ProviderResult, len(ex.Providers))}
	for i, d := range ex.Providers {
		r.Providers[i] = ProviderResult{Provider: d.Provider, Outcome: d.Outcome, Score: d.Score, Counted: d.Counted, RecordID: d.RecordID,
			Contained: d.Contained}
		for _, k := range providers.Kinds {
			if k.String() == d.MatchedOn {
				r.Providers[i].MatchedOn = k
			}
		}
	}
	r.adjustments = slices.Clone(ex.Adjustments)
	ex.Providers, ex.Adjustments = slices.Clone(ex.Providers), nil
	r.explained = &ex
	return r
}

// Explain is why the device got its score: the full explanation, built on
// demand (`explain`, /v1/explain, External Evaluation, debug logs), from
// what the batch kept. A Result neither returned by Evaluate nor made by
// ResultOf explains its compact fields alone.
func (r Result) Explain() Explanation {
	if r.explained != nil {
		ex := *r.explained
		// The caller's to modify; the score is the adjusted one.
		ex.Score, ex.Providers, ex.Adjustments = r.Score, slices.Clone(ex.Providers), slices.Clone(r.adjustments)
		return ex
	}
	ex := Explanation{DeviceID: r.DeviceID, Score: r.Score, S2SID: r.S2SID, Providers: make([]ProviderDetail, len(r.Providers)),
		Adjustments: slices.Clone(r.adjustments)}
	b := r.batch
	if b == nil {
		for i, p := range r.Providers {
			ex.Providers[i] = ProviderDetail{Provider: p.Provider, Outcome: p.Outcome, Score: p.Score, Counted: p.Counted, RecordID: p.RecordID,
				Contained: p.Contained}
		}
		return ex
	}
	var t tally
	for si := range b.e.sources {
		s := &b.e.sources[si]
		o := &b.outcomes[si][r.index]
		d := describe(s, o, r.Providers[si], b.now)
		if r.Providers[si].Counted {
			t.add(s.Weight, d.Score)
		}
		if failsClosed(s, o) {
			t.failClosed = append(t.failClosed, s.Name)
		}
		ex.Providers[si] = d
	}
	ex.Decision = t.decision()
	for _, i := range b.e.s2sOrder {
		if b.outcomes[i][r.index].rec != nil {
			ex.S2SIDFrom = b.e.sources[i].Name
			break
		}
	}
	return ex
}

// fold scores device di from the per-provider outcomes, with no strings:
// the explanation is left to Result.Explain. prs is where the device's
// ProviderResults go (one slice per batch, cut per device).
func (e *Engine) fold(b *batch, di int, deviceID string, prs []ProviderResult) Result {
	var t tally
	for si := range e.sources {
		s := &e.sources[si]
		o := &b.outcomes[si][di]
		prs[si] = judge(s, o, b.now)
		if prs[si].Counted {
			t.add(s.Weight, prs[si].Score)
		}
		if failsClosed(s, o) {
			t.failClosed = append(t.failClosed, s.Name)
		}
	}
	r := Result{DeviceID: deviceID, Score: t.score(e.unmatch), Providers: prs, At: b.now, batch: b, index: di}
	for _, i := range e.s2sOrder {
		if rec := b.outcomes[i][di].rec; rec != nil {
			r.S2SID = rec.ID
			break
		}
	}
	return r
}

// tally is what the providers' details add up to for one device.
type tally struct {
	num, den   float64  // weighted sum of counted scores, sum of their weights
	counted    int      // providers in the mean: matched, or on_error: zero
	failClosed []string // required providers with no usable record
}

func (t *tally) add(weight float64, score int) {
	t.num += weight * float64(score)
	t.den += weight
	t.counted++
}

// score is the device's score.
func (t *tally) score(unmatchedScore int) int {
	switch {
	case len(t.failClosed) > 0:
		return 0
	case t.counted == 0:
		return unmatchedScore
	default:
		return roundHalfUp(t.num / t.den)
	}
}

// decision says why the device got t.score.
func (t *tally) decision() string {
	switch {
	case len(t.failClosed) > 0:
		return "required provider " + strings.Join(t.failClosed, ", ") + " has no usable record"
	case t.counted == 0:
		return "no provider matched: unmatched_score"
	default:
		return fmt.Sprintf("weighted mean of %d provider(s)", t.counted)
	}
}

// failsClosed reports whether a required provider has no usable record
// for the device: it then scores 0.
func failsClosed(s *source, o *outcome) bool {
	return s.Required && o.rec == nil
}

// judge is one provider's part in a device's score.
func judge(s *source, o *outcome, now time.Time) ProviderResult {
	p := ProviderResult{Provider: s.Name}
	switch {
	case o.rec != nil:
		p.Outcome = OutcomeMatched
		if o.stale {
			p.Outcome = OutcomeStale
		}
		p.RecordID, p.MatchedOn, p.Contained = o.rec.ID, o.kind, o.rec.Contained
		p.Score, p.Counted = providers.Clamp(o.rec.Score), true
		if tooOld(s, o.rec, now) {
			p.Score = 0
		}
	case o.err != nil:
		p.Outcome = OutcomeError
		p.Counted = !s.Required && s.OnError == providers.OnErrorZero
	default:
		p.Outcome = OutcomeUnmatched
	}
	return p
}

// tooOld reports whether rec was last seen longer ago than max_last_seen.
func tooOld(s *source, rec *providers.Record, now time.Time) bool {
	return s.MaxLastSeen > 0 && !rec.LastSeen.IsZero() && now.Sub(rec.LastSeen) > s.MaxLastSeen
}

// describe is p, the provider's part judged at fold time (now), with the
// strings that explain it.
func describe(s *source, o *outcome, p ProviderResult, now time.Time) ProviderDetail {
	d := ProviderDetail{Provider: s.Name, Weight: s.Weight, Outcome: p.Outcome, Score: p.Score, Counted: p.Counted, Tried: o.tried.String()}
	if o.err != nil {
		d.Error = o.err.Error()
	}
	notes := slices.Clip(o.notes) // appends must not write into the batch's outcome
	switch p.Outcome {
	case OutcomeMatched, OutcomeStale:
		if o.stale {
			notes = append(notes, "vendor lookup failed; using cached record (on_error: stale)")
		}
		d.MatchedOn, d.MatchedValue, d.Candidates = o.kind.String(), o.value, o.candidates
		d.RecordID, d.LastSeen, d.Reason, d.Contained = o.rec.ID, o.rec.LastSeen, o.rec.Reason, o.rec.Contained
		d.RecordScore = providers.Clamp(o.rec.Score)
		if o.candidates > 1 {
			notes = append(notes, fmt.Sprintf("%d records carry this %s; took the most recently seen", o.candidates, o.kind))
		}
		if tooOld(s, o.rec, now) {
			notes = append(notes, fmt.Sprintf("last seen %s ago, over max_last_seen %s: scores 0",
				now.Sub(o.rec.LastSeen).Truncate(time.Minute), s.MaxLastSeen))
		}
	case OutcomeError:
		switch {
		case s.Required:
			notes = append(notes, "required provider could not be asked: device scores 0")
		case s.OnError == providers.OnErrorZero:
			notes = append(notes, "on_error: zero, counts as 0")
		default:
			notes = append(notes, fmt.Sprintf("on_error: %s, excluded", s.OnError))
		}
	default:
		if o.tried == 0 && len(o.notes) == 0 {
			notes = append(notes, "device has no usable identifier")
		}
		if s.Required {
			notes = append(notes, "required provider did not match: device scores 0")
		}
	}
	d.Note = strings.Join(notes, "; ")
	return d
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

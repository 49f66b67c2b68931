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
}

// Outcome of one provider for one device.
const (
	OutcomeMatched   = "matched"
	OutcomeStale     = "matched-stale"
	OutcomeUnmatched = "unmatched"
	OutcomeError     = "error"
)

// ProviderDetail is one provider's part in a device's score.
type ProviderDetail struct {
	Provider string  `json:"provider"`
	Weight   float64 `json:"weight"`
	Outcome  string  `json:"outcome"`
	// MatchedOn is the key kind that matched and MatchedValue its
	// normalised value; Candidates counts records carrying it.
	MatchedOn    string    `json:"matched_on,omitempty"`
	MatchedValue string    `json:"matched_value,omitempty"`
	Candidates   int       `json:"candidates,omitempty"`
	RecordID     string    `json:"record_id,omitempty"`
	LastSeen     time.Time `json:"last_seen,omitzero"`
	// Score is what the provider contributes (after max_last_seen and
	// on_error); Counted says whether it entered the weighted mean.
	Score   int    `json:"score"`
	Counted bool   `json:"counted"`
	Reason  string `json:"reason,omitempty"`
	Tried   string `json:"tried,omitempty"`
	Error   string `json:"error,omitempty"`
	Note    string `json:"note,omitempty"`
}

// fold combines one device's per-provider outcomes into its result.
func (e *Engine) fold(deviceID string, per []outcome, now time.Time) Result {
	ex := Explanation{DeviceID: deviceID, Providers: make([]ProviderDetail, len(per))}
	var num, den float64
	var failClosed []string
	matched, zeroed := 0, 0
	for i, o := range per {
		s := &e.sources[i]
		d := ProviderDetail{Provider: s.Name, Weight: s.Weight, Tried: kindList(o.tried)}
		notes := o.notes
		if o.err != nil {
			d.Error = o.err.Error()
		}
		switch {
		case o.rec != nil:
			matched++
			d.Outcome = OutcomeMatched
			if o.stale {
				d.Outcome = OutcomeStale
				notes = append(notes, "vendor lookup failed; using cached record (on_error: stale)")
			}
			d.MatchedOn, d.MatchedValue, d.Candidates = o.kind.String(), o.value, o.candidates
			d.RecordID, d.LastSeen, d.Reason = o.rec.ID, o.rec.LastSeen, o.rec.Reason
			d.Score = providers.Clamp(o.rec.Score)
			if o.candidates > 1 {
				notes = append(notes, fmt.Sprintf("%d records carry this %s; took the most recently seen", o.candidates, o.kind))
			}
			if s.MaxLastSeen > 0 && !o.rec.LastSeen.IsZero() && now.Sub(o.rec.LastSeen) > s.MaxLastSeen {
				d.Score = 0
				notes = append(notes, fmt.Sprintf("last seen %s ago, over max_last_seen %s: scores 0",
					now.Sub(o.rec.LastSeen).Truncate(time.Minute), s.MaxLastSeen))
			}
			d.Counted = true
		case o.err != nil:
			d.Outcome = OutcomeError
			if s.Required {
				failClosed = append(failClosed, s.Name)
				notes = append(notes, "required provider could not be asked: device scores 0")
				break
			}
			switch s.OnError {
			case providers.OnErrorZero:
				d.Counted = true
				zeroed++
				notes = append(notes, "on_error: zero, counts as 0")
			default:
				notes = append(notes, fmt.Sprintf("on_error: %s, excluded", s.OnError))
			}
		default:
			d.Outcome = OutcomeUnmatched
			if len(o.tried) == 0 && len(o.notes) == 0 {
				notes = append(notes, "device has no usable identifier")
			}
			if s.Required {
				failClosed = append(failClosed, s.Name)
				notes = append(notes, "required provider did not match: device scores 0")
			}
		}
		if d.Counted {
			num += s.Weight * float64(d.Score)
			den += s.Weight
		}
		d.Note = strings.Join(notes, "; ")
		ex.Providers[i] = d
	}

	switch {
	case len(failClosed) > 0:
		ex.Score = 0
		ex.Decision = "required provider " + strings.Join(failClosed, ", ") + " has no usable record"
	case matched == 0 && zeroed == 0:
		ex.Score = e.unmatch
		ex.Decision = "no provider matched: unmatched_score"
	default:
		ex.Score = roundHalfUp(num / den)
		ex.Decision = fmt.Sprintf("weighted mean of %d provider(s)", matched+zeroed)
	}
	for _, i := range e.s2sOrder {
		if per[i].rec != nil {
			ex.S2SID, ex.S2SIDFrom = per[i].rec.ID, e.sources[i].Name
			break
		}
	}
	return Result{DeviceID: deviceID, S2SID: ex.S2SID, Score: ex.Score, Explanation: ex}
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

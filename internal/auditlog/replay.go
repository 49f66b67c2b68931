package auditlog

import (
	"fmt"
	"time"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/audit"
	"github.com/postured/postured/providers"
)

// Replayed is a recorded answer next to the answer recomputed from the
// record's inputs.
type Replayed struct {
	Record     audit.Record
	Recomputed aggregate.Result
	// Differences name every field of the answer, and every provider's
	// part, that the recomputation does not reproduce; empty when it does.
	Differences []string
}

// Replay recomputes a recorded answer with aggregate.FoldRecorded, the fold
// postured answers with, and compares. An error means the record cannot be
// replayed at all (an outcome or duration it does not understand).
func Replay(r audit.Record) (Replayed, error) {
	in := aggregate.Recorded{At: r.Time, UnmatchedScore: r.Policy.UnmatchedScore, S2SIDFrom: r.Policy.S2SIDFrom}
	for _, p := range r.Providers {
		var maxLastSeen time.Duration
		if p.MaxLastSeen != "" {
			d, err := time.ParseDuration(p.MaxLastSeen)
			if err != nil {
				return Replayed{}, fmt.Errorf("replay %s: provider %q: max_last_seen: %w", r.DeviceID, p.Name, err)
			}
			maxLastSeen = d
		}
		in.Providers = append(in.Providers, aggregate.RecordedProvider{
			Name: p.Name, Weight: p.Weight, Required: p.Required, OnError: providers.OnError(p.OnError), MaxLastSeen: maxLastSeen,
			Outcome: aggregate.Outcome(p.Outcome), RecordID: p.RecordID, Score: p.RecordScore, LastSeen: p.LastSeen, Reason: p.Reason, Error: p.Error,
			Contained: p.Contained,
		})
	}
	res, err := aggregate.FoldRecorded(r.DeviceID, in)
	if err != nil {
		return Replayed{}, fmt.Errorf("replay %s: %w", r.DeviceID, err)
	}
	var diffs []string
	diff := func(field string, recorded, recomputed any) {
		if recorded != recomputed {
			diffs = append(diffs, fmt.Sprintf("%s: recorded %v, recomputed %v", field, recorded, recomputed))
		}
	}
	// Overrides and hysteresis depend on state the log does not hold (the
	// overrides in force, the device's earlier evaluations): their recorded
	// outcome is applied to the recomputed fold, and must start from it.
	for i, a := range r.Adjustments {
		diff(fmt.Sprintf("adjustment %d (%s) from", i+1, a.Kind), a.From, res.Score)
		res.Adjust(aggregate.Adjustment{Kind: a.Kind, From: a.From, To: a.To, Note: a.Note})
	}
	ex := res.Explain()
	diff("score", r.Score, res.Score)
	diff("s2s_id", fmt.Sprintf("%q", r.S2SID), fmt.Sprintf("%q", res.S2SID))
	diff("s2s_id_from", fmt.Sprintf("%q", r.S2SIDFrom), fmt.Sprintf("%q", ex.S2SIDFrom))
	diff("decision", fmt.Sprintf("%q", r.Decision), fmt.Sprintf("%q", ex.Decision))
	for i, p := range r.Providers {
		d := ex.Providers[i]
		diff(p.Name+" score", p.Score, d.Score)
		diff(p.Name+" counted", p.Counted, d.Counted)
	}
	return Replayed{Record: r, Recomputed: res, Differences: diffs}, nil
}

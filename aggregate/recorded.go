package aggregate

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/postured/postured/providers"
)

// Recorded is what a past answer was computed from, as the audit log keeps
// it: the policies in force and what each provider found.
type Recorded struct {
	// At is Result.At: the time max_last_seen was judged against.
	At             time.Time
	UnmatchedScore int
	// S2SIDFrom is posture.s2s_id_from as configured.
	S2SIDFrom []string
	// Providers are in configuration order, as in Explanation.Providers.
	Providers []RecordedProvider
}

// RecordedProvider is one provider's part in a past answer.
type RecordedProvider struct {
	Name        string
	Weight      float64
	Required    bool
	OnError     providers.OnError
	MaxLastSeen time.Duration
	Outcome     Outcome
	// RecordID, Score, LastSeen and Reason describe the matched record
	// (Outcome matched or matched-stale); Score is the record's own, before
	// max_last_seen (ProviderDetail.RecordScore).
	RecordID  string
	Score     int
	LastSeen  time.Time
	Reason    string
	Contained bool
	// Error is the lookup failure (Outcome error or matched-stale).
	Error string
}

// FoldRecorded recomputes a past answer from its recorded inputs with the
// fold Evaluate uses, so a replay can differ from the log only if the log
// or the fold changed. The explanation's notes on lookups (tried keys,
// candidates) are not recorded and so not reproduced.
func FoldRecorded(deviceID string, in Recorded) (Result, error) {
	e := &Engine{unmatch: providers.Clamp(in.UnmatchedScore)}
	per := make([]outcome, len(in.Providers))
	outcomes := make([][]outcome, len(in.Providers)) // a batch of one device
	names := make(map[string]int, len(in.Providers))
	for i, p := range in.Providers {
		if _, dup := names[p.Name]; dup {
			return Result{}, fmt.Errorf("aggregate: fold recorded: provider %q twice", p.Name)
		}
		names[p.Name] = i
		if !(p.Weight > 0) || math.IsInf(p.Weight, 0) {
			return Result{}, fmt.Errorf("aggregate: fold recorded: provider %q: weight %v: want > 0 and finite", p.Name, p.Weight)
		}
		e.sources = append(e.sources, source{Source: Source{
			Name: p.Name, Weight: p.Weight, Required: p.Required, OnError: p.OnError, MaxLastSeen: p.MaxLastSeen,
		}})
		var err error
		if p.Error != "" {
			err = errors.New(p.Error)
		}
		switch p.Outcome {
		case OutcomeMatched, OutcomeStale:
			per[i].rec = &providers.Record{ID: p.RecordID, Score: p.Score, LastSeen: p.LastSeen, Reason: p.Reason, Contained: p.Contained}
			per[i].stale = p.Outcome == OutcomeStale
			per[i].err = err
		case OutcomeError:
			if err == nil {
				err = errors.New("lookup failed")
			}
			per[i].err = err
		case OutcomeUnmatched:
		default:
			return Result{}, fmt.Errorf("aggregate: fold recorded: provider %q: unknown outcome %q", p.Name, p.Outcome)
		}
	}
	// The s2s_id order as New builds it: the listed providers, then the
	// others in configuration order.
	for _, n := range in.S2SIDFrom {
		i, ok := names[n]
		if !ok {
			return Result{}, fmt.Errorf("aggregate: fold recorded: s2s_id_from: no provider named %q", n)
		}
		if !slices.Contains(e.s2sOrder, i) {
			e.s2sOrder = append(e.s2sOrder, i)
		}
	}
	for i := range e.sources {
		if !slices.Contains(e.s2sOrder, i) {
			e.s2sOrder = append(e.s2sOrder, i)
		}
	}
	for i := range per {
		outcomes[i] = per[i : i+1]
	}
	b := &batch{e: e, outcomes: outcomes, now: in.At}
	return e.fold(b, 0, deviceID, make([]ProviderResult, len(per))), nil
}

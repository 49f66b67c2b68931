package aggregate

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/postured/postured/providers"
)

// recordedFrom is what an audit log keeps of a result: the sources'
// policies and the explanation's per-provider fields.
func recordedFrom(sources []Source, s2sFrom []string, unmatched int, r Result) Recorded {
	in := Recorded{At: r.At, UnmatchedScore: unmatched, S2SIDFrom: s2sFrom}
	for i, d := range r.Explain().Providers {
		s := sources[i]
		in.Providers = append(in.Providers, RecordedProvider{
			Name: s.Name, Weight: s.Weight, Required: s.Required, OnError: s.OnError, MaxLastSeen: s.MaxLastSeen,
			Outcome: d.Outcome, RecordID: d.RecordID, Score: d.RecordScore, LastSeen: d.LastSeen, Reason: d.Reason, Error: d.Error,
		})
	}
	return in
}

// TestFoldRecordedReproducesEvaluate: every way a provider can take part in
// a score, evaluated for real and then recomputed from what the audit log
// records, gives the same score, s2s_id, decision and per-provider parts.
func TestFoldRecordedReproducesEvaluate(t *testing.T) {
	fresh := rec("fresh", 80, serial("S1"))
	old := rec("old", 90, serial("S1"), seen(now.Add(-40*24*time.Hour)))
	failing := func() *inventory { p := newInventory(fresh); p.setErr(errors.New("vendor down")); return p }
	tests := []struct {
		name      string
		sources   []Source
		s2sFrom   []string
		unmatched int
		wantScore int
	}{
		{
			name:      "weighted mean",
			sources:   []Source{src("a", 3, newInventory(fresh)), src("b", 1, newInventory(rec("b1", 40, serial("S1"))))},
			wantScore: 70,
		},
		{
			name: "max_last_seen zeroes a stale record",
			sources: []Source{src("a", 1, newInventory(fresh)), src("b", 1, newInventory(old),
				func(s *Source) { s.MaxLastSeen = 30 * 24 * time.Hour })},
			wantScore: 40,
		},
		{
			name:      "required provider unmatched fails closed",
			sources:   []Source{src("a", 1, newInventory(fresh)), src("b", 1, newInventory(), func(s *Source) { s.Required = true })},
			wantScore: 0,
		},
		{
			name:      "on_error zero counts the failure",
			sources:   []Source{src("a", 1, newInventory(fresh)), src("b", 1, failing(), func(s *Source) { s.OnError = providers.OnErrorZero })},
			wantScore: 40,
		},
		{
			name:      "on_error exclude leaves it out",
			sources:   []Source{src("a", 1, newInventory(fresh)), src("b", 1, failing(), func(s *Source) { s.OnError = providers.OnErrorExclude })},
			wantScore: 80,
		},
		{
			name:      "nothing matched: unmatched_score",
			sources:   []Source{src("a", 1, newInventory()), src("b", 2, newInventory())},
			unmatched: 35,
			wantScore: 35,
		},
		{
			name:      "s2s_id_from picks the second provider's id",
			sources:   []Source{src("a", 1, newInventory(fresh)), src("b", 1, newInventory(rec("b1", 40, serial("S1"))))},
			s2sFrom:   []string{"b"},
			wantScore: 60,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, Config{Sources: tc.sources, S2SIDFrom: tc.s2sFrom, UnmatchedScore: tc.unmatched})
			got := evalOne(t, e, Device{ID: "dev-1", Serial: "S1"})
			if got.Score != tc.wantScore {
				t.Fatalf("evaluate: score %d, want %d (the case no longer tests what it says)", got.Score, tc.wantScore)
			}
			if !got.At.Equal(now) {
				t.Errorf("Result.At = %v, want the engine's clock %v", got.At, now)
			}
			re, err := FoldRecorded("dev-1", recordedFrom(tc.sources, tc.s2sFrom, tc.unmatched, got))
			if err != nil {
				t.Fatal(err)
			}
			if re.Score != got.Score || re.S2SID != got.S2SID || re.Explain().Decision != got.Explain().Decision ||
				re.Explain().S2SIDFrom != got.Explain().S2SIDFrom {
				t.Errorf("replayed score %d s2s_id %q (%s) %q; evaluated %d %q (%s) %q", re.Score, re.S2SID, re.Explain().S2SIDFrom,
					re.Explain().Decision, got.Score, got.S2SID, got.Explain().S2SIDFrom, got.Explain().Decision)
			}
			for i, d := range got.Explain().Providers {
				r := re.Explain().Providers[i]
				if r.Provider != d.Provider || r.Outcome != d.Outcome || r.Score != d.Score || r.Counted != d.Counted {
					t.Errorf("provider %d: replayed %s %s %d counted %t; evaluated %s %s %d counted %t",
						i, r.Provider, r.Outcome, r.Score, r.Counted, d.Provider, d.Outcome, d.Score, d.Counted)
				}
			}
		})
	}
}

// TestFoldRecordedRecomputes: the recorded inputs are recomputed, not
// copied: the same inputs judged at a later time, or with a different
// policy, give a different answer.
func TestFoldRecordedRecomputes(t *testing.T) {
	in := Recorded{At: now, Providers: []RecordedProvider{
		{Name: "a", Weight: 1, OnError: providers.OnErrorStale, MaxLastSeen: 24 * time.Hour,
			Outcome: OutcomeMatched, RecordID: "a1", Score: 80, LastSeen: now.Add(-time.Hour)},
		{Name: "b", Weight: 1, OnError: providers.OnErrorZero, Outcome: OutcomeError, Error: "vendor down"},
	}}
	tests := []struct {
		name string
		mod  func(*Recorded)
		want int
	}{
		{"as recorded", func(*Recorded) {}, 40},
		{"a day later the record is stale", func(r *Recorded) { r.At = now.Add(24 * time.Hour) }, 0},
		{"on_error exclude", func(r *Recorded) { r.Providers[1].OnError = providers.OnErrorExclude }, 80},
		{"required and failed", func(r *Recorded) { r.Providers[1].Required = true }, 0},
		{"weight 3", func(r *Recorded) { r.Providers[0].Weight = 3 }, 60},
		{"score over 100 clamps", func(r *Recorded) { r.Providers[0].Score = 300 }, 50},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := in
			r.Providers = append([]RecordedProvider(nil), in.Providers...)
			tc.mod(&r)
			got, err := FoldRecorded("d", r)
			if err != nil {
				t.Fatal(err)
			}
			if got.Score != tc.want {
				t.Errorf("score %d, want %d (%s)", got.Score, tc.want, got.Explain().Decision)
			}
		})
	}
}

func TestFoldRecordedRefuses(t *testing.T) {
	ok := RecordedProvider{Name: "a", Weight: 1, Outcome: OutcomeUnmatched}
	tests := []struct {
		name string
		in   Recorded
		want string
	}{
		{"unknown outcome", Recorded{Providers: []RecordedProvider{{Name: "a", Weight: 1, Outcome: "maybe"}}}, `unknown outcome "maybe"`},
		{"duplicate provider", Recorded{Providers: []RecordedProvider{ok, ok}}, `provider "a" twice`},
		{"zero weight", Recorded{Providers: []RecordedProvider{{Name: "a", Outcome: OutcomeUnmatched}}}, "weight 0"},
		{"unknown s2s source", Recorded{S2SIDFrom: []string{"b"}, Providers: []RecordedProvider{ok}}, `no provider named "b"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FoldRecorded("d", tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want ~%q", err, tc.want)
			}
		})
	}
}

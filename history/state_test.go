package history

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postured/postured/aggregate"
)

func TestDiff(t *testing.T) {
	at := time.Date(2026, 12, 1, 9, 14, 0, 0, time.UTC)
	matched := func(name, id, reason string, score int) ProviderState {
		return ProviderState{Name: name, Outcome: string(aggregate.OutcomeMatched), RecordID: id, Reason: reason, Score: score, LastSeen: at.Add(-time.Hour).Unix()}
	}
	state := func(score int, ps ...ProviderState) State {
		return State{Score: score, Decision: "weighted mean", Providers: ps}
	}
	staleJamf := matched("jamf", "j1", "managed=true fileVault2Status=ALL_ENCRYPTED", 0)
	staleJamf.Expired, staleJamf.LastSeen = true, at.Add(-31*24*time.Hour-time.Hour).Unix()
	tests := []struct {
		name     string
		old, cur State
		want     []string
	}{
		{
			name: "intune compliance",
			old:  state(100, matched("intune", "i1", "complianceState=compliant", 100)),
			cur:  state(0, matched("intune", "i1", "complianceState=noncompliant", 0)),
			want: []string{"intune complianceState compliant -> noncompliant"},
		},
		{
			name: "crowdstrike contained",
			old:  state(80, matched("crowdstrike", "c1", "status=normal zta.overall=80", 80)),
			cur:  state(0, matched("crowdstrike", "c1", "status=contained", 0)),
			want: []string{"crowdstrike status normal -> contained", "crowdstrike zta.overall 80 -> (none)"},
		},
		{
			name: "re-enrolment",
			old:  state(50, matched("jamf", "j1", "managed=true fileVault2Status=NOT_ENCRYPTED", 50)),
			cur:  state(100, matched("jamf", "j2", "managed=true fileVault2Status=ALL_ENCRYPTED", 100)),
			want: []string{"jamf re-enrolled: record j1 -> j2", "jamf fileVault2Status NOT_ENCRYPTED -> ALL_ENCRYPTED"},
		},
		{
			name: "record went stale",
			old:  state(100, matched("jamf", "j1", "managed=true fileVault2Status=ALL_ENCRYPTED", 100)),
			cur:  state(0, staleJamf),
			want: []string{"jamf record stale (last seen 31d)"},
		},
		{
			name: "unmatched",
			old:  state(100, matched("intune", "i1", "complianceState=compliant", 100)),
			cur:  state(0, ProviderState{Name: "intune", Outcome: string(aggregate.OutcomeUnmatched)}),
			want: []string{"intune matched -> unmatched"},
		},
		{
			name: "error to matched names the record",
			old:  state(0, ProviderState{Name: "intune", Outcome: string(aggregate.OutcomeError)}),
			cur:  state(100, matched("intune", "i1", "complianceState=compliant", 100)),
			want: []string{"intune error -> matched (record i1: complianceState=compliant)"},
		},
		{
			name: "not key=value is compared whole",
			old:  state(90, matched("inventory", "a1", "inventory score 90", 90)),
			cur:  state(40, matched("inventory", "a1", "inventory score 40", 40)),
			want: []string{`inventory reason "inventory score 90" -> "inventory score 40"`},
		},
		{
			name: "only the score moved",
			old:  state(90, matched("x", "a1", "k=v", 90)),
			cur:  state(40, matched("x", "a1", "k=v", 40)),
			want: []string{"x score 90 -> 40"},
		},
		{
			name: "unchanged providers are not named",
			old:  state(75, matched("intune", "i1", "complianceState=compliant", 100), matched("jamf", "j1", "managed=true", 50)),
			cur:  state(50, matched("intune", "i1", "complianceState=inGracePeriod", 50), matched("jamf", "j1", "managed=true", 50)),
			want: []string{"intune complianceState compliant -> inGracePeriod"},
		},
		{
			name: "decision only",
			old:  State{Score: 80, Decision: "weighted mean of 1 provider(s)", Providers: []ProviderState{matched("x", "a", "k=v", 80)}},
			cur:  State{Score: 20, Decision: "override: loaner", Providers: []ProviderState{matched("x", "a", "k=v", 80)}},
			want: []string{`decision "weighted mean of 1 provider(s)" -> "override: loaner"`},
		},
		{
			name: "configuration changed",
			old:  state(80, matched("x", "a", "k=v", 80)),
			cur:  state(60, matched("y", "b", "k=v", 60)),
			want: []string{"y added to the configuration", "x removed from the configuration"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Diff(tc.old, tc.cur, at); !slices.Equal(got, tc.want) {
				t.Errorf("Diff:\n got  %q\n want %q", got, tc.want)
			}
		})
	}
}

func TestRecorderNamesExpiredRecords(t *testing.T) {
	at := time.Date(2026, 12, 1, 9, 14, 0, 0, time.UTC)
	store, err := NewMemory(MemoryConfig{MaxDevices: 10, MaxBytes: 1 << 20, MaxChanges: 5, Retention: time.Hour, Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Store: store, MaxLastSeen: map[string]time.Duration{"jamf": 30 * 24 * time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	result := func(score int, lastSeen time.Time) aggregate.Result {
		return aggregate.ResultOf(aggregate.Explanation{DeviceID: "dev", Score: score, Providers: []aggregate.ProviderDetail{{
			Provider: "jamf", Outcome: aggregate.OutcomeMatched, RecordID: "j1", Score: score, Counted: true,
			LastSeen: lastSeen, Reason: "managed=true fileVault2Status=ALL_ENCRYPTED",
		}}})
	}
	ctx := t.Context()
	if err := r.Record(ctx, at.Add(-time.Minute), []aggregate.Result{result(100, at.Add(-29*24*time.Hour))}); err != nil {
		t.Fatal(err)
	}
	// The same record, a day later in the clock's eyes: now over max_last_seen.
	if err := r.Record(ctx, at, []aggregate.Result{result(0, at.Add(-31*24*time.Hour))}); err != nil {
		t.Fatal(err)
	}
	d, ok, err := r.Device(ctx, "dev")
	if err != nil || !ok {
		t.Fatalf("Device: %v %v", ok, err)
	}
	if len(d.Changes) != 1 || d.Changes[0].OldScore != 100 || d.Changes[0].NewScore != 0 ||
		!slices.Equal(d.Changes[0].Causes, []string{"jamf record stale (last seen 31d)"}) {
		t.Errorf("changes %+v", d.Changes)
	}
}

func TestClip(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 5, "abc"},
		{"abcdef", 3, "abc"},
		{"aé", 2, "a"}, // é is two bytes: never cut in half
		{strings.Repeat("x", 300), maxFieldBytes, strings.Repeat("x", maxFieldBytes)},
	} {
		if got := clip(tc.in, tc.n); got != tc.want {
			t.Errorf("clip(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

package auditlog

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/audit"
	"github.com/postured/postured/providers"
	"github.com/postured/postured/server"
)

var t0 = time.Date(2026, 11, 24, 9, 14, 0, 0, time.UTC)

// vendor answers serial lookups from its records, or fails.
type vendor struct {
	recs []providers.Record
	err  error
}

func (v vendor) Lookup(_ context.Context, q providers.Query) ([]providers.Record, error) {
	if v.err != nil {
		return nil, v.err
	}
	if q.Kind != providers.KindSerial {
		return nil, nil
	}
	var out []providers.Record
	for _, r := range v.recs {
		for _, s := range r.Serials {
			for _, want := range q.Values {
				if s == want {
					out = append(out, r)
				}
			}
		}
	}
	return out, nil
}

func vrec(id, serial string, score int, age time.Duration) providers.Record {
	return providers.Record{ID: id, Serials: []string{serial}, Score: score, LastSeen: t0.Add(-age), Reason: "why " + id}
}

// fleet is an engine over three providers with every policy in play, the
// Policy the app would derive from its config, and a batch that exercises
// them: a fresh match, a record past max_last_seen, a failed vendor with
// on_error: zero, a device only the failed vendor was asked about, and one
// with no identifier at all (unmatched_score).
func fleet(t *testing.T) (*aggregate.Engine, Policy, []aggregate.Device) {
	t.Helper()
	intune := vendor{recs: []providers.Record{vrec("i-1", "SER1", 100, time.Hour), vrec("i-2", "SER2", 80, 40*24*time.Hour)}}
	jamf := vendor{recs: []providers.Record{vrec("j-1", "SER1", 60, time.Hour), vrec("j-2", "SER2", 90, time.Hour)}}
	cs := vendor{err: errors.New("falcon: status 503")}
	sources := []aggregate.Source{
		{Name: "intune", Weight: 3, OnError: providers.OnErrorStale, MaxLastSeen: 30 * 24 * time.Hour, Provider: intune},
		{Name: "jamf", Weight: 2, OnError: providers.OnErrorExclude, Provider: jamf},
		{Name: "crowdstrike", Weight: 1, OnError: providers.OnErrorZero, Provider: cs},
	}
	pol := Policy{UnmatchedScore: 7, S2SIDFrom: []string{"jamf"}, Providers: map[string]ProviderPolicy{}}
	for _, s := range sources {
		pol.Providers[s.Name] = ProviderPolicy{Required: s.Required, OnError: s.OnError, MaxLastSeen: s.MaxLastSeen}
	}
	e, err := aggregate.New(aggregate.Config{Sources: sources, Deadline: time.Second, UnmatchedScore: 7, S2SIDFrom: pol.S2SIDFrom, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	devices := []aggregate.Device{
		{ID: "dev-1", Serial: " ser1 ", MAC: "AA-BB-CC-00-11-22", Hostname: "MBP-1.corp.example", Email: "Ann@Example.com"},
		{ID: "dev-2", Serial: "SER2"},
		{ID: "dev-3", Serial: "To be filled by O.E.M.", Hostname: "ghost"},
		{ID: "dev-4"},
	}
	return e, pol, devices
}

func batch(t *testing.T, e *aggregate.Engine, devices []aggregate.Device) server.Batch {
	t.Helper()
	res, stats := e.Evaluate(context.Background(), devices)
	return server.Batch{RequestID: "req-1", At: t0.Add(time.Millisecond), Devices: devices, Results: res, Stats: stats}
}

// TestObserverRecordsAndReplays: one batch through the observer leaves one
// record per device in one verified chain, carrying the normalised
// identifiers, the policies and the answer, and every record replays to
// the answer given.
func TestObserverRecordsAndReplays(t *testing.T) {
	e, pol, devices := fleet(t)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	o, err := New(Config{Log: audit.Config{Path: path}, ConfigHash: "c0ffee", Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	b := batch(t, e, devices)
	o.ObserveBatch(context.Background(), b)
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	sum, err := audit.Verify(context.Background(), path)
	if err != nil || sum.Lines != 4 {
		t.Fatalf("Verify: %+v, %v; want 4 lines", sum, err)
	}
	recs, err := audit.FindAll(context.Background(), []string{path}, t0.Add(time.Hour))
	if err != nil || len(recs) != 4 {
		t.Fatalf("FindAll: %d records, %v", len(recs), err)
	}
	want := map[string]int{"dev-1": 70, "dev-2": 30, "dev-3": 0, "dev-4": 7}
	for i, r := range recs {
		res := b.Results[i]
		if r.DeviceID != res.DeviceID || r.Score != want[r.DeviceID] || r.Score != res.Score || r.S2SID != res.S2SID ||
			r.RequestID != "req-1" || r.ConfigHash != "c0ffee" || !r.Time.Equal(t0) || r.Decision != res.Explain().Decision {
			t.Errorf("record %d: %+v\nresult %+v", i, r, res)
		}
		if r.Policy.UnmatchedScore != 7 || len(r.Policy.S2SIDFrom) != 1 || len(r.Providers) != 3 {
			t.Errorf("record %s: policy %+v, %d providers", r.DeviceID, r.Policy, len(r.Providers))
		}
		rp, err := Replay(r)
		if err != nil {
			t.Fatal(err)
		}
		if len(rp.Differences) > 0 {
			t.Errorf("replay %s: %v", r.DeviceID, rp.Differences)
		}
	}
	d1 := recs[0]
	if got, want := d1.Identifiers, (audit.Identifiers{Serial: "SER1", MAC: "aabbcc001122", Hostname: "mbp-1", Email: "ann@example.com"}); got != want {
		t.Errorf("identifiers %+v, want the normalised %+v", got, want)
	}
	intune, cs := d1.Providers[0], d1.Providers[2]
	if intune.MaxLastSeen != "720h0m0s" || intune.OnError != "stale" || intune.RecordID != "i-1" || intune.Score != 100 ||
		!intune.LastSeen.Equal(t0.Add(-time.Hour)) || intune.Reason != "why i-1" || intune.MatchedOn != "serial" {
		t.Errorf("intune part %+v", intune)
	}
	if cs.Outcome != "error" || cs.OnError != "zero" || !cs.Counted || cs.Error == "" {
		t.Errorf("crowdstrike part %+v", cs)
	}
	if d2 := recs[1].Providers[0]; d2.Score != 0 || d2.RecordScore != 80 || !d2.Counted {
		t.Errorf("dev-2 intune past max_last_seen: %+v, want record score 80, score 0, counted", d2)
	}
	if recs[2].Identifiers != (audit.Identifiers{Hostname: "ghost"}) {
		t.Errorf("placeholder serial recorded: %+v", recs[2].Identifiers)
	}
}

// TestReplayFindsDifferences: a record whose answer or inputs no longer
// agree replays to a difference naming the field.
func TestReplayFindsDifferences(t *testing.T) {
	e, pol, devices := fleet(t)
	o := &Observer{hash: "h", policy: pol}
	b := batch(t, e, devices)
	tests := []struct {
		name string
		mod  func(r *audit.Record)
		want []string
	}{
		{"as recorded", func(*audit.Record) {}, nil},
		{"answer edited", func(r *audit.Record) { r.Score = 99 }, []string{"score: recorded 99, recomputed 70"}},
		{"input edited", func(r *audit.Record) { r.Providers[1].RecordScore = 0 },
			[]string{"score: recorded 70, recomputed 50", "jamf score: recorded 60, recomputed 0"}},
		{"time moved past max_last_seen", func(r *audit.Record) { r.Time = t0.Add(31 * 24 * time.Hour) },
			[]string{"score: recorded 70, recomputed 20", "intune score: recorded 100, recomputed 0"}},
		{"s2s_id edited", func(r *audit.Record) { r.S2SID = "x" }, []string{`s2s_id: recorded "x", recomputed "j-1"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := o.record("req", b.Devices[0], b.Results[0])
			tc.mod(&r)
			rp, err := Replay(r)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(rp.Differences, "\n")
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("differences %q lack %q", got, w)
				}
			}
			if (len(tc.want) == 0) != (len(rp.Differences) == 0) {
				t.Errorf("differences %q, want %q", got, tc.want)
			}
		})
	}
	r := o.record("req", b.Devices[0], b.Results[0])
	r.Providers[0].MaxLastSeen = "a month"
	if _, err := Replay(r); err == nil || !strings.Contains(err.Error(), `provider "intune": max_last_seen`) {
		t.Errorf("bad duration: %v", err)
	}
}

// flaky is a log whose appends fail while fail is set.
type flaky struct {
	mu     sync.Mutex
	fail   bool
	opens  int
	closes int
	lines  int
}

func (f *flaky) Append(_ context.Context, rs ...audit.Record) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return errors.New("write /var/lib/postured/audit.jsonl: no space left on device")
	}
	f.lines += len(rs)
	return nil
}

func (f *flaky) Head() (uint64, string) { return uint64(f.lines), "" }

func (f *flaky) Close() error { f.closes++; return nil }

// TestObserverFailsOpen: a write that fails leaves the batch answered (the
// observer returns nothing to fail it with), logs one error for the batch,
// counts it, shows it in the status, and the next batch reopens the log and
// clears the status.
func TestObserverFailsOpen(t *testing.T) {
	e, pol, devices := fleet(t)
	f := &flaky{}
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	now := t0
	o, err := New(Config{
		Open:   func() (Appender, error) { f.opens++; return f, nil },
		Policy: pol, Logger: slog.New(slog.NewTextHandler(&logs, nil)), Registerer: reg,
		Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	b := batch(t, e, devices)
	o.ObserveBatch(context.Background(), b)
	if st := o.Status(); !st.Ready || st.LastError != "" || !st.LastSuccess.Equal(t0) || st.Records != 4 {
		t.Fatalf("healthy status %+v", st)
	}

	f.fail = true
	now = t0.Add(time.Minute)
	o.ObserveBatch(context.Background(), b)
	o.ObserveBatch(context.Background(), b)
	if n := strings.Count(logs.String(), "audit log write failed"); n != 2 {
		t.Errorf("%d error lines for 2 failed batches, want one each:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "request_id=req-1") || !strings.Contains(logs.String(), "devices=4") {
		t.Errorf("error line lacks the batch: %s", logs.String())
	}
	if got := testutil.ToFloat64(o.errs); got != 2 {
		t.Errorf("postured_audit_errors_total = %v, want 2", got)
	}
	if n, err := testutil.GatherAndCount(reg, "postured_audit_errors_total"); err != nil || n != 1 {
		t.Errorf("metric not registered: %d, %v", n, err)
	}
	st := o.Status()
	if !st.Ready || !strings.Contains(st.LastError, "no space left on device") || !st.LastSuccess.Equal(t0) {
		t.Errorf("failing status %+v: want ready, the error, and the last success", st)
	}
	if f.opens != 2 || f.closes != 2 {
		t.Errorf("opens %d closes %d: want each failure to close the log and the next batch to reopen it", f.opens, f.closes)
	}

	f.fail = false
	now = t0.Add(2 * time.Minute)
	o.ObserveBatch(context.Background(), b)
	if st := o.Status(); st.LastError != "" || !st.LastSuccess.Equal(now) {
		t.Errorf("recovered status %+v", st)
	}
	if f.lines != 8 || f.opens != 3 {
		t.Errorf("%d lines written after %d opens, want the first and last batches, the last after a reopen", f.lines, f.opens)
	}
}

func TestNewFailsWhenTheLogCannotOpen(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New(Config{Log: audit.Config{Path: filepath.Join(blocker, "audit.jsonl")}})
	if err == nil || !strings.HasPrefix(err.Error(), "auditlog: audit: open:") {
		t.Fatalf("New under a file: %v", err)
	}
}

// TestReplayAppliesAdjustments: overrides and hysteresis cannot be
// recomputed from the log (they depend on state it does not hold), so
// replay applies the recorded ones to the recomputed fold: the final score
// is reproduced, and an adjustment that does not start from the fold is a
// difference.
func TestReplayAppliesAdjustments(t *testing.T) {
	e, pol, devices := fleet(t)
	o := &Observer{hash: "h", policy: pol}
	b := batch(t, e, devices)
	tests := []struct {
		name      string
		adjust    []aggregate.Adjustment
		mod       func(r *audit.Record)
		wantScore int
		want      []string
	}{
		{name: "override", adjust: []aggregate.Adjustment{{Kind: "override", From: 70, To: 100, Note: "loaner, ticket 123"}}, wantScore: 100},
		{name: "hysteresis then override", adjust: []aggregate.Adjustment{
			{Kind: "hysteresis", From: 70, To: 90, Note: "held"}, {Kind: "override", From: 90, To: 100, Note: "loaner"},
		}, wantScore: 100},
		{name: "a note that changed nothing", adjust: []aggregate.Adjustment{{Kind: "hysteresis", From: 70, To: 70, Note: "contained: not held"}}, wantScore: 70},
		{name: "adjustment edited", adjust: []aggregate.Adjustment{{Kind: "override", From: 70, To: 100}},
			mod: func(r *audit.Record) { r.Adjustments[0].From = 60 }, wantScore: 100,
			want: []string{"adjustment 1 (override) from: recorded 60, recomputed 70"}},
		{name: "adjustment dropped", adjust: []aggregate.Adjustment{{Kind: "override", From: 70, To: 100}},
			mod: func(r *audit.Record) { r.Adjustments = nil }, wantScore: 70,
			want: []string{"score: recorded 100, recomputed 70"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := b.Results[0] // a copy: its adjustments are this case's
			for _, a := range tc.adjust {
				res.Adjust(a)
			}
			r := o.record("req", b.Devices[0], res)
			if len(r.Adjustments) != len(tc.adjust) || r.Score != res.Score {
				t.Fatalf("recorded adjustments %+v, score %d; want %d adjustments, score %d", r.Adjustments, r.Score, len(tc.adjust), res.Score)
			}
			if tc.mod != nil {
				tc.mod(&r)
			}
			rp, err := Replay(r)
			if err != nil {
				t.Fatal(err)
			}
			if rp.Recomputed.Score != tc.wantScore {
				t.Errorf("recomputed %d, want %d", rp.Recomputed.Score, tc.wantScore)
			}
			if got := strings.Join(rp.Differences, "\n"); got != strings.Join(tc.want, "\n") {
				t.Errorf("differences %q, want %q", got, tc.want)
			}
		})
	}
}

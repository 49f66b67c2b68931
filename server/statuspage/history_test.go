package statuspage

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/history"
	"github.com/postured/postured/server"
)

// fakeHistory answers one device's history, or fails.
type fakeHistory struct {
	devices map[string]history.Device
	err     error
	asked   []string
}

func (f *fakeHistory) Device(_ context.Context, id string) (history.Device, bool, error) {
	f.asked = append(f.asked, id)
	if f.err != nil {
		return history.Device{}, false, f.err
	}
	d, ok := f.devices[id]
	return d, ok, nil
}

func newHistoryPage(t *testing.T, ex server.Explainer, h server.HistoryReader) *Page {
	t.Helper()
	p, err := New(Config{Recorder: newRecorder(t, RecorderConfig{}), Explainer: ex, History: h, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPageHistory(t *testing.T) {
	changed := history.Device{DeviceID: "dev-1", Score: 20, SeenAt: t0.Add(-time.Minute), Changes: []history.Change{
		{At: t0.Add(-2 * time.Minute), OldScore: 90, NewScore: 20, Causes: []string{"intune complianceState compliant -> noncompliant", "crowdstrike status normal -> contained"}},
		{At: t0.Add(-time.Hour), OldScore: 60, NewScore: 90, Causes: []string{"jamf record stale (last seen 31d)"}},
	}}
	steady := history.Device{DeviceID: "dev-2", Score: 80, SeenAt: t0.Add(-time.Minute)}
	store := map[string]history.Device{"dev-1": changed, "dev-2": steady}
	tests := []struct {
		name      string
		hist      *fakeHistory // nil: history disabled
		query     string
		want      []string // in this order
		wantNot   []string
		wantAsked string
	}{
		{name: "changes, newest first", hist: &fakeHistory{devices: store}, query: "serial=S1&device_id=dev-1", wantAsked: "dev-1",
			want: []string{
				`<h3>Score history</h3>`,
				`Last answered 20 at 2026-12-01 09:29:00Z`,
				`<tr class="change"><td class="time">2026-12-01 09:28:00Z</td><td class="num">90 -&gt; 20</td><td>intune complianceState compliant -&gt; noncompliant<br>crowdstrike status normal -&gt; contained</td></tr>`,
				`<tr class="change"><td class="time">2026-12-01 08:30:00Z</td><td class="num">60 -&gt; 90</td><td>jamf record stale (last seen 31d)</td></tr>`,
			},
			wantNot: []string{"No change since first seen"}},
		{name: "seen, never changed", hist: &fakeHistory{devices: store}, query: "serial=S1&device_id=dev-2", wantAsked: "dev-2",
			want:    []string{`Last answered 80 at 2026-12-01 09:29:00Z`, `<p id="history-note">No change since first seen.</p>`},
			wantNot: []string{`<table id="history">`}},
		{name: "never seen", hist: &fakeHistory{devices: store}, query: "serial=S1&device_id=dev-9", wantAsked: "dev-9",
			want:    []string{`Device <code>dev-9</code> not seen in any batch`},
			wantNot: []string{`<table id="history">`, "No change since first seen"}},
		{name: "no device_id given", hist: &fakeHistory{devices: store}, query: "serial=S1",
			want:    []string{`<p class="muted" id="history-note">Give the device_id to see this device&#39;s score history.</p>`},
			wantNot: []string{`<table id="history">`}},
		{name: "store fails", hist: &fakeHistory{err: errors.New("redis: connection refused")}, query: "serial=S1&device_id=dev-1", wantAsked: "dev-1",
			want:    []string{`id="device-score">73</span>`, `<p class="muted" id="history-note">Score history unavailable: the history store could not be read (see the log).</p>`},
			wantNot: []string{`<table id="history">`, "connection refused"}},
		{name: "history disabled", query: "serial=S1&device_id=dev-1",
			want:    []string{`id="device-score">73</span>`},
			wantNot: []string{"Score history", "history-note"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h server.HistoryReader
			if tc.hist != nil {
				h = tc.hist
			}
			w := get(newHistoryPage(t, &fakeExplainer{}, h), tc.query)
			if w.Code != 200 {
				t.Fatalf("status %d, want 200", w.Code)
			}
			body := w.Body.String()
			at := 0
			for _, s := range tc.want {
				i := strings.Index(body[at:], s)
				if i < 0 {
					t.Fatalf("page lacks, after byte %d,\n%s\n---\n%s", at, s, body)
				}
				at += i + len(s)
			}
			for _, s := range tc.wantNot {
				if strings.Contains(body, s) {
					t.Errorf("page has %q:\n%s", s, body)
				}
			}
			if tc.hist != nil {
				var want []string
				if tc.wantAsked != "" {
					want = []string{tc.wantAsked}
				}
				if strings.Join(tc.hist.asked, ",") != strings.Join(want, ",") {
					t.Errorf("history asked for %q, want %q", tc.hist.asked, want)
				}
			}
		})
	}
}

// A cause carries vendor text; it must not become markup.
func TestPageHistoryEscapes(t *testing.T) {
	h := &fakeHistory{devices: map[string]history.Device{xss: {DeviceID: xss, Score: 10, SeenAt: t0, Changes: []history.Change{
		{At: t0, OldScore: 90, NewScore: 10, Causes: []string{"intune complianceState compliant -> " + xss}},
	}}}}
	w := get(newHistoryPage(t, &fakeExplainer{}, h), "serial=S1&device_id="+url.QueryEscape(xss))
	body := w.Body.String()
	if strings.Contains(body, "<script") {
		t.Fatalf("markup injected:\n%s", body)
	}
	if !strings.Contains(body, "compliant -&gt; &lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;</td></tr>") {
		t.Errorf("the cause is not shown escaped:\n%s", body)
	}
}

// adjustingExplainer explains with the adjustments package adjust records.
type adjustingExplainer struct {
	fakeExplainer
	adj []aggregate.Adjustment
}

func (a *adjustingExplainer) Explain(ctx context.Context, d aggregate.Device) aggregate.Explanation {
	ex := a.fakeExplainer.Explain(ctx, d)
	ex.Adjustments = a.adj
	return ex
}

func TestPageAdjustments(t *testing.T) {
	tests := []struct {
		name string
		adj  []aggregate.Adjustment
		want []string
	}{
		{"none", nil, nil},
		{"override", []aggregate.Adjustment{{Kind: "override", From: 40, To: 100, Note: "config override on serial until 2026-12-05T00:00:00Z: loaner, ticket 123 " + xss}},
			[]string{`<tr class="adjustment" data-kind="override"><td>override</td><td class="num">40 -&gt; 100</td><td>config override on serial until 2026-12-05T00:00:00Z: loaner, ticket 123 &lt;script&gt;`}},
		{"hysteresis held, then a note", []aggregate.Adjustment{
			{Kind: "hysteresis", From: 30, To: 85, Note: "held at the last good score 85: 30 is below threshold 50 (1 of 3 evaluations)"},
			{Kind: "hysteresis", From: 85, To: 85, Note: "not applied"},
		}, []string{
			`<td>hysteresis</td><td class="num">30 -&gt; 85</td><td>held at the last good score 85: 30 is below threshold 50 (1 of 3 evaluations)</td>`,
			`<td>hysteresis</td><td class="num">85 (unchanged)</td><td>not applied</td>`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := get(newHistoryPage(t, &adjustingExplainer{adj: tc.adj}, nil), "serial=S1").Body.String()
			if strings.Contains(body, "<script") {
				t.Fatalf("markup injected:\n%s", body)
			}
			if got := strings.Contains(body, `<table id="adjustments">`); got != (tc.adj != nil) {
				t.Errorf("adjustments table shown: %v, want %v", got, tc.adj != nil)
			}
			for _, s := range tc.want {
				if !strings.Contains(body, s) {
					t.Errorf("page lacks\n%s\n---\n%s", s, body)
				}
			}
		})
	}
}

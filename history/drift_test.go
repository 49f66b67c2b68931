package history_test

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/history"
	"github.com/postured/postured/internal/app"
	"github.com/postured/postured/internal/mockset"
)

// TestDriftIsExplained runs the demo configuration over the vendor mocks,
// lets the fleet drift, and checks the history against the two sets of
// explanations: exactly the devices whose score moved have one change,
// with the right scores, naming exactly the providers whose record moved
// and every scoring field that did.
func TestDriftIsExplained(t *testing.T) {
	ctx := t.Context()
	set, err := mockset.New(300, 11, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	mocksURL := set.Serve(t)
	text, err := mockset.DemoConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := app.Parse(text, app.Registry(), mockset.DemoEnv(mocksURL, "127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	maxLastSeen := map[string]time.Duration{}
	for _, pc := range cfg.Providers.Configs {
		maxLastSeen[pc.Base().Name] = time.Duration(pc.Base().MaxLastSeen)
	}
	store, err := history.NewMemory(history.MemoryConfig{MaxDevices: 1000, MaxBytes: 8 << 20, MaxChanges: 20, Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := history.New(history.Config{Store: store, MaxLastSeen: maxLastSeen})
	if err != nil {
		t.Fatal(err)
	}
	var devices []aggregate.Device
	for _, d := range set.Fleet.Batch() {
		devices = append(devices, aggregate.Device{ID: d.DeviceID, Serial: d.SerialNumber, MAC: d.MACAddress, Hostname: d.Hostname, Email: d.Email})
	}
	// Each cycle is answered by a fresh postured (synced, empty cache), so
	// every vendor is asked about the fleet as it is now.
	cycle := func() []aggregate.Result {
		t.Helper()
		a, err := app.Build(cfg, app.Registry(), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		a.SyncNow(ctx)
		res, _ := a.Engine().Evaluate(ctx, devices)
		if err := rec.Record(ctx, time.Now(), res); err != nil {
			t.Fatal(err)
		}
		return res
	}

	before := cycle()
	set.Drift(15, time.Now())
	after := cycle()

	moved := 0
	for i, d := range devices {
		h, ok, err := rec.Device(ctx, d.ID)
		if err != nil || !ok {
			t.Fatalf("%s: not in the history: %v", d.ID, err)
		}
		old, cur := before[i], after[i]
		if h.Score != cur.Score {
			t.Errorf("%s: score %d, answered %d", d.ID, h.Score, cur.Score)
		}
		if old.Score == cur.Score {
			if len(h.Changes) != 0 {
				t.Errorf("%s: score stayed %d, yet changes %+v", d.ID, cur.Score, h.Changes)
			}
			continue
		}
		moved++
		if len(h.Changes) != 1 || h.Changes[0].OldScore != old.Score || h.Changes[0].NewScore != cur.Score {
			t.Errorf("%s: %d -> %d recorded as %+v", d.ID, old.Score, cur.Score, h.Changes)
			continue
		}
		checkCauses(t, d.ID, old.Explain(), cur.Explain(), h.Changes[0].Causes)
		if testing.Verbose() {
			t.Logf("%s %d -> %d: %q", d.ID, old.Score, cur.Score, h.Changes[0].Causes)
		}
	}
	if moved == 0 {
		t.Fatal("the drift moved no score: nothing was checked")
	}
	t.Logf("%d of %d devices changed score", moved, len(devices))
}

// checkCauses compares causes with what the two explanations say moved.
func checkCauses(t *testing.T, id string, old, cur aggregate.Explanation, causes []string) {
	t.Helper()
	var want, named []string
	for _, c := range causes {
		named = append(named, strings.Fields(c)[0])
	}
	for i, p := range cur.Providers {
		o := old.Providers[i]
		if o.Outcome == p.Outcome && o.RecordID == p.RecordID && o.Reason == p.Reason && o.Score == p.Score {
			continue
		}
		want = append(want, p.Provider)
		if o.RecordID != p.RecordID && o.RecordID != "" && p.RecordID != "" {
			need(t, id, causes, fmt.Sprintf("%s re-enrolled: record %s -> %s", p.Provider, o.RecordID, p.RecordID))
		}
		if o.Outcome != p.Outcome || o.Reason == p.Reason {
			continue
		}
		// Every key=value the new reason carries and the old one did not
		// is named, with the value it had.
		oldKV := map[string]string{}
		for _, f := range strings.Fields(o.Reason) {
			k, v, _ := strings.Cut(f, "=")
			oldKV[k] = v
		}
		for _, f := range strings.Fields(p.Reason) {
			k, v, _ := strings.Cut(f, "=")
			if was, ok := oldKV[k]; !ok || was != v {
				if !ok {
					was = "(none)"
				}
				need(t, id, causes, fmt.Sprintf("%s %s %s -> %s", p.Provider, k, was, v))
			}
		}
	}
	if len(want) == 0 {
		// No provider moved: the cause must be the decision.
		want = []string{"decision"}
	}
	if !sameSet(named, want) {
		t.Errorf("%s: causes %q name %q, want %q", id, causes, named, want)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Compact(slices.Sorted(slices.Values(a))), slices.Compact(slices.Sorted(slices.Values(b)))
	return slices.Equal(a, b)
}

func need(t *testing.T, id string, causes []string, want string) {
	t.Helper()
	if !slices.Contains(causes, want) {
		t.Errorf("%s: causes %q lack %q", id, causes, want)
	}
}

package adjust

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/postured/postured/aggregate"
)

func intp(v int) *int { return &v }

func TestSpecParse(t *testing.T) {
	until := "2026-12-01T00:00:00Z"
	tests := []struct {
		name string
		spec Spec
		want Override
		errs []Problem
	}{
		{"serial, normalised", Spec{Serial: " c02xk1zzjgh5 ", Score: intp(100), Until: until, Reason: "loaner, ticket 123"},
			Override{Kind: KindSerial, Value: "C02XK1ZZJGH5", Score: 100, Until: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), Reason: "loaner, ticket 123"}, nil},
		{"email, normalised", Spec{Email: "J.Doe@Example.com", Score: intp(0), Until: "2026-12-01T01:00:00+01:00", Reason: "r"},
			Override{Kind: KindEmail, Value: "j.doe@example.com", Score: 0, Until: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), Reason: "r"}, nil},
		{"device id", Spec{DeviceID: "dev-1", Score: intp(70), Until: until, Reason: "r"},
			Override{Kind: KindDeviceID, Value: "dev-1", Score: 70, Until: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), Reason: "r"}, nil},
		{"no selector", Spec{Score: intp(100), Until: until, Reason: "r"}, Override{},
			[]Problem{{"", "needs exactly one of serial, device_id, email"}}},
		{"two selectors", Spec{Serial: "S1", Email: "a@b.c", Score: intp(100), Until: until, Reason: "r"}, Override{},
			[]Problem{{"", "needs exactly one of serial, device_id, email, got serial and email"}}},
		{"placeholder serial", Spec{Serial: "To be filled by O.E.M.", Score: intp(100), Until: until, Reason: "r"}, Override{},
			[]Problem{{"serial", `"To be filled by O.E.M." is not a usable serial (blank, a placeholder or over 256 bytes)`}}},
		{"bad email", Spec{Email: "nobody", Score: intp(100), Until: until, Reason: "r"}, Override{},
			[]Problem{{"email", `"nobody" is not an email address`}}},
		{"everything missing but the selector", Spec{Serial: "S1"}, Override{}, []Problem{
			{"score", "is required (0..100)"},
			{"until", "is required: when the override ends (RFC 3339, e.g. 2026-12-01T00:00:00Z)"},
			{"reason", "is required: say why (a ticket, a loaner)"},
		}},
		{"score out of range, bad time, blank reason", Spec{Serial: "S1", Score: intp(101), Until: "tomorrow", Reason: "  "}, Override{}, []Problem{
			{"score", "must be 0..100, got 101"},
			{"until", `"tomorrow" is not an RFC 3339 time (e.g. 2026-12-01T00:00:00Z)`},
			{"reason", "is required: say why (a ticket, a loaner)"},
		}},
		{"negative score", Spec{Serial: "S1", Score: intp(-1), Until: until, Reason: "r"}, Override{}, []Problem{{"score", "must be 0..100, got -1"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, probs := tc.spec.Parse()
			if len(probs) != len(tc.errs) {
				t.Fatalf("problems %+v, want %+v", probs, tc.errs)
			}
			for i := range probs {
				if probs[i] != tc.errs[i] {
					t.Errorf("problem %d: %+v, want %+v", i, probs[i], tc.errs[i])
				}
			}
			if got != tc.want {
				t.Errorf("override %+v, want %+v", got, tc.want)
			}
		})
	}
}

// lister is a fixed set of runtime overrides, or a failing store.
type lister struct {
	overrides []Override
	err       error
}

func (l lister) List(context.Context) ([]Override, error) { return l.overrides, l.err }

func TestOverrides(t *testing.T) {
	clk := newClock()
	until := clk.Now().Add(time.Hour)
	cfgOverrides := []Override{
		{Kind: KindSerial, Value: "SERIAL1", Score: 100, Until: until, Reason: "loaner, ticket 123"},
		{Kind: KindEmail, Value: "ann@example.com", Score: 60, Until: until, Reason: "exec travel"},
		{Kind: KindDeviceID, Value: "dev-3", Score: 90, Until: until, Reason: "device id rule"},
		{Kind: KindSerial, Value: "SERIAL3", Score: 10, Until: until, Reason: "serial rule"},
		{Kind: KindSerial, Value: "OLD", Score: 100, Until: clk.Now().Add(-time.Second), Reason: "expired"},
		{Kind: KindSerial, Value: "BOTH", Score: 70, Until: until, Reason: "config says 70"},
	}
	runtime := lister{overrides: []Override{
		{Kind: KindSerial, Value: "BOTH", Score: 80, Until: until, Reason: "help desk says 80"},
		{Kind: KindDeviceID, Value: "dev-rt", Score: 55, Until: until, Reason: "runtime only"},
	}}
	tests := []struct {
		name    string
		device  aggregate.Device
		runtime OverrideLister
		want    int
		note    string // "" wants no adjustment
	}{
		{"by serial, any notation", aggregate.Device{ID: "d1", Serial: "serial1"}, nil, 100, "config override on serial until 2026-11-30T10:00:00Z: loaner, ticket 123"},
		{"by email", aggregate.Device{ID: "d2", Email: "Ann@Example.com"}, nil, 60, "config override on email until 2026-11-30T10:00:00Z: exec travel"},
		{"by device_id", aggregate.Device{ID: "dev-3"}, nil, 90, "device id rule"},
		{"device_id beats serial", aggregate.Device{ID: "dev-3", Serial: "SERIAL3"}, nil, 90, "device id rule"},
		{"serial beats email", aggregate.Device{ID: "d4", Serial: "SERIAL1", Email: "ann@example.com"}, nil, 100, "loaner"},
		{"expired does not apply", aggregate.Device{ID: "d5", Serial: "OLD"}, nil, 40, ""},
		{"no match", aggregate.Device{ID: "d6", Serial: "OTHER"}, nil, 40, ""},
		{"runtime beats config on the same selector", aggregate.Device{ID: "d7", Serial: "BOTH"}, runtime, 80, "runtime override on serial until 2026-11-30T10:00:00Z: help desk says 80"},
		{"runtime by device_id", aggregate.Device{ID: "dev-rt"}, runtime, 55, "runtime only"},
		{"runtime store down: config still applies", aggregate.Device{ID: "d8", Serial: "BOTH"}, lister{err: errors.New("redis down")}, 70, "config says 70"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs syncBuffer
			eng := newFakeEngine()
			eng.set(tc.device.ID, 40, false)
			a := newAdjuster(t, Config{Overrides: cfgOverrides, Runtime: tc.runtime, Logger: logger(&logs), Now: clk.Now})
			r := one(t, a.Engine(eng, true), tc.device)
			if r.Score != tc.want {
				t.Errorf("score %d, want %d", r.Score, tc.want)
			}
			adj := r.Explain().Adjustments
			if tc.note == "" {
				if len(adj) != 0 || strings.Contains(logs.String(), "override applied") {
					t.Errorf("adjustments %+v, log %s: want none", adj, logs.String())
				}
				return
			}
			if len(adj) != 1 || adj[0].Kind != KindOverride || adj[0].From != 40 || adj[0].To != tc.want || !strings.Contains(adj[0].Note, tc.note) {
				t.Fatalf("adjustments %+v, want one override 40 -> %d noting %q", adj, tc.want, tc.note)
			}
			line := logs.String()
			for _, w := range []string{"level=INFO msg=\"override applied\"", "device_id=" + tc.device.ID, "reason=", tc.note[strings.LastIndex(tc.note, ": ")+2:]} {
				if !strings.Contains(line, w) {
					t.Errorf("log %q lacks %q", line, w)
				}
			}
			for _, leak := range []string{tc.device.Serial, tc.device.Email} {
				if leak != "" && strings.Contains(line, leak) {
					t.Errorf("log %q names the device's identifier %q", line, leak)
				}
			}
		})
	}
}

func TestOverrideExpiresOnItsOwn(t *testing.T) {
	clk := newClock()
	eng := newFakeEngine()
	eng.set("d1", 30, false)
	a := newAdjuster(t, Config{Overrides: []Override{{Kind: KindSerial, Value: "S1", Score: 100, Until: clk.Now().Add(time.Hour), Reason: "r"}}, Now: clk.Now})
	e := a.Engine(eng, true)
	d := aggregate.Device{ID: "d1", Serial: "S1"}
	for _, tc := range []struct {
		after time.Duration
		want  int
	}{{0, 100}, {time.Hour - time.Second, 100}, {time.Second, 30}, {time.Hour, 30}} {
		clk.Advance(tc.after)
		if got := one(t, e, d).Score; got != tc.want {
			t.Errorf("at %s: score %d, want %d", clk.Now().Format(time.RFC3339), got, tc.want)
		}
	}
}

func TestOverrideWinsOverHysteresis(t *testing.T) {
	clk := newClock()
	eng := newFakeEngine()
	a := newAdjuster(t, Config{
		Overrides:  []Override{{Kind: KindDeviceID, Value: "d1", Score: 20, Until: clk.Now().Add(time.Hour), Reason: "quarantine, ticket 9"}},
		Hysteresis: &HysteresisConfig{Threshold: 50, HoldEvaluations: 3}, States: memoryStates(t), Now: clk.Now,
	})
	e := a.Engine(eng, true)
	d := aggregate.Device{ID: "d1"}
	// The state follows the folded score under the override: good at 90.
	eng.set("d1", 90, false)
	one(t, e, d)
	eng.set("d1", 10, false)
	r := one(t, e, d)
	if r.Score != 20 || len(r.Explain().Adjustments) != 1 || r.Explain().Adjustments[0].Kind != KindOverride {
		t.Fatalf("score %d, adjustments %+v: want the override's 20 alone", r.Score, r.Explain().Adjustments)
	}
	// Under the override the state went on: low evaluation 2 of 3 once it
	// ends, not 1.
	clk.Advance(time.Hour)
	r = one(t, e, d)
	checkStep(t, 0, r, step{folded: 10, want: 90, note: "low evaluation 2 of hold_evaluations 3"})
}

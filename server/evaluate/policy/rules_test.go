package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postured/postured/internal/conf"
)

// policyOf compiles one allow rule with the given conditions.
func policyOf(t *testing.T, w When) *Policy {
	t.Helper()
	p, err := New(Config{Rules: []Rule{{Name: "r", Action: "allow", When: w}}, PostureDeadline: conf.Duration(time.Second)}, postures{
		"d-90": {Score: 90, Providers: map[string]int{"crowdstrike": 70, "intune": 100}, At: t0.Add(-2 * time.Minute)},
		"d-50": {Score: 50, Providers: map[string]int{"intune": 0}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConditions(t *testing.T) {
	tests := []struct {
		name     string
		when     When
		identity string
		want     bool
		unknown  bool
		reason   string
	}{
		{"email in", When{Email: &EmailMatch{In: []string{"Bob@Example.com"}}}, `{"email":"bob@EXAMPLE.com"}`, true, false, "matches"},
		{"email not in", When{Email: &EmailMatch{In: []string{"bob@example.com"}}}, `{"email":"eve@example.com"}`, false, false, "is not in"},
		{"email suffix", When{Email: &EmailMatch{Suffix: []string{"@example.com"}}}, `{"email":"ann@example.com"}`, true, false, ""},
		{"email suffix is not a substring trap", When{Email: &EmailMatch{Suffix: []string{"@example.com"}}}, `{"email":"ann@evilexample.com"}`, false, false, "ends with none"},
		{"email subdomain suffix", When{Email: &EmailMatch{Suffix: []string{".example.com"}}}, `{"email":"ann@eu.example.com"}`, true, false, ""},
		{"email not_in", When{Email: &EmailMatch{NotIn: []string{"eve@example.com"}}}, `{"email":"EVE@example.com"}`, false, false, "is in not_in"},
		{"email missing", When{Email: &EmailMatch{NotIn: []string{"eve@example.com"}}}, `{}`, false, true, "has no email"},
		{"email not a string", When{Email: &EmailMatch{Suffix: []string{"@x.com"}}}, `{"email":{"a":1}}`, false, true, ""},
		{"domain", When{EmailDomain: &StringMatch{In: []string{"Example.com"}}}, `{"email":"a@example.COM"}`, true, false, ""},
		{"domain exact, no subdomain", When{EmailDomain: &StringMatch{In: []string{"example.com"}}}, `{"email":"a@eu.example.com"}`, false, false, ""},
		{"domain of odd email", When{EmailDomain: &StringMatch{In: []string{"example.com"}}}, `{"email":"example.com"}`, false, true, ""},
		{"domain takes the last @", When{EmailDomain: &StringMatch{In: []string{"example.com"}}}, `{"email":"a@evil.com@example.com"}`, true, false, ""},
		{"groups any", When{Groups: &GroupMatch{Any: []string{"a", "b"}}}, `{"groups":["x","b"]}`, true, false, ""},
		{"groups any is case-sensitive", When{Groups: &GroupMatch{Any: []string{"admins"}}}, `{"groups":["Admins"]}`, false, false, "member of none"},
		{"groups all", When{Groups: &GroupMatch{All: []string{"a", "b"}}}, `{"groups":["a",{"name":"b"}]}`, true, false, ""},
		{"groups all missing one", When{Groups: &GroupMatch{All: []string{"a", "b"}}}, `{"groups":["a"]}`, false, false, `not a member of "b"`},
		{"groups none", When{Groups: &GroupMatch{None: []string{"contractors"}}}, `{"groups":[]}`, true, false, ""},
		{"groups none but member", When{Groups: &GroupMatch{None: []string{"contractors"}}}, `{"groups":[{"id":"contractors"}]}`, false, false, "excluded"},
		{"groups none, groups absent: unknown", When{Groups: &GroupMatch{None: []string{"contractors"}}}, `{"email":"a@b.c"}`, false, true, "no groups"},
		{"group object: name wins over id", When{Groups: &GroupMatch{Any: []string{"g-1"}}}, `{"groups":[{"id":"g-1","name":"Admins"}]}`, false, false, ""},
		{"group object: numeric id", When{Groups: &GroupMatch{Any: []string{"12345678901234567890"}}}, `{"groups":[{"id":12345678901234567890}]}`, true, false, ""},
		{"idp type", When{IdPType: &StringMatch{In: []string{"azureAD"}}}, `{"idp":{"id":"x","type":"azuread"}}`, true, false, ""},
		{"idp missing", When{IdPType: &StringMatch{NotIn: []string{"onetimepin"}}}, `{"idp":"okta"}`, false, true, ""},
		{"country in", When{Country: &StringMatch{In: []string{"kp"}}}, `{"geo":{"country":"KP"}}`, true, false, ""},
		{"country not_in", When{Country: &StringMatch{NotIn: []string{"KP"}}}, `{"geo":{"country":"US"}}`, true, false, ""},
		{"country not_in, missing: unknown", When{Country: &StringMatch{NotIn: []string{"KP"}}}, `{"geo":{}}`, false, true, "has no country"},
		{"is_warp", When{IsWarp: ptr(true)}, `{"is_warp":true}`, true, false, ""},
		{"is_warp string", When{IsWarp: ptr(false)}, `{"is_warp":"false"}`, true, false, ""},
		{"is_warp wrong", When{IsWarp: ptr(true)}, `{"is_warp":false}`, false, false, "want true"},
		{"is_warp missing", When{IsWarp: ptr(false)}, `{}`, false, true, ""},
		{"device present", When{DeviceID: &DeviceIDMatch{Present: ptr(true)}}, `{"device_id":"d-1"}`, true, false, ""},
		{"device absent wanted", When{DeviceID: &DeviceIDMatch{Present: ptr(false)}}, `{"device_id":""}`, true, false, ""},
		{"device present, unwanted", When{DeviceID: &DeviceIDMatch{Present: ptr(false)}}, `{"device_id":"d-1"}`, false, false, ""},
		{"score min", When{Score: &ScoreRange{Min: ptr(80)}}, `{"device_id":"d-90"}`, true, false, `device "d-90" scored 90, within min 80, computed 2m0s ago`},
		{"score min equal", When{Score: &ScoreRange{Min: ptr(90)}}, `{"device_id":"d-90"}`, true, false, ""},
		{"score below", When{Score: &ScoreRange{Min: ptr(80)}}, `{"device_id":"d-50"}`, false, false, "scored 50, below min 80"},
		{"score max", When{Score: &ScoreRange{Max: ptr(60)}}, `{"device_id":"d-90"}`, false, false, "above max 60"},
		{"score no device_id", When{Score: &ScoreRange{Min: ptr(0)}}, `{"email":"a@b.c"}`, false, true, "no device_id"},
		{"score device_id not a string", When{Score: &ScoreRange{Min: ptr(0)}}, `{"device_id":7}`, false, true, "no device_id"},
		{"score no posture data", When{Score: &ScoreRange{Min: ptr(0)}}, `{"device_id":"d-new"}`, false, true, `no posture data for device "d-new"`},
		{"provider score", When{ProviderScores: map[string]ScoreRange{"crowdstrike": {Min: ptr(50)}, "intune": {Min: ptr(100)}}}, `{"device_id":"d-90"}`, true, false, ""},
		{"provider score low", When{ProviderScores: map[string]ScoreRange{"intune": {Min: ptr(1)}}}, `{"device_id":"d-50"}`, false, false, `provider "intune" on device "d-50" scored 0, below min 1`},
		{"provider did not count", When{ProviderScores: map[string]ScoreRange{"crowdstrike": {Max: ptr(100)}}}, `{"device_id":"d-50"}`, false, true, `provider "crowdstrike" did not score`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := parseIdentity([]byte(tc.identity))
			if err != nil {
				t.Fatal(err)
			}
			d := policyOf(t, tc.when).explain(t.Context(), id, t0)
			if d.Allow != tc.want {
				t.Errorf("allow %v, want %v: %+v", d.Allow, tc.want, d.Rules)
			}
			var c ConditionTrace
			for _, ct := range d.Rules[0].Conditions {
				if !ct.Held || tc.want {
					c = ct
					break
				}
			}
			if c.Unknown != tc.unknown || !strings.Contains(c.Reason, tc.reason) {
				t.Errorf("condition %+v: want unknown %v, reason containing %q", c, tc.unknown, tc.reason)
			}
		})
	}
}

// TestTimeWindows uses a fixed clock, never the wall clock.
func TestTimeWindows(t *testing.T) {
	berlin := func(day, hm string) time.Time { // day of November 2026: 23 is a Monday
		loc, _ := time.LoadLocation("Europe/Berlin")
		tt, err := time.ParseInLocation("2006-01-02 15:04", "2026-11-"+day+" "+hm, loc)
		if err != nil {
			t.Fatal(err)
		}
		return tt
	}
	office := &TimeWindow{Days: []string{"mon", "tue", "wed", "thu", "fri"}, From: "08:00", To: "18:00", TimeZone: "Europe/Berlin"}
	night := &TimeWindow{Days: []string{"fri"}, From: "22:00", To: "06:00", TimeZone: "Europe/Berlin"}
	tests := []struct {
		name string
		w    *TimeWindow
		at   time.Time
		want bool
	}{
		{"office Tuesday 09:30", office, berlin("24", "09:30"), true},
		{"office from is inclusive", office, berlin("24", "08:00"), true},
		{"office to is exclusive", office, berlin("24", "18:00"), false},
		{"office 17:59", office, berlin("24", "17:59"), true},
		{"office 07:59", office, berlin("24", "07:59"), false},
		{"office Saturday", office, berlin("28", "10:00"), false},
		{"office in UTC terms: 07:30Z is 08:30 Berlin", office, time.Date(2026, 11, 24, 7, 30, 0, 0, time.UTC), true},
		{"summer time: 06:30Z is 08:30 CEST", office, time.Date(2026, 7, 7, 6, 30, 0, 0, time.UTC), true},
		{"overnight Friday 23:00", night, berlin("27", "23:00"), true},
		{"overnight Saturday 05:59 belongs to Friday", night, berlin("28", "05:59"), true},
		{"overnight Saturday 06:00", night, berlin("28", "06:00"), false},
		{"overnight Friday 05:00 belongs to Thursday", night, berlin("27", "05:00"), false},
		{"overnight Saturday 23:00", night, berlin("28", "23:00"), false},
		{"day range mon-fri", &TimeWindow{Days: []string{"mon-fri"}}, berlin("27", "12:00"), true},
		{"wrapping range fri-mon", &TimeWindow{Days: []string{"fri-mon"}, TimeZone: "UTC"}, time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC), true},
		{"wrapping range fri-mon, Wednesday", &TimeWindow{Days: []string{"fri-mon"}, TimeZone: "UTC"}, time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), false},
		{"every day, to 24:00", &TimeWindow{From: "20:00", To: "24:00", TimeZone: "UTC"}, time.Date(2026, 11, 25, 23, 59, 0, 0, time.UTC), true},
		{"full day names", &TimeWindow{Days: []string{"Saturday", "SUNDAY"}, TimeZone: "UTC"}, time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := policyOf(t, When{Time: tc.w}).explain(t.Context(), Identity{}, tc.at)
			if d.Allow != tc.want {
				t.Errorf("allow %v, want %v: %s", d.Allow, tc.want, d.Rules[0].Conditions[0].Reason)
			}
		})
	}
}

func TestFirstMatchDecides(t *testing.T) {
	p, err := New(Config{Rules: []Rule{
		{Name: "deny-kp", Action: "deny", When: When{Country: &StringMatch{In: []string{"KP"}}}},
		{Name: "allow-warp", Action: "allow", When: When{IsWarp: ptr(true)}},
		{Name: "allow-bob", Action: "allow", When: When{Email: &EmailMatch{In: []string{"bob@example.com"}}}},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		identity, rule string
		allow          bool
		traced         int
	}{
		{`{"geo":{"country":"KP"},"is_warp":true,"email":"bob@example.com"}`, "deny-kp", false, 1},
		{`{"geo":{"country":"US"},"is_warp":true,"email":"bob@example.com"}`, "allow-warp", true, 2},
		{`{"is_warp":false,"email":"bob@example.com"}`, "allow-bob", true, 3},
		{`{"is_warp":false,"email":"eve@example.com"}`, "", false, 3},
	}
	for _, tc := range tests {
		t.Run(tc.identity, func(t *testing.T) {
			id, _ := parseIdentity([]byte(tc.identity))
			d := p.Decide(t.Context(), id, t0)
			if d.Rule != tc.rule || d.Allow != tc.allow || len(d.Rules) != tc.traced {
				t.Errorf("decision %+v", d)
			}
			if e := p.explain(t.Context(), id, t0); e.Rule != d.Rule || e.Allow != d.Allow || len(e.Rules) != 3 {
				t.Errorf("Explain disagrees with Decide: %+v", e)
			}
		})
	}
}

// TestExplainCLI: what `postured explain --identity FILE.json` prints.
func TestExplainCLI(t *testing.T) {
	cfg, err := decode(t, `
rules:
  - name: block-sanctioned
    action: deny
    when: {country: {in: [KP, IR]}}
  - name: admins-need-healthy-devices
    action: allow
    when:
      groups: {any: [admins]}
      score: {min: 80}
  - name: staff-business-hours
    action: allow
    when:
      email_domain: {in: [example.com]}
      time: {days: [mon-fri], from: "08:00", to: "18:00", time_zone: Europe/Berlin}
`)
	if err != nil {
		t.Fatal(err)
	}
	src := postures{"dev-1": {Score: 72, Providers: map[string]int{"intune": 72}}}
	// A whole token payload is accepted as well as the bare identity.
	identity := []byte(`{"nonce":"x","identity":{"email":"ann@example.com","device_id":"dev-1","geo":{"country":"DE"},
		"groups":[{"id":"1","name":"admins"}]}}`)
	d, err := Explain(t.Context(), cfg, src, t0, identity)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Allow || d.Rule != "staff-business-hours" || d.Score == nil || *d.Score != 72 {
		t.Fatalf("decision %+v", d)
	}
	var out bytes.Buffer
	if err := d.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		`decision: ALLOW by rule "staff-business-hours"`,
		"1. block-sanctioned (deny): no match",
		`FAILED country: "DE" is not in [KP IR]`,
		"2. admins-need-healthy-devices (allow): no match",
		`held   groups: groups [admins] match`,
		`FAILED score: device "dev-1" scored 72, below min 80`,
		"3. staff-business-hours (allow): MATCH: decides",
		"held   time: Tue 09:30 Europe/Berlin is within mon-fri 08:00-18:00",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %q in:\n%s", want, text)
		}
	}
	b, err := json.Marshal(d)
	if err != nil || !bytes.Contains(b, []byte(`"rule":"staff-business-hours"`)) {
		t.Errorf("JSON %s %v", b, err)
	}
	if _, err := Explain(t.Context(), cfg, nil, t0, []byte(`[1]`)); err == nil {
		t.Error("a non-object identity was accepted")
	}
	if _, err := Explain(t.Context(), cfg, nil, t0, []byte(`{"a":1} trailing`)); err == nil {
		t.Error("trailing data was accepted")
	}
	// Without a posture source the score condition says why it is false.
	d, _ = Explain(t.Context(), cfg, nil, t0, identity)
	if c := d.Rules[1].Conditions[1]; c.Held || !strings.Contains(c.Reason, "no device posture source") {
		t.Errorf("score without source: %+v", c)
	}
}

// TestPostureLookedUpOnce: one lookup per login, and none when no rule
// reaches a posture condition.
func TestPostureLookedUpOnce(t *testing.T) {
	src := &countingPosture{p: Posture{Score: 90, Providers: map[string]int{"x": 90}}}
	p, err := New(Config{Rules: []Rule{
		{Name: "a", Action: "allow", When: When{Email: &EmailMatch{In: []string{"a@x.com"}}, Score: &ScoreRange{Min: ptr(95)}}},
		{Name: "b", Action: "allow", When: When{Score: &ScoreRange{Min: ptr(80)}, ProviderScores: map[string]ScoreRange{"x": {Min: ptr(1)}}}},
	}}, src)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := parseIdentity([]byte(`{"email":"a@x.com","device_id":"d"}`))
	if d := p.Decide(t.Context(), id, t0); d.Rule != "b" || src.n != 1 {
		t.Errorf("rule %q, lookups %d", d.Rule, src.n)
	}
	src.n = 0
	id, _ = parseIdentity([]byte(`{"email":"z@x.com"}`))
	p.Decide(t.Context(), id, t0)
	if src.n != 0 {
		t.Errorf("%d lookups without a device_id", src.n)
	}
}

type countingPosture struct {
	p Posture
	n int
}

func (c *countingPosture) DevicePosture(_ context.Context, _ string) (Posture, bool) {
	c.n++
	return c.p, true
}

// TestPostureDeadline: a posture lookup that does not finish in time makes
// the score condition false, with the reason.
func TestPostureDeadline(t *testing.T) {
	p, err := New(Config{Rules: []Rule{
		{Name: "admins-healthy", Action: "allow", When: When{Groups: &GroupMatch{Any: []string{"admins"}}, Score: &ScoreRange{Min: ptr(80)}}},
	}, PostureDeadline: conf.Duration(time.Millisecond)}, blockingPosture{})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := parseIdentity([]byte(`{"email":"ann@example.com","groups":["admins"],"device_id":"d1"}`))
	d := p.explain(t.Context(), id, t0)
	if d.Allow {
		t.Fatal("allowed without posture")
	}
	c := d.Rules[0].Conditions[1]
	if c.Held || !c.Unknown || !strings.Contains(c.Reason, "did not finish") {
		t.Errorf("score condition %+v", c)
	}
}

type blockingPosture struct{}

func (blockingPosture) DevicePosture(ctx context.Context, _ string) (Posture, bool) {
	<-ctx.Done()
	return Posture{}, false
}

// TestConfig: defaults, the errors Validate names, and the providers the
// rules refer to.
func TestConfig(t *testing.T) {
	tests := []struct {
		name, src, want string
		providers       []string
	}{
		{"defaults", "rules:\n  - {name: r, action: allow, when: {time: {days: [mon]}}}\n", "", nil},
		{"negative deadline", "posture_deadline: -1s\nrules:\n  - {name: r, action: allow, when: {is_warp: true}}\n", "posture_deadline: must be > 0", nil},
		{"rule errors", "rules:\n  - {name: r, action: allow, when: {score: {min: 101}}}\n", "rules[0].when.score: min must be 0..100, got 101", nil},
		{"referenced providers", "rules:\n  - {name: r, action: allow, when: {provider_scores: {intune: {min: 1}, jamf: {max: 9}}}}\n" +
			"  - {name: s, action: deny, when: {provider_scores: {jamf: {min: 1}}}}\n", "", []string{"intune", "jamf"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := decode(t, tc.src)
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			var fe *FieldError
			if err != nil && !errors.As(err, &fe) {
				t.Errorf("%v is not a *FieldError", err)
			}
			if err != nil {
				return
			}
			if cfg.PostureDeadline != conf.Duration(2*time.Second) {
				t.Errorf("posture_deadline %v, want the 2s default", cfg.PostureDeadline)
			}
			if w := cfg.Rules[0].When.Time; w != nil && w.TimeZone != "UTC" {
				t.Errorf("time_zone %q, want the UTC default", w.TimeZone)
			}
			got := cfg.ReferencedProviders()
			slices.Sort(got)
			if !slices.Equal(got, tc.providers) {
				t.Errorf("ReferencedProviders %v, want %v", got, tc.providers)
			}
		})
	}
}

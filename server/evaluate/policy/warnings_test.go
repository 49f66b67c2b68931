package policy

import (
	"context"
	"strings"
	"testing"
)

// TestWarnings: a deny rule on posture followed by an allow rule without
// one is flagged; it is a real hole, proven by deciding for a device with
// no posture.
func TestWarnings(t *testing.T) {
	tests := []struct {
		name  string
		rules string
		want  []string // exact warnings
	}{
		{"deny on score, then allow on email", `
rules:
  - {name: unhealthy, action: deny, when: {score: {max: 40}}}
  - {name: staff, action: allow, when: {email_domain: {in: [example.com]}}}
`, []string{`rules[0].when.score: deny rule "unhealthy" does not fire when the device has no posture (never in a batch, or its providers did not count), and the later allow rule "staff" (rules[1]) has no posture condition, so it can allow such a device; require a minimum score in the allow rules instead`}},
		{"deny on provider_scores, first posture-free allow named", `
rules:
  - {name: falcon-low, action: deny, when: {provider_scores: {crowdstrike: {max: 30}}}}
  - {name: admins, action: allow, when: {groups: {any: [admins]}, score: {min: 80}}}
  - {name: staff, action: allow, when: {email_domain: {in: [example.com]}}}
  - {name: bob, action: allow, when: {email: {in: [bob@example.com]}}}
`, []string{`rules[0].when.provider_scores: deny rule "falcon-low" does not fire when the device has no posture (never in a batch, or its providers did not count), and the later allow rule "staff" (rules[2]) has no posture condition, so it can allow such a device; require a minimum score in the allow rules instead`}},
		{"allow rules all require a score", `
rules:
  - {name: unhealthy, action: deny, when: {score: {max: 40}}}
  - {name: staff, action: allow, when: {email_domain: {in: [example.com]}, score: {min: 60}}}
`, nil},
		{"allow before the deny", `
rules:
  - {name: bob, action: allow, when: {email: {in: [bob@example.com]}}}
  - {name: unhealthy, action: deny, when: {score: {max: 40}}}
`, nil},
		{"deny without posture", `
rules:
  - {name: sanctioned, action: deny, when: {country: {in: [KP]}}}
  - {name: staff, action: allow, when: {email_domain: {in: [example.com]}}}
`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := decode(t, tc.rules)
			if err != nil {
				t.Fatalf("config invalid: %v", err)
			}
			var got []string
			if w := cfg.Warnings(); w != nil {
				got = strings.Split(w.Error(), "\n")
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("warnings\n got %q\nwant %q", got, tc.want)
			}
		})
	}

	t.Run("the hole is real", func(t *testing.T) {
		cfg, err := decode(t, tests[0].rules)
		if err != nil {
			t.Fatal(err)
		}
		p, err := New(cfg, postures{"sick": {Score: 10}})
		if err != nil {
			t.Fatal(err)
		}
		for device, allow := range map[string]bool{"sick": false, "never-seen": true} {
			id := IdentityFromClaim([]byte(`{"email":"ann@example.com","device_id":"` + device + `"}`))
			if d := p.Decide(context.Background(), id, t0); d.Allow != allow {
				t.Errorf("device %s: allow = %v, want %v", device, d.Allow, allow)
			}
		}
	})
}

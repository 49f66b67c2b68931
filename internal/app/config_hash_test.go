package app

import (
	"strings"
	"testing"
)

// TestConfigHash: the hash follows the effective config, never a secret's
// value, and the config it hashes holds no secret.
func TestConfigHash(t *testing.T) {
	const base = `
access: {team_domain: t.cloudflareaccess.com, audience: [a]}
cache: {backend: memory, redis_url: "${REDIS}"}
providers:
  - {name: cs, type: crowdstrike, weight: %W%, base_url: "https://api.crowdstrike.com", client_id: id, client_secret: "${SECRET}"}
`
	hash := func(t *testing.T, weight, secret string) string {
		t.Helper()
		env := map[string]string{"SECRET": secret, "REDIS": "redis://:" + secret + "@localhost:6379/0"}
		cfg, err := Parse([]byte(strings.ReplaceAll(base, "%W%", weight)), Registry(), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		if err != nil {
			t.Fatal(err)
		}
		h, err := cfg.Hash()
		if err != nil {
			t.Fatal(err)
		}
		if len(h) != 64 {
			t.Fatalf("hash %q is not a hex SHA-256", h)
		}
		return h
	}
	tests := []struct {
		name           string
		weight, secret string
		same           bool
	}{
		{"same config", "1", "s3cret-one", true},
		{"only the secret changed", "1", "s3cret-two", true},
		{"a weight changed", "2", "s3cret-one", false},
	}
	ref := hash(t, "1", "s3cret-one")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := hash(t, tc.weight, tc.secret); (got == ref) != tc.same {
				t.Errorf("hash %s vs %s: same = %t, want %t", got, ref, got == ref, tc.same)
			}
		})
	}
}

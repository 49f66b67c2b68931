package access

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestTeamIssuer(t *testing.T) {
	tests := []struct {
		name, in, want, err string
	}{
		{"bare host", "team.cloudflareaccess.com", "https://team.cloudflareaccess.com", ""},
		{"scheme and slash", "https://team.cloudflareaccess.com/", "https://team.cloudflareaccess.com", ""},
		{"spaces", "  team.cloudflareaccess.com ", "https://team.cloudflareaccess.com", ""},
		{"empty", " ", "", "team domain is empty"},
		{"http", "http://team.cloudflareaccess.com", "", "must be a host"},
		{"path", "team.cloudflareaccess.com/cdn-cgi", "", "must be a host"},
		{"query", "https://team.cloudflareaccess.com?x=1", "", "must be a host"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := TeamIssuer(tc.in)
			if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("TeamIssuer(%q) = %q, %v; want %q, error containing %q", tc.in, got, err, tc.want, tc.err)
			}
		})
	}
}

func TestNewKeySetCertsURL(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
		err  bool
	}{
		{"from the team domain", Config{TeamDomain: "team.cloudflareaccess.com"}, "https://team.cloudflareaccess.com/cdn-cgi/access/certs", false},
		{"certs_url wins", Config{TeamDomain: "team.cloudflareaccess.com", CertsURL: "http://127.0.0.1:1/certs"}, "http://127.0.0.1:1/certs", false},
		{"no team domain, no certs_url", Config{}, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, err := NewKeySet(tc.cfg)
			if (err != nil) != tc.err {
				t.Fatalf("err %v", err)
			}
			if err == nil && k.url != tc.want {
				t.Errorf("certs URL %q, want %q", k.url, tc.want)
			}
		})
	}
}

// TestCertsCooldownAndOutage: within the cooldown a fetch is answered from
// memory; after it the certs are fetched again, and a failed fetch is an
// error, never the old document.
func TestCertsCooldownAndOutage(t *testing.T) {
	var fetches atomic.Int64
	var down atomic.Bool
	certs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches.Add(1)
		if down.Load() {
			http.Error(w, "bad gateway", http.StatusBadGateway)
			return
		}
		_, _ = w.Write([]byte(`{"keys":[]}`))
	}))
	t.Cleanup(certs.Close)
	now := time.Date(2026, 11, 24, 8, 30, 0, 0, time.UTC)
	k, err := NewKeySet(Config{CertsURL: certs.URL, RefetchCooldown: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	k.transport.now = func() time.Time { return now }

	steps := []struct {
		name        string
		advance     time.Duration
		down        bool
		wantFetches int64
		wantErr     string
	}{
		{"first fetch", 0, false, 1, ""},
		{"within the cooldown", 30 * time.Second, false, 1, ""},
		{"after the cooldown", time.Minute, false, 2, ""},
		{"within the cooldown, certs down", 10 * time.Second, true, 2, ""},
		{"after the cooldown, certs down", time.Minute, true, 3, "access certs answered 502"},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		down.Store(s.down)
		err := k.Check(t.Context())
		if got := fetches.Load(); got != s.wantFetches {
			t.Errorf("%s: %d fetches, want %d", s.name, got, s.wantFetches)
		}
		if (err == nil) != (s.wantErr == "") || (err != nil && !strings.Contains(err.Error(), s.wantErr)) {
			t.Errorf("%s: err %v, want %q", s.name, err, s.wantErr)
		}
	}
}

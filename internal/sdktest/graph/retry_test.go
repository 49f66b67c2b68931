package graph

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/postured/postured/providers/intune/intunemock"
)

// memTransport serves requests in-process, so a synctest bubble holds the
// whole exchange and the SDK's retry timer runs on the bubble's clock.
type memTransport struct{ h http.Handler }

func (m memTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		defer r.Body.Close()
	}
	in := httptest.NewRequestWithContext(r.Context(), r.Method, r.URL.String(), r.Body)
	in.Header = r.Header.Clone()
	rec := httptest.NewRecorder()
	m.h.ServeHTTP(rec, in)
	resp := rec.Result()
	resp.Request = r
	return resp, nil
}

// clockLog records, on the bubble's clock, when each Graph request arrived.
type clockLog struct {
	mu sync.Mutex
	at []time.Time
}

func (c *clockLog) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/managedDevices") {
			c.mu.Lock()
			c.at = append(c.at, time.Now())
			c.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	})
}

func (c *clockLog) get() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.at)
}

// TestRetryAfterHonoured checks that the SDK's retry handler, which reads
// Retry-After as whole seconds, waits what the mock asks and then gets
// through: a fractional Retry-After made it retry early and fail.
func TestRetryAfterHonoured(t *testing.T) {
	tests := []struct {
		name    string
		opts    intunemock.Options
		prime   bool // one request first, to fill the throttling window
		inject  func(*intunemock.Server)
		wait    time.Duration // between the 429 and the retry
		arrived int           // Graph requests, retry included
	}{
		{name: "sub-second wait asked as a second", inject: func(s *intunemock.Server) { s.Faults.RateLimit(1, 300*time.Millisecond) },
			wait: time.Second, arrived: 2},
		{name: "throttling window reopens", opts: intunemock.Options{ThrottleLimit: 1, ThrottleWindow: 1500 * time.Millisecond}, prime: true,
			wait: 2 * time.Second, arrived: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tc.opts.Devices = fixture(3)
				mock := intunemock.New(tc.opts)
				var clock clockLog
				rt := memTransport{withOpenIDConfig(clock.record(mock))}
				cred := credential(t, rt, "https://login.microsoftonline.com", intunemock.DefaultTenantID, intunemock.DefaultClientSecret)
				dm, _ := graphClient(t, rt, cred, "https://graph.microsoft.com/v1.0", nil)
				list := func() error {
					_, err := dm.ManagedDevices().Get(t.Context(), nil)
					return err
				}
				if tc.prime {
					if err := list(); err != nil {
						t.Fatal(err)
					}
				}
				if tc.inject != nil {
					tc.inject(mock)
				}
				if err := list(); err != nil {
					t.Fatalf("throttled listing: %v", err)
				}
				at := clock.get()
				if len(at) != tc.arrived {
					t.Fatalf("%d Graph requests, want %d", len(at), tc.arrived)
				}
				if got := at[len(at)-1].Sub(at[len(at)-2]); got != tc.wait {
					t.Errorf("retried after %s, want %s", got, tc.wait)
				}
			})
		})
	}
}

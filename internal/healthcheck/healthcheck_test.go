package healthcheck

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			w.WriteHeader(http.StatusOK)
		case "/hang":
			<-r.Context().Done()
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	gone, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		url  string
		want string // "" means healthy
	}{
		{"200 is healthy", t.Context(), srv.URL + "/healthz", ""},
		{"503 is not", t.Context(), srv.URL + "/readyz", "healthcheck: " + srv.URL + "/readyz answered 503"},
		{"no server", t.Context(), "http://127.0.0.1:1/healthz", "healthcheck: "},
		{"not a URL", t.Context(), "::", "healthcheck: "},
		{"caller gone", gone, srv.URL + "/hang", "context canceled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.ctx, tc.url)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Check = %v, want healthy", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestExplainAPIMatchesCLI: GET /v1/explain answers, byte for byte, what
// `postured explain --json` prints for the same device and config, for
// every kind of identifier and for a device nobody knows; and it is
// guarded by the Access token check like /posture.
func TestExplainAPIMatchesCLI(t *testing.T) {
	dir := t.TempDir()
	writeInventory(t, dir, 50)
	in := startPostured(t, strings.ReplaceAll(e2eConfig, "%DIR%", dir))
	token, err := in.issuer.AppToken(testAUD, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	get := func(t *testing.T, query url.Values, token string) (int, []byte) {
		t.Helper()
		return in.do(t, http.MethodGet, "/v1/explain?"+query.Encode(), token, nil)
	}

	tests := []struct {
		name      string
		query     url.Values
		wantScore int
	}{
		{"serial", url.Values{"serial": {"SER00007"}}, 7},
		{"serial in lower case", url.Values{"serial": {"ser00031"}}, 31},
		{"mac", url.Values{"mac": {"02-00-00-00-00-0C"}}, 12},
		{"hostname", url.Values{"hostname": {"mbp-20"}}, 20},
		{"unknown device", url.Values{"serial": {"NOPE"}, "email": {"nobody@example.com"}}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"explain", "-c", in.cfgPath, "--json"}
			for k, vs := range tc.query {
				args = append(args, "--"+k, vs[0])
			}
			var cli, errb bytes.Buffer
			if code := run(context.Background(), args, &cli, &errb); code != 0 {
				t.Fatalf("explain: exit %d: %s", code, errb.String())
			}
			code, api := get(t, tc.query, token)
			if code != http.StatusOK {
				t.Fatalf("status %d: %s", code, api)
			}
			if !bytes.Equal(api, cli.Bytes()) {
				t.Errorf("/v1/explain:\n%s\npostured explain --json:\n%s", api, cli.Bytes())
			}
			var ex struct {
				Score int `json:"score"`
			}
			if err := json.Unmarshal(api, &ex); err != nil {
				t.Fatal(err)
			}
			if ex.Score != tc.wantScore {
				t.Errorf("score %d, want %d", ex.Score, tc.wantScore)
			}
		})
	}

	t.Run("refused", func(t *testing.T) {
		expired, err := in.issuer.AppToken(testAUD, -time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name, token string
			want        int
		}{{"no token", "", http.StatusUnauthorized}, {"expired token", expired, http.StatusForbidden}} {
			t.Run(tc.name, func(t *testing.T) {
				if code, b := get(t, url.Values{"serial": {"SER00007"}}, tc.token); code != tc.want {
					t.Errorf("status %d, want %d: %s", code, tc.want, b)
				}
			})
		}
	})
}

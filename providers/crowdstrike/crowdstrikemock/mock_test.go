package crowdstrikemock

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func fixture(n int) ([]Host, []Assessment) {
	var hosts []Host
	var zta []Assessment
	for i := range n {
		h := Host{
			DeviceID:     fmt.Sprintf("%032x", i+1),
			CID:          strings.Repeat("c", 32),
			Hostname:     fmt.Sprintf("host-%03d", i),
			SerialNumber: fmt.Sprintf("SN%05d", i),
			MACAddress:   fmt.Sprintf("02-00-00-00-00-%02x", i),
			PlatformName: "Mac",
			Status:       "normal",
			LastSeen:     "2026-11-20T10:00:00Z",
		}
		hosts = append(hosts, h)
		if i%2 == 0 {
			zta = append(zta, Assessment{AID: h.DeviceID, CID: h.CID, Assessment: Scores{Overall: 10 + i, OS: 50, SensorConfig: 50, Version: "2.1.0"}})
		}
	}
	return hosts, zta
}

type harness struct {
	t     *testing.T
	mock  *Server
	srv   *httptest.Server
	token string
}

func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	if opts.Devices == nil {
		opts.Devices, opts.Assessments = fixture(10)
	}
	m := New(opts)
	return serveHarness(t, m, m)
}

// serveHarness serves m through handler (m itself, or a guard over it)
// and takes a token from it.
func serveHarness(t *testing.T, m *Server, handler http.Handler) *harness {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	h := &harness{t: t, mock: m, srv: srv}
	resp, body := h.do(http.MethodPost, "/oauth2/token", url.Values{"client_id": {"falcon-client"}, "client_secret": {"falcon-secret"}}.Encode(), "")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("token: %d %s", resp.StatusCode, body)
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		t.Fatal(err)
	}
	h.token = tr.AccessToken
	return h
}

func (h *harness) do(method, path, body, token string) (*http.Response, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if strings.HasPrefix(path, "/oauth2/") {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func (h *harness) get(path string) (*http.Response, testEnvelope) {
	h.t.Helper()
	resp, b := h.do(http.MethodGet, path, "", h.token)
	var env testEnvelope
	if err := json.Unmarshal(b, &env); err != nil {
		h.t.Fatalf("GET %s: %d, body not JSON: %s", path, resp.StatusCode, b)
	}
	return resp, env
}

type testEnvelope struct {
	Meta struct {
		QueryTime  float64         `json:"query_time"`
		TraceID    string          `json:"trace_id"`
		PoweredBy  string          `json:"powered_by"`
		Pagination json.RawMessage `json:"pagination"`
	} `json:"meta"`
	Resources json.RawMessage `json:"resources"`
	Errors    []apiError      `json:"errors"`
}

func (e testEnvelope) ids(t *testing.T) []string {
	t.Helper()
	var out []string
	if err := json.Unmarshal(e.Resources, &out); err != nil {
		out = nil
		var objs []struct {
			DeviceID string `json:"device_id"`
			AID      string `json:"aid"`
		}
		if err := json.Unmarshal(e.Resources, &objs); err != nil {
			t.Fatalf("resources: %v: %s", err, e.Resources)
		}
		for _, o := range objs {
			out = append(out, o.DeviceID+o.AID)
		}
	}
	return out
}

func TestToken(t *testing.T) {
	h := newHarness(t, Options{MemberCIDs: []string{"child"}, Region: "eu-1"})
	form := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v.Encode()
	}
	tests := []struct {
		name       string
		body       string
		basic      bool
		wantStatus int
		wantMsg    string
	}{
		{"good", form("client_id", "falcon-client", "client_secret", "falcon-secret"), false, 201, ""},
		{"grant_type ignored", form("client_id", "falcon-client", "client_secret", "falcon-secret", "grant_type", "client_credentials"), false, 201, ""},
		{"basic auth", form("grant_type", "client_credentials"), true, 201, ""},
		{"member cid", form("client_id", "falcon-client", "client_secret", "falcon-secret", "member_cid", "child"), false, 201, ""},
		{"bad secret", form("client_id", "falcon-client", "client_secret", "nope"), false, 403, "access denied, authorization failed"},
		{"unknown member cid", form("client_id", "falcon-client", "client_secret", "falcon-secret", "member_cid", "other"), false, 403, "access denied, authorization failed"},
		{"missing secret", form("client_id", "falcon-client"), false, 400, "required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/oauth2/token", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tc.basic {
				req.SetBasicAuth("falcon-client", "falcon-secret")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.wantStatus, b)
			}
			if got := resp.Header.Get("X-Cs-Region"); got != "eu-1" {
				t.Errorf("X-Cs-Region = %q", got)
			}
			if tc.wantStatus == 201 {
				var tr tokenResponse
				if err := json.Unmarshal(b, &tr); err != nil || tr.AccessToken == "" || tr.TokenType != "bearer" || tr.ExpiresIn != 1799 {
					t.Fatalf("token body %s", b)
				}
				return
			}
			var env testEnvelope
			if err := json.Unmarshal(b, &env); err != nil || len(env.Errors) != 1 || !strings.Contains(env.Errors[0].Message, tc.wantMsg) {
				t.Fatalf("error body %s", b)
			}
			if env.Meta.TraceID == "" || resp.Header.Get("X-Cs-Traceid") != env.Meta.TraceID {
				t.Errorf("trace id header %q vs meta %q", resp.Header.Get("X-Cs-Traceid"), env.Meta.TraceID)
			}
		})
	}
}

func TestWrongCloudRedirect(t *testing.T) {
	m := New(Options{RedirectRegion: "us-2"})
	mux := http.NewServeMux()
	mux.Handle("/falcon/", http.StripPrefix("/falcon", m))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.PostForm(srv.URL+"/falcon/oauth2/token", url.Values{"client_id": {"falcon-client"}, "client_secret": {"falcon-secret"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("X-Cs-Region") != "us-2" ||
		resp.Header.Get("Location") != srv.URL+"/falcon/oauth2/token" {
		t.Fatalf("got %d region %q location %q", resp.StatusCode, resp.Header.Get("X-Cs-Region"), resp.Header.Get("Location"))
	}
}

func TestAPIAuth(t *testing.T) {
	h := newHarness(t, Options{})
	for _, tc := range []struct {
		name  string
		token string
	}{{"missing", ""}, {"unknown", "deadbeef"}} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := h.do(http.MethodGet, "/devices/queries/devices/v1", "", tc.token)
			if resp.StatusCode != 401 || !strings.Contains(string(b), "access denied, invalid bearer token") {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
		})
	}
	t.Run("expired", func(t *testing.T) {
		if resp, _ := h.get("/devices/queries/devices/v1"); resp.StatusCode != 200 {
			t.Fatalf("fresh token refused: %d", resp.StatusCode)
		}
		h.mock.ExpireTokens()
		if resp, _ := h.get("/devices/queries/devices/v1"); resp.StatusCode != 401 {
			t.Fatalf("expired token: %d", resp.StatusCode)
		}
	})
}

func TestQueryDevices(t *testing.T) {
	h := newHarness(t, Options{})
	type paging struct{ Offset, Limit, Total int }
	tests := []struct {
		name       string
		query      url.Values
		wantStatus int
		wantIDs    int
		wantPaging paging
		wantErr    string
	}{
		{"all default limit", url.Values{}, 200, 10, paging{10, 100, 10}, ""},
		{"first page", url.Values{"limit": {"3"}}, 200, 3, paging{3, 3, 10}, ""},
		{"last page", url.Values{"limit": {"4"}, "offset": {"8"}}, 200, 2, paging{10, 4, 10}, ""},
		{"filter", url.Values{"filter": {"serial_number:['SN00001','SN00003']"}}, 200, 2, paging{2, 100, 2}, ""},
		{"sort desc", url.Values{"sort": {"hostname|desc"}, "limit": {"1"}}, 200, 1, paging{1, 1, 10}, ""},
		{"limit too big", url.Values{"limit": {"5001"}}, 400, 0, paging{}, "limit must be"},
		{"limit zero", url.Values{"limit": {"0"}}, 400, 0, paging{}, "limit must be"},
		{"offset window", url.Values{"limit": {"100"}, "offset": {"9950"}}, 400, 0, paging{}, "must not exceed 10000"},
		{"offset 10000", url.Values{"limit": {"1"}, "offset": {"10000"}}, 400, 0, paging{}, "must not exceed 10000"},
		{"bad filter", url.Values{"filter": {"serial_number:SN1"}}, 400, 0, paging{}, "Invalid filter"},
		{"bad sort", url.Values{"sort": {"colour.asc"}}, 400, 0, paging{}, "Invalid sort"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, env := h.get("/devices/queries/devices/v1?" + tc.query.Encode())
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d (%v)", resp.StatusCode, tc.wantStatus, env.Errors)
			}
			if tc.wantErr != "" {
				if len(env.Errors) != 1 || env.Errors[0].Code != 400 || !strings.Contains(env.Errors[0].Message, tc.wantErr) {
					t.Fatalf("errors %+v, want %q", env.Errors, tc.wantErr)
				}
				return
			}
			if ids := env.ids(t); len(ids) != tc.wantIDs {
				t.Fatalf("%d ids, want %d", len(ids), tc.wantIDs)
			}
			var pg paging
			if err := json.Unmarshal(env.Meta.Pagination, &pg); err != nil || pg != tc.wantPaging {
				t.Fatalf("pagination %s, want %+v", env.Meta.Pagination, tc.wantPaging)
			}
			if resp.Header.Get("X-Ratelimit-Limit") != "6000" || resp.Header.Get("X-Ratelimit-Remaining") == "" {
				t.Errorf("rate-limit headers %v", resp.Header)
			}
		})
	}
}

func TestScrollDevices(t *testing.T) {
	h := newHarness(t, Options{})
	var all []string
	offset := ""
	pages := 0
	var replay string
	for {
		q := url.Values{"limit": {"4"}}
		if offset != "" {
			q.Set("offset", offset)
		}
		resp, env := h.get("/devices/queries/devices-scroll/v1?" + q.Encode())
		if resp.StatusCode != 200 {
			t.Fatalf("page %d: %d %v", pages, resp.StatusCode, env.Errors)
		}
		pages++
		all = append(all, env.ids(t)...)
		var pg struct {
			Offset    string `json:"offset"`
			Total     int    `json:"total"`
			ExpiresAt int64  `json:"expires_at"`
		}
		if err := json.Unmarshal(env.Meta.Pagination, &pg); err != nil || pg.Total != 10 || pg.ExpiresAt == 0 {
			t.Fatalf("pagination %s", env.Meta.Pagination)
		}
		if pages == 2 {
			replay = offset
		}
		if pg.Offset == "" {
			break
		}
		offset = pg.Offset
	}
	if pages != 3 || len(all) != 10 {
		t.Fatalf("%d pages, %d ids", pages, len(all))
	}
	// A retried page gives the same answer.
	_, env := h.get("/devices/queries/devices-scroll/v1?limit=4&offset=" + replay)
	if ids := env.ids(t); len(ids) != 4 || ids[0] != all[4] {
		t.Fatalf("replayed page %v", ids)
	}
	if resp, env := h.get("/devices/queries/devices-scroll/v1?offset=bogus"); resp.StatusCode != 400 || len(env.Errors) != 1 {
		t.Fatalf("bogus token: %d", resp.StatusCode)
	}
	if resp, _ := h.get("/devices/queries/devices-scroll/v1?limit=10001"); resp.StatusCode != 400 {
		t.Fatalf("limit 10001: %d", resp.StatusCode)
	}
}

func TestScrollTokenExpires(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	h := newHarness(t, Options{ScrollTTL: 2 * time.Minute, Now: clock})
	_, env := h.get("/devices/queries/devices-scroll/v1?limit=2")
	var pg struct{ Offset string }
	_ = json.Unmarshal(env.Meta.Pagination, &pg)
	if resp, _ := h.get("/devices/queries/devices-scroll/v1?limit=2&offset=" + pg.Offset); resp.StatusCode != 200 {
		t.Fatalf("fresh token: %d", resp.StatusCode)
	}
	mu.Lock()
	now = now.Add(2*time.Minute + time.Second)
	mu.Unlock()
	if resp, env := h.get("/devices/queries/devices-scroll/v1?limit=2&offset=" + pg.Offset); resp.StatusCode != 400 ||
		!strings.Contains(env.Errors[0].Message, "expired") {
		t.Fatalf("idle token: %d %v", resp.StatusCode, env.Errors)
	}
}

func TestCombinedDevices(t *testing.T) {
	h := newHarness(t, Options{})
	resp, env := h.get("/devices/combined/devices/v1?limit=3&fields=device_id,hostname&filter=" + url.QueryEscape("hostname:'host-00*'"))
	if resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, env.Errors)
	}
	var recs []map[string]any
	_ = json.Unmarshal(env.Resources, &recs)
	if len(recs) != 3 || len(recs[0]) != 2 || recs[0]["hostname"] != "host-000" {
		t.Fatalf("projection %v", recs)
	}
	var pg struct{ Offset, Next string }
	_ = json.Unmarshal(env.Meta.Pagination, &pg)
	if pg.Offset == "" || pg.Next != pg.Offset {
		t.Fatalf("pagination %s", env.Meta.Pagination)
	}
	if resp, _ := h.get("/devices/combined/devices/v1?limit=10000"); resp.StatusCode != 200 {
		t.Fatalf("limit 10000: %d", resp.StatusCode)
	}
	if resp, _ := h.get("/devices/combined/devices/v1?limit=10001"); resp.StatusCode != 400 {
		t.Fatalf("limit 10001: %d", resp.StatusCode)
	}
	// Single values are case-insensitive prefixes; brackets exact.
	for filter, want := range map[string]int{"hostname:'HOST-00'": 10, "hostname:['HOST-001']": 0, "hostname:['host-001']": 1} {
		_, env := h.get("/devices/combined/devices/v1?filter=" + url.QueryEscape(filter))
		if got := len(env.ids(t)); got != want {
			t.Errorf("%s: %d hosts, want %d", filter, got, want)
		}
	}
}

func TestDeviceEntities(t *testing.T) {
	h := newHarness(t, Options{})
	hosts, _ := fixture(10)
	ids := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%032x", i+1)
		}
		return out
	}
	post := func(body any) (*http.Response, testEnvelope) {
		b, _ := json.Marshal(body)
		resp, rb := h.do(http.MethodPost, "/devices/entities/devices/v2", string(b), h.token)
		var env testEnvelope
		if err := json.Unmarshal(rb, &env); err != nil {
			t.Fatalf("%s", rb)
		}
		return resp, env
	}
	t.Run("post known and unknown", func(t *testing.T) {
		resp, env := post(map[string][]string{"ids": {hosts[0].DeviceID, "ffffffffffffffffffffffffffffffff", hosts[3].DeviceID}})
		if resp.StatusCode != 200 || len(env.ids(t)) != 2 {
			t.Fatalf("%d %s", resp.StatusCode, env.Resources)
		}
		var full []map[string]any
		_ = json.Unmarshal(env.Resources, &full)
		for _, k := range []string{"tags", "groups", "policies"} {
			if v, ok := full[0][k].([]any); !ok || v == nil {
				t.Errorf("%s not serialised as []: %v", k, full[0][k])
			}
		}
	})
	t.Run("post 5000 ok, 5001 refused", func(t *testing.T) {
		if resp, _ := post(map[string][]string{"ids": ids(5000)}); resp.StatusCode != 200 {
			t.Fatalf("5000: %d", resp.StatusCode)
		}
		if resp, env := post(map[string][]string{"ids": ids(5001)}); resp.StatusCode != 400 || !strings.Contains(env.Errors[0].Message, "maximum is 5000") {
			t.Fatalf("5001: %d %v", resp.StatusCode, env.Errors)
		}
	})
	t.Run("get repeated and comma-joined", func(t *testing.T) {
		_, env := h.get("/devices/entities/devices/v2?ids=" + hosts[1].DeviceID + "&ids=" + hosts[2].DeviceID + "," + hosts[4].DeviceID)
		if len(env.ids(t)) != 3 {
			t.Fatalf("%s", env.Resources)
		}
	})
	t.Run("get over 100 refused", func(t *testing.T) {
		if resp, _ := h.get("/devices/entities/devices/v2?" + url.Values{"ids": ids(101)}.Encode()); resp.StatusCode != 400 {
			t.Fatalf("%d", resp.StatusCode)
		}
	})
	t.Run("no ids", func(t *testing.T) {
		if resp, _ := h.get("/devices/entities/devices/v2"); resp.StatusCode != 400 {
			t.Fatalf("%d", resp.StatusCode)
		}
	})
	t.Run("404 partial mode", func(t *testing.T) {
		h2 := newHarness(t, Options{HostsMissing: MissingNotFound})
		resp, env := h2.get("/devices/entities/devices/v2?ids=" + hosts[0].DeviceID + "&ids=ffffffffffffffffffffffffffffffff")
		if resp.StatusCode != 404 || len(env.ids(t)) != 1 || len(env.Errors) != 1 || env.Errors[0].ID != "ffffffffffffffffffffffffffffffff" {
			t.Fatalf("%d %s %v", resp.StatusCode, env.Resources, env.Errors)
		}
	})
}

func TestZTAAssessments(t *testing.T) {
	hosts, _ := fixture(10)
	assessed, unassessed := hosts[0].DeviceID, hosts[1].DeviceID
	tests := []struct {
		name       string
		opts       Options
		ids        []string
		wantStatus int
		wantFound  int
		wantErrs   int
	}{
		{"all assessed", Options{}, []string{assessed, hosts[2].DeviceID}, 200, 2, 0},
		{"partial is 404 with resources", Options{}, []string{assessed, unassessed}, 404, 1, 1},
		{"none assessed is 404 with empty resources", Options{}, []string{unassessed}, 404, 0, 1},
		{"omit mode", Options{ZTAOmitMissing: true}, []string{assessed, unassessed}, 200, 1, 0},
		{"no scope", Options{NoZTAScope: true}, []string{assessed}, 403, 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.opts)
			resp, env := h.get("/zero-trust-assessment/entities/assessments/v1?" + url.Values{"ids": tc.ids}.Encode())
			if resp.StatusCode != tc.wantStatus || len(env.Errors) != tc.wantErrs {
				t.Fatalf("status %d errors %v", resp.StatusCode, env.Errors)
			}
			if tc.wantStatus == 403 {
				return
			}
			if string(env.Resources) == "" || string(env.Resources) == "null" {
				t.Fatalf("resources missing: %s", env.Resources)
			}
			if got := len(env.ids(t)); got != tc.wantFound {
				t.Fatalf("%d found, want %d", got, tc.wantFound)
			}
		})
	}
}

func TestZTAQueries(t *testing.T) {
	h := newHarness(t, Options{})
	if resp, _ := h.get("/zero-trust-assessment/queries/assessments/v1"); resp.StatusCode != 400 {
		t.Fatalf("missing filter: %d", resp.StatusCode)
	}
	if resp, _ := h.get("/zero-trust-assessment/queries/assessments/v1?filter=" + url.QueryEscape("hostname:'x'")); resp.StatusCode != 400 {
		t.Fatalf("non-score filter: %d", resp.StatusCode)
	}
	var got []scoreEntry
	after := ""
	for range 5 {
		q := url.Values{"filter": {"score:>=14"}, "limit": {"2"}, "sort": {"score|desc"}}
		if after != "" {
			q.Set("after", after)
		}
		_, env := h.get("/zero-trust-assessment/queries/assessments/v1?" + q.Encode())
		var page []scoreEntry
		_ = json.Unmarshal(env.Resources, &page)
		got = append(got, page...)
		var pg afterPaging
		_ = json.Unmarshal(env.Meta.Pagination, &pg)
		if after = pg.After; after == "" {
			break
		}
	}
	// fixture scores: 10,12,14,16,18 -> >=14 is 18,16,14.
	if len(got) != 3 || got[0].Score != 18 || got[2].Score != 14 {
		t.Fatalf("%+v", got)
	}
}

func TestRateLimit(t *testing.T) {
	for _, millis := range []bool{false, true} {
		t.Run("millis="+strconv.FormatBool(millis), func(t *testing.T) {
			h := newHarness(t, Options{RateLimit: 3, RetryAfterMillis: millis})
			for i := range 3 {
				resp, _ := h.get("/devices/queries/devices/v1")
				if resp.StatusCode != 200 || resp.Header.Get("X-Ratelimit-Remaining") != strconv.Itoa(2-i) {
					t.Fatalf("call %d: %d remaining %q", i, resp.StatusCode, resp.Header.Get("X-Ratelimit-Remaining"))
				}
			}
			before := time.Now()
			resp, env := h.get("/devices/queries/devices/v1")
			if resp.StatusCode != 429 || env.Errors[0].Message != "API rate limit exceeded." || resp.Header.Get("X-Ratelimit-Remaining") != "0" {
				t.Fatalf("%d %v", resp.StatusCode, env.Errors)
			}
			v, err := strconv.ParseInt(resp.Header.Get("X-Ratelimit-Retryafter"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			at := time.Unix(v, 0)
			if millis {
				if v < 1e12 {
					t.Fatalf("want milliseconds, got %d", v)
				}
				at = time.UnixMilli(v)
			}
			if d := at.Sub(before); d < 50*time.Second || d > 61*time.Second {
				t.Fatalf("retry after %s from now, want about a minute", d)
			}
		})
	}
}

func TestFaults(t *testing.T) {
	h := newHarness(t, Options{})
	h.mock.Faults.RateLimit(1, 3*time.Second)
	resp, env := h.get("/devices/queries/devices/v1")
	v, _ := strconv.ParseInt(resp.Header.Get("X-Ratelimit-Retryafter"), 10, 64)
	if resp.StatusCode != 429 || time.Until(time.Unix(v, 0)) < 2*time.Second || len(env.Errors) != 1 {
		t.Fatalf("rate-limit fault: %d retry-after %d", resp.StatusCode, v)
	}
	h.mock.Faults.FailServer(1)
	if resp, env := h.get("/devices/queries/devices/v1"); resp.StatusCode != 500 || env.Errors[0].Code != 500 {
		t.Fatalf("server fault: %d", resp.StatusCode)
	}
	h.mock.Faults.Malform(1)
	resp2, b := h.do(http.MethodGet, "/devices/queries/devices/v1", "", h.token)
	if resp2.StatusCode != 200 || json.Valid(b) {
		t.Fatalf("malformed fault: %d %s", resp2.StatusCode, b)
	}
	if resp, _ := h.get("/devices/queries/devices/v1"); resp.StatusCode != 200 {
		t.Fatalf("after faults: %d", resp.StatusCode)
	}
	if got := h.mock.Calls.Get("queryDevices"); got != 4 {
		t.Errorf("queryDevices calls = %d, want 4", got)
	}
}

func TestRoutingErrors(t *testing.T) {
	h := newHarness(t, Options{MaxURLBytes: 512})
	for _, tc := range []struct {
		name, method, path string
		want               int
	}{
		{"unknown path", http.MethodGet, "/devices/queries/nothing/v1", 404},
		{"wrong method", http.MethodDelete, "/devices/queries/devices/v1", 405},
		{"token by GET", http.MethodGet, "/oauth2/token", 405},
		{"long url", http.MethodGet, "/zero-trust-assessment/entities/assessments/v1?ids=" + strings.Repeat("a", 600), 414},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := h.do(tc.method, tc.path, "", h.token)
			if resp.StatusCode != tc.want || !json.Valid(b) || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	trace := regexp.MustCompile(`"trace_id":"[^"]*"`)
	body := func() []byte {
		h := newHarness(t, Options{})
		b, _ := json.Marshal(map[string][]string{"ids": {fmt.Sprintf("%032x", 1), fmt.Sprintf("%032x", 2)}})
		_, rb := h.do(http.MethodPost, "/devices/entities/devices/v2", string(b), h.token)
		return trace.ReplaceAll(rb, nil)
	}
	if a, b := body(), body(); !bytes.Equal(a, b) {
		t.Fatalf("same fixture, different bytes:\n%s\n%s", a, b)
	}
}

func TestRequestLog(t *testing.T) {
	h := newHarness(t, Options{})
	h.get("/zero-trust-assessment/entities/assessments/v1?ids=a&ids=b&ids=c")
	log := h.mock.Requests()
	last := log[len(log)-1]
	if last.Endpoint != "ztaAssessments" || last.IDs != 3 || last.Status != 404 {
		t.Fatalf("%+v", last)
	}
}

// The log keeps the last requests, never more than maxLoggedRequests:
// mockvendors runs for days.
func TestRequestLogBounded(t *testing.T) {
	h := newHarness(t, Options{})
	n := maxLoggedRequests + maxLoggedRequests/2 + 10
	for i := range n {
		h.get(fmt.Sprintf("/devices/combined/devices/v1?limit=%d", i%10000+1))
	}
	log := h.mock.Requests()
	if len(log) > maxLoggedRequests || len(log) < maxLoggedRequests/2 {
		t.Fatalf("%d requests logged of %d, want at most %d and at least half", len(log), n, maxLoggedRequests)
	}
	if last := log[len(log)-1]; last.Limit != fmt.Sprint((n-1)%10000+1) {
		t.Fatalf("last logged %+v, want the last request", last)
	}
}

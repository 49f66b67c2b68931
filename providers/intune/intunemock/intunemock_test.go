package intunemock

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

func fixture(n int) []ManagedDevice {
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 123456700, time.UTC)
	out := make([]ManagedDevice, n)
	for i := range out {
		out[i] = ManagedDevice{
			ID:                 fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
			DeviceName:         fmt.Sprintf("DESKTOP-%05d", i),
			SerialNumber:       fmt.Sprintf("PF%08d", i),
			UserPrincipalName:  fmt.Sprintf("user%d@example.com", i/2),
			ComplianceState:    ComplianceStates[i%len(ComplianceStates)],
			LastSyncDateTime:   t0.Add(-time.Duration(i) * time.Hour),
			WiFiMacAddress:     fmt.Sprintf("02AABBCC%04X", i),
			EthernetMacAddress: fmt.Sprintf("02DDEEFF%04X", i),
			JailBroken:         "Unknown",
		}
	}
	return out
}

type harness struct {
	t   *testing.T
	srv *Server
	ts  *httptest.Server
	tok string
}

func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	s := New(opts)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	h := &harness{t: t, srv: s, ts: ts}
	h.tok = h.token()
	return h
}

func (h *harness) token() string {
	h.t.Helper()
	status, body, _ := h.form(h.ts.URL+"/"+DefaultTenantID+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {DefaultClientID},
		"client_secret": {DefaultClientSecret}, "scope": {Scope},
	}, nil)
	if status != http.StatusOK {
		h.t.Fatalf("token: status %d: %s", status, body)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tr); err != nil {
		h.t.Fatal(err)
	}
	return tr.AccessToken
}

func (h *harness) form(u string, v url.Values, basic []string) (int, []byte, http.Header) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic != nil {
		req.SetBasicAuth(basic[0], basic[1])
	}
	return h.do(req)
}

func (h *harness) get(u string) (int, []byte, http.Header) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+h.tok)
	return h.do(req)
}

func (h *harness) post(u string, body any) (int, []byte, http.Header) {
	h.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, u, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+h.tok)
	req.Header.Set("Content-Type", "application/json")
	return h.do(req)
}

func (h *harness) do(req *http.Request) (int, []byte, http.Header) {
	h.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

type listPage struct {
	Context  string            `json:"@odata.context"`
	Count    *int              `json:"@odata.count"`
	NextLink string            `json:"@odata.nextLink"`
	Value    []json.RawMessage `json:"value"`
}

func decodePage(t *testing.T, b []byte) listPage {
	t.Helper()
	var p listPage
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("decode page: %v: %s", err, b)
	}
	return p
}

func graphCode(t *testing.T, b []byte) (string, string) {
	t.Helper()
	var e struct {
		Error struct {
			Code       string         `json:"code"`
			Message    string         `json:"message"`
			InnerError map[string]any `json:"innerError"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("not a Graph error: %v: %s", err, b)
	}
	if e.Error.InnerError["request-id"] == nil || e.Error.InnerError["date"] == nil {
		t.Errorf("innerError lacks request-id/date: %s", b)
	}
	return e.Error.Code, e.Error.Message
}

func TestToken(t *testing.T) {
	h := newHarness(t, Options{TokenTTL: 90 * time.Second})
	good := url.Values{"grant_type": {"client_credentials"}, "client_id": {DefaultClientID}, "client_secret": {DefaultClientSecret}, "scope": {Scope}}
	with := func(k, v string) url.Values {
		c := url.Values{}
		for kk, vv := range good {
			c[kk] = vv
		}
		if v == "" {
			c.Del(k)
		} else {
			c.Set(k, v)
		}
		return c
	}
	tests := []struct {
		name     string
		tenant   string
		form     url.Values
		basic    []string
		status   int
		errCode  string
		aadsts   int
		wantTTLs int
	}{
		{name: "ok", tenant: DefaultTenantID, form: good, status: 200, wantTTLs: 90},
		{name: "ok by domain", tenant: DefaultTenantDomain, form: good, status: 200, wantTTLs: 90},
		{name: "ok basic auth", tenant: DefaultTenantID, form: with("client_secret", ""), basic: []string{DefaultClientID, DefaultClientSecret}, status: 200, wantTTLs: 90},
		{name: "wrong secret", tenant: DefaultTenantID, form: with("client_secret", "nope"), status: 401, errCode: "invalid_client", aadsts: 7000215},
		{name: "missing secret", tenant: DefaultTenantID, form: with("client_secret", ""), status: 401, errCode: "invalid_client", aadsts: 7000216},
		{name: "wrong scope", tenant: DefaultTenantID, form: with("scope", "https://graph.microsoft.com/User.Read"), status: 400, errCode: "invalid_scope", aadsts: 70011},
		{name: "missing scope", tenant: DefaultTenantID, form: with("scope", ""), status: 400, errCode: "invalid_request", aadsts: 900144},
		{name: "ok with MSAL's OIDC scopes", tenant: DefaultTenantID, form: with("scope", Scope+" openid offline_access profile"), status: 200, wantTTLs: 90},
		{name: "only OIDC scopes", tenant: DefaultTenantID, form: with("scope", "openid offline_access profile"), status: 400, errCode: "invalid_scope", aadsts: 1002012},
		{name: "two resources", tenant: DefaultTenantID, form: with("scope", Scope+" https://management.azure.com/.default"), status: 400, errCode: "invalid_scope", aadsts: 70011},
		{name: "unknown tenant", tenant: "fabrikam.onmicrosoft.com", form: good, status: 400, errCode: "invalid_request", aadsts: 90002},
		{name: "unknown client", tenant: DefaultTenantID, form: with("client_id", "11111111-1111-1111-1111-111111111111"), status: 400, errCode: "unauthorized_client", aadsts: 700016},
		{name: "wrong grant", tenant: DefaultTenantID, form: with("grant_type", "password"), status: 400, errCode: "unsupported_grant_type", aadsts: 70003},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body, _ := h.form(h.ts.URL+"/"+tc.tenant+"/oauth2/v2.0/token", tc.form, tc.basic)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			var r map[string]any
			if err := json.Unmarshal(body, &r); err != nil {
				t.Fatal(err)
			}
			if tc.status == 200 {
				if r["token_type"] != "Bearer" || r["access_token"] == "" || r["expires_in"] != float64(tc.wantTTLs) || r["ext_expires_in"] != float64(tc.wantTTLs) {
					t.Errorf("token response %v", r)
				}
				return
			}
			if r["error"] != tc.errCode {
				t.Errorf("error %v, want %s", r["error"], tc.errCode)
			}
			if desc, _ := r["error_description"].(string); !strings.HasPrefix(desc, fmt.Sprintf("AADSTS%d:", tc.aadsts)) || !strings.Contains(desc, "Trace ID:") {
				t.Errorf("error_description %q", desc)
			}
			if codes, _ := r["error_codes"].([]any); len(codes) != 1 || codes[0] != float64(tc.aadsts) {
				t.Errorf("error_codes %v", r["error_codes"])
			}
		})
	}
	if got := h.srv.Calls.Get("token"); got != len(tests)+1 {
		t.Errorf("token calls = %d, want %d", got, len(tests)+1)
	}
}

func TestBearerChecks(t *testing.T) {
	h := newHarness(t, Options{Devices: fixture(2)})
	list := h.ts.URL + "/v1.0/deviceManagement/managedDevices"
	tests := []struct {
		name   string
		auth   string
		expire bool
		msg    string
	}{
		{name: "empty", auth: "", msg: "Access token is empty."},
		{name: "garbage", auth: "Bearer not-a-token", msg: "CompactToken parsing failed"},
		{name: "expired", auth: "Bearer " + h.tok, expire: true, msg: "Lifetime validation failed, the token is expired."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.expire {
				h.srv.ExpireTokens()
			}
			req, _ := http.NewRequest(http.MethodGet, list, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			req.Header.Set("client-request-id", "my-correlation")
			status, body, hdr := h.do(req)
			if status != http.StatusUnauthorized {
				t.Fatalf("status %d: %s", status, body)
			}
			code, msg := graphCode(t, body)
			if code != "InvalidAuthenticationToken" || !strings.Contains(msg, tc.msg) {
				t.Errorf("got %s %q", code, msg)
			}
			if !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer ") || hdr.Get("request-id") == "" || hdr.Get("client-request-id") != "my-correlation" {
				t.Errorf("headers %v", hdr)
			}
			if !strings.Contains(string(body), `"client-request-id":"my-correlation"`) {
				t.Errorf("client-request-id not echoed in innerError: %s", body)
			}
		})
	}
	// A fresh token works again.
	h.tok = h.token()
	if status, body, _ := h.get(list); status != 200 {
		t.Fatalf("after refresh: %d %s", status, body)
	}
}

func TestListPaging(t *testing.T) {
	devs := fixture(7)
	tests := []struct {
		name   string
		opts   Options
		query  string
		sizes  []int
		prefix string
	}{
		{name: "top 3", query: "?$top=3&$select=id,serialNumber", sizes: []int{3, 3, 1}},
		{name: "page size option", opts: Options{PageSize: 2}, query: "?$select=id", sizes: []int{2, 2, 2, 1}},
		{name: "top above max is capped", query: "?$top=5000", sizes: []int{7}},
		{name: "empty first page", opts: Options{EmptyFirstPage: true, PageSize: 4}, query: "", sizes: []int{0, 4, 3}},
		{name: "filtered", query: "?$filter=complianceState%20eq%20'compliant'&$top=1", sizes: []int{1}},
		{name: "mounted under prefix", query: "?$top=4", sizes: []int{4, 3}, prefix: "/intune"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			opts.Devices = devs
			s := New(opts)
			var handler http.Handler = s
			if tc.prefix != "" {
				mux := http.NewServeMux()
				mux.Handle(tc.prefix+"/", http.StripPrefix(tc.prefix, s))
				handler = mux
			}
			ts := httptest.NewServer(handler)
			defer ts.Close()
			h := &harness{t: t, srv: s, ts: &httptest.Server{URL: ts.URL + tc.prefix}}
			h.tok = h.token()
			link := ts.URL + tc.prefix + "/v1.0/deviceManagement/managedDevices" + tc.query
			var sizes []int
			ids := map[string]bool{}
			for link != "" {
				status, body, _ := h.get(link)
				if status != 200 {
					t.Fatalf("GET %s: %d %s", link, status, body)
				}
				p := decodePage(t, body)
				if !strings.HasPrefix(p.Context, ts.URL+tc.prefix+"/v1.0/$metadata#deviceManagement/managedDevices") {
					t.Errorf("context %q", p.Context)
				}
				sizes = append(sizes, len(p.Value))
				for _, raw := range p.Value {
					var d struct{ ID string }
					_ = json.Unmarshal(raw, &d)
					ids[d.ID] = true
				}
				if p.NextLink != "" {
					if !strings.HasPrefix(p.NextLink, ts.URL+tc.prefix+"/v1.0/deviceManagement/managedDevices?") || !strings.Contains(p.NextLink, "$skiptoken=") {
						t.Errorf("nextLink %q is not absolute under the mount", p.NextLink)
					}
					if strings.Contains(tc.query, "$select") && !strings.Contains(p.NextLink, "$select=") {
						t.Errorf("nextLink %q lost $select", p.NextLink)
					}
				}
				link = p.NextLink
			}
			if fmt.Sprint(sizes) != fmt.Sprint(tc.sizes) {
				t.Errorf("page sizes %v, want %v", sizes, tc.sizes)
			}
			total := 0
			for _, n := range tc.sizes {
				total += n
			}
			if len(ids) != total {
				t.Errorf("%d distinct ids over %d records", len(ids), total)
			}
		})
	}
}

func TestExternalURL(t *testing.T) {
	h := newHarness(t, Options{Devices: fixture(3), ExternalURL: "https://graph.example.test/mock/"})
	_, body, _ := h.get(h.ts.URL + "/v1.0/deviceManagement/managedDevices?$top=1")
	p := decodePage(t, body)
	if !strings.HasPrefix(p.NextLink, "https://graph.example.test/mock/v1.0/deviceManagement/managedDevices?$top=1&$skiptoken=") {
		t.Errorf("nextLink %q", p.NextLink)
	}
}

func TestSelectAndNonDefault(t *testing.T) {
	h := newHarness(t, Options{Devices: fixture(2)})
	base := h.ts.URL + "/v1.0/deviceManagement/managedDevices"
	t.Run("select returns only listed props in schema order", func(t *testing.T) {
		_, body, _ := h.get(base + "?$select=serialNumber,id,ethernetMacAddress&$top=1")
		p := decodePage(t, body)
		if got := string(p.Value[0]); got != `{"id":"00000000-0000-4000-8000-000000000000","serialNumber":"PF00000000","ethernetMacAddress":null}` {
			t.Errorf("item %s", got)
		}
		if !strings.HasSuffix(p.Context, "managedDevices(serialNumber,id,ethernetMacAddress)") {
			t.Errorf("context %q", p.Context)
		}
	})
	t.Run("full object has odata.type and null non-defaults", func(t *testing.T) {
		_, body, _ := h.get(base + "?$top=1")
		var obj map[string]any
		_ = json.Unmarshal(decodePage(t, body).Value[0], &obj)
		if obj["@odata.type"] != "#microsoft.graph.managedDevice" || obj["ethernetMacAddress"] != nil || obj["physicalMemoryInBytes"] != float64(0) {
			t.Errorf("object %v", obj)
		}
		if obj["lastSyncDateTime"] != "2026-11-20T10:00:00.1234567Z" || obj["jailBroken"] != "Unknown" {
			t.Errorf("lastSync %v jailBroken %v", obj["lastSyncDateTime"], obj["jailBroken"])
		}
	})
	t.Run("get by id fills non-defaults", func(t *testing.T) {
		for _, path := range []string{"/00000000-0000-4000-8000-000000000001", "('00000000-0000-4000-8000-000000000001')"} {
			status, body, _ := h.get(base + path + "?$select=id,ethernetMacAddress")
			if status != 200 {
				t.Fatalf("%s: %d %s", path, status, body)
			}
			if !strings.Contains(string(body), `"ethernetMacAddress":"02DDEEFF0001"`) || !strings.Contains(string(body), "$entity") {
				t.Errorf("%s: %s", path, body)
			}
		}
	})
	t.Run("beta adds count", func(t *testing.T) {
		_, body, _ := h.get(h.ts.URL + "/beta/deviceManagement/managedDevices?$top=1")
		if p := decodePage(t, body); p.Count == nil || *p.Count != 2 {
			t.Errorf("count %v", p.Count)
		}
	})
}

func TestListErrors(t *testing.T) {
	h := newHarness(t, Options{Devices: fixture(2)})
	base := h.ts.URL + "/v1.0/deviceManagement/managedDevices"
	tests := []struct {
		name   string
		path   string
		status int
		code   string
		msg    string
	}{
		{name: "bad filter", path: "?$filter=serialNumber%20eq%20'x", status: 400, code: "BadRequest", msg: "unterminated"},
		{name: "unknown select", path: "?$select=id,macAddress", status: 400, code: "BadRequest", msg: "Could not find a property named 'macAddress'"},
		{name: "bad top", path: "?$top=0", status: 400, code: "BadRequest", msg: "$top"},
		{name: "bad skiptoken", path: "?$skiptoken=garbage", status: 400, code: "BadRequest", msg: "$skiptoken"},
		{name: "unknown option", path: "?$expand=users", status: 400, code: "BadRequest", msg: "'$expand' is not allowed"},
		{name: "unknown id", path: "/nope", status: 404, code: "ResourceNotFound", msg: "Resource not found"},
		{name: "unknown segment", path: "/nope/more", status: 400, code: "BadRequest", msg: "Resource not found for the segment"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body, hdr := h.get(base + tc.path)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			code, msg := graphCode(t, body)
			if code != tc.code || !strings.Contains(msg, tc.msg) {
				t.Errorf("got %s %q", code, msg)
			}
			if hdr.Get("request-id") == "" {
				t.Error("no request-id header")
			}
		})
	}
}

func TestNoMatchIsEmptyNot404(t *testing.T) {
	h := newHarness(t, Options{Devices: fixture(2)})
	status, body, _ := h.get(h.ts.URL + "/v1.0/deviceManagement/managedDevices?$filter=serialNumber%20eq%20'NOPE'")
	if p := decodePage(t, body); status != 200 || len(p.Value) != 0 || p.NextLink != "" {
		t.Errorf("status %d body %s", status, body)
	}
}

func batchItems(n int, url func(i int) string) map[string]any {
	var reqs []map[string]any
	for i := 1; i <= n; i++ {
		reqs = append(reqs, map[string]any{"id": fmt.Sprint(i), "method": "GET", "url": url(i)})
	}
	return map[string]any{"requests": reqs}
}

type batchResp struct {
	Responses []struct {
		ID      string            `json:"id"`
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers"`
		Body    json.RawMessage   `json:"body"`
	} `json:"responses"`
}

func TestBatch(t *testing.T) {
	devs := fixture(30)
	serialURL := func(i int) string {
		return "/deviceManagement/managedDevices?$filter=serialNumber%20eq%20'" + devs[i].SerialNumber + "'&$select=id,serialNumber"
	}
	t.Run("answers every item, shuffled, deterministically", func(t *testing.T) {
		h := newHarness(t, Options{Devices: devs})
		req := batchItems(20, serialURL)
		_, b1, _ := h.post(h.ts.URL+"/v1.0/$batch", req)
		status, b2, _ := h.post(h.ts.URL+"/v1.0/$batch", req)
		if status != 200 {
			t.Fatalf("status %d: %s", status, b2)
		}
		var r batchResp
		if err := json.Unmarshal(b2, &r); err != nil {
			t.Fatal(err)
		}
		inOrder := true
		for i, a := range r.Responses {
			if a.ID != fmt.Sprint(i+1) {
				inOrder = false
			}
			n := 0
			_, _ = fmt.Sscan(a.ID, &n)
			if a.Status != 200 || !strings.Contains(string(a.Body), devs[n].SerialNumber) {
				t.Errorf("item %s: %d %s", a.ID, a.Status, a.Body)
			}
		}
		if inOrder || len(r.Responses) != 20 {
			t.Errorf("%d responses, in order: %v", len(r.Responses), inOrder)
		}
		strip := func(b []byte) string { // request ids differ between calls
			var x batchResp
			_ = json.Unmarshal(b, &x)
			var ids []string
			for _, a := range x.Responses {
				ids = append(ids, a.ID+string(a.Body))
			}
			return strings.Join(ids, "|")
		}
		if strip(b1) != strip(b2) {
			t.Error("same batch answered differently")
		}
		if got := h.srv.Calls.Get("$batch"); got != 2 {
			t.Errorf("$batch calls %d", got)
		}
		if got := h.srv.Calls.Get("batchItem"); got != 40 {
			t.Errorf("batch items %d", got)
		}
	})
	t.Run("in order option, relative urls with or without slash, nextLink inside", func(t *testing.T) {
		h := newHarness(t, Options{Devices: devs, BatchInOrder: true})
		req := map[string]any{"requests": []map[string]any{
			{"id": "a", "method": "GET", "url": "deviceManagement/managedDevices?$top=25&$select=id"},
			{"id": "b", "method": "GET", "url": "/deviceManagement/managedDevices/" + devs[3].ID + "?$select=id,ethernetMacAddress"},
			{"id": "c", "method": "GET", "url": "https://graph.microsoft.com/v1.0/deviceManagement/managedDevices"},
			{"id": "d", "method": "GET", "url": "/v1.0/deviceManagement/managedDevices"},
			{"id": "e", "method": "DELETE", "url": "/deviceManagement/managedDevices/" + devs[3].ID},
			{"id": "f", "method": "GET", "url": "/deviceManagement/managedDevices?$top=1", "dependsOn": []string{"c"}},
		}}
		_, body, _ := h.post(h.ts.URL+"/v1.0/$batch", req)
		var r batchResp
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatal(err)
		}
		want := []int{200, 200, 400, 400, 405, 424}
		for i, a := range r.Responses {
			if a.Status != want[i] {
				t.Errorf("item %s: status %d, want %d: %s", a.ID, a.Status, want[i], a.Body)
			}
		}
		p := decodePage(t, r.Responses[0].Body)
		if len(p.Value) != 25 || !strings.HasPrefix(p.NextLink, h.ts.URL+"/v1.0/deviceManagement/managedDevices?$top=25&$select=id&$skiptoken=") {
			t.Errorf("item a: %d values, nextLink %q", len(p.Value), p.NextLink)
		}
		if !strings.Contains(string(r.Responses[1].Body), `"ethernetMacAddress":"02DDEEFF0003"`) {
			t.Errorf("item b %s", r.Responses[1].Body)
		}
	})
	t.Run("malformed batches", func(t *testing.T) {
		h := newHarness(t, Options{Devices: devs})
		dup := batchItems(2, serialURL)
		dup["requests"].([]map[string]any)[1]["id"] = "1"
		tests := []struct {
			name string
			body any
			msg  string
		}{
			{name: "too many", body: batchItems(21, serialURL), msg: "exceeds the limit of 20"},
			{name: "duplicate id", body: dup, msg: "duplicated"},
			{name: "empty", body: map[string]any{"requests": []any{}}, msg: "at least one"},
			{name: "not json", body: "nope", msg: "Invalid batch payload"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				status, body, _ := h.post(h.ts.URL+"/v1.0/$batch", tc.body)
				if status != 400 {
					t.Fatalf("status %d: %s", status, body)
				}
				if code, msg := graphCode(t, body); code != "BadRequest" || !strings.Contains(msg, tc.msg) {
					t.Errorf("%s %q", code, msg)
				}
			})
		}
	})
	t.Run("per-item throttling", func(t *testing.T) {
		h := newHarness(t, Options{Devices: devs, BatchInOrder: true})
		h.srv.ItemFaults.RateLimit(2, 1500*time.Millisecond)
		_, body, _ := h.post(h.ts.URL+"/v1.0/$batch", batchItems(4, serialURL))
		var r batchResp
		_ = json.Unmarshal(body, &r)
		for i, a := range r.Responses {
			if i < 2 {
				if a.Status != 429 || a.Headers["Retry-After"] != "2" {
					t.Errorf("item %s: %d %v", a.ID, a.Status, a.Headers)
				}
				if code, _ := graphCode(t, a.Body); code != "TooManyRequests" {
					t.Errorf("item %s code %s", a.ID, code)
				}
			} else if a.Status != 200 {
				t.Errorf("item %s: %d", a.ID, a.Status)
			}
		}
	})
}

func TestThrottling(t *testing.T) {
	h := newHarness(t, Options{Devices: fixture(5), ThrottleLimit: 3, ThrottleWindow: time.Minute, BatchInOrder: true})
	list := h.ts.URL + "/v1.0/deviceManagement/managedDevices?$top=1"
	for i := range 2 {
		if status, body, _ := h.get(list); status != 200 {
			t.Fatalf("request %d: %d %s", i, status, body)
		}
	}
	// The batch's items count one by one: one is admitted, two throttled.
	_, body, _ := h.post(h.ts.URL+"/v1.0/$batch", batchItems(3, func(int) string { return "/deviceManagement/managedDevices?$top=1" }))
	var r batchResp
	_ = json.Unmarshal(body, &r)
	var got []int
	for _, a := range r.Responses {
		got = append(got, a.Status)
	}
	if fmt.Sprint(got) != "[200 429 429]" {
		t.Errorf("item statuses %v", got)
	}
	status, body, hdr := h.get(list)
	if status != 429 {
		t.Fatalf("status %d", status)
	}
	if code, _ := graphCode(t, body); code != "TooManyRequests" {
		t.Errorf("code %s", code)
	}
	ra := hdr.Get("Retry-After")
	var secs float64
	if _, err := fmt.Sscan(ra, &secs); err != nil || secs <= 0 || secs > 60 {
		t.Errorf("Retry-After %q", ra)
	}
}

func TestFaults(t *testing.T) {
	h := newHarness(t, Options{Devices: fixture(3)})
	list := h.ts.URL + "/v1.0/deviceManagement/managedDevices"
	t.Run("429", func(t *testing.T) {
		h.srv.Faults.RateLimit(1, 2128*time.Millisecond)
		status, body, hdr := h.get(list)
		if status != 429 || hdr.Get("Retry-After") != "3" {
			t.Fatalf("status %d Retry-After %q", status, hdr.Get("Retry-After"))
		}
		if !strings.Contains(string(body), `"message":"Please retry again later."`) {
			t.Errorf("body %s", body)
		}
	})
	t.Run("5xx", func(t *testing.T) {
		h.srv.Faults.FailServer(1)
		status, body, _ := h.get(list)
		if code, _ := graphCode(t, body); status != 500 || code != "InternalServerError" {
			t.Errorf("%d %s", status, code)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		h.srv.Faults.Malform(1)
		status, body, _ := h.get(list)
		if status != 200 || json.Valid(body) {
			t.Errorf("%d %s", status, body)
		}
	})
	t.Run("malformed batch item", func(t *testing.T) {
		h.srv.ItemFaults.Malform(1)
		_, body, _ := h.post(h.ts.URL+"/v1.0/$batch", batchItems(1, func(int) string { return "/deviceManagement/managedDevices" }))
		var r batchResp
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatal(err)
		}
		var s string
		if err := json.Unmarshal(r.Responses[0].Body, &s); err != nil {
			t.Errorf("item body should be a base64 string, got %s", r.Responses[0].Body)
		}
	})
	t.Run("token endpoint 5xx", func(t *testing.T) {
		h.srv.TokenFaults.FailServer(1)
		status, body, _ := h.form(h.ts.URL+"/"+DefaultTenantID+"/oauth2/v2.0/token", url.Values{}, nil)
		if status != 500 || !strings.Contains(string(body), `"error":"server_error"`) {
			t.Errorf("%d %s", status, body)
		}
	})
	t.Run("latency", func(t *testing.T) {
		h.srv.Faults.SetLatency(30 * time.Millisecond)
		defer h.srv.Faults.Reset()
		start := time.Now()
		h.get(list)
		if d := time.Since(start); d < 30*time.Millisecond {
			t.Errorf("answered in %s", d)
		}
	})
}

func TestDenyPermission(t *testing.T) {
	h := newHarness(t, Options{Devices: fixture(1), DenyPermission: true})
	status, body, _ := h.get(h.ts.URL + "/v1.0/deviceManagement/managedDevices")
	code, msg := graphCode(t, body)
	if status != 403 || code != "Forbidden" {
		t.Fatalf("%d %s", status, code)
	}
	var inner map[string]any
	if err := json.Unmarshal([]byte(msg), &inner); err != nil || !strings.Contains(inner["Message"].(string), "DeviceManagementManagedDevices.Read.All") {
		t.Errorf("message is not Intune's nested JSON: %q", msg)
	}
}

func TestDeterministic(t *testing.T) {
	var bodies []string
	for range 2 {
		h := newHarness(t, Options{Devices: fixture(10)})
		_, body, _ := h.get(h.ts.URL + "/v1.0/deviceManagement/managedDevices?$top=4")
		bodies = append(bodies, strings.ReplaceAll(string(body), h.ts.URL, "BASE"))
	}
	if bodies[0] != bodies[1] {
		t.Errorf("same fixture, different bytes:\n%s\n%s", bodies[0], bodies[1])
	}
}

// clock is a fake clock the tests move by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestThrottleScopes: each app has its own budget, and all apps share the
// tenant's; both are sliding windows on the mock's clock.
func TestThrottleScopes(t *testing.T) {
	clk := &clock{now: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)}
	other := App{ClientID: "9a9a9a9a-0000-4000-8000-000000000001", ClientSecret: "other~secret"}
	h := newHarness(t, Options{Devices: fixture(2), ThrottleLimit: 3, TenantThrottleLimit: 5, ThrottleWindow: 20 * time.Second,
		Apps: []App{other}, Now: clk.Now})
	hb := &harness{t: t, srv: h.srv, ts: h.ts}
	status, body, _ := hb.form(h.ts.URL+"/"+DefaultTenantID+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {other.ClientID}, "client_secret": {other.ClientSecret}, "scope": {Scope},
	}, nil)
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &tr) != nil {
		t.Fatalf("second app's token: %d %s", status, body)
	}
	hb.tok = tr.AccessToken
	list := h.ts.URL + "/v1.0/deviceManagement/managedDevices?$top=1"
	// statuses makes n requests and returns their statuses, with the
	// Retry-After of any 429.
	statuses := func(h *harness, n int) string {
		var out []string
		for range n {
			s, _, hdr := h.get(list)
			if ra := hdr.Get("Retry-After"); ra != "" {
				out = append(out, fmt.Sprintf("%d/%s", s, ra))
			} else {
				out = append(out, fmt.Sprint(s))
			}
		}
		return strings.Join(out, " ")
	}
	if got := statuses(h, 4); got != "200 200 200 429/20" {
		t.Errorf("first app: %s, want its 3 then a 429 until they leave its window", got)
	}
	clk.advance(10 * time.Second)
	if got := statuses(hb, 3); got != "200 200 429/10" {
		t.Errorf("second app: %s, want the tenant's 2 left then a 429 until the first app's leave", got)
	}
	// The first app's requests leave the window, the second app's not yet:
	// the tenant has 3 left.
	clk.advance(10 * time.Second)
	if got := statuses(h, 4); got != "200 200 200 429/20" {
		t.Errorf("first app after its window: %s", got)
	}
}

// TestNoRetryAfter: the quirk drops Retry-After from every 429 of the Graph
// API, the throttle's and injected ones, in and out of $batch.
func TestNoRetryAfter(t *testing.T) {
	h := newHarness(t, Options{Devices: fixture(2), ThrottleLimit: 2, ThrottleWindow: time.Hour, NoRetryAfter: true, BatchInOrder: true})
	list := h.ts.URL + "/v1.0/deviceManagement/managedDevices?$top=1"
	h.get(list)
	h.srv.Faults.RateLimit(1, time.Second)
	if status, _, hdr := h.get(list); status != 429 || hdr.Get("Retry-After") != "" {
		t.Errorf("injected: %d Retry-After %q", status, hdr.Get("Retry-After"))
	}
	status, body, hdr := h.get(list)
	if code, _ := graphCode(t, body); status != 429 || code != "TooManyRequests" || hdr.Get("Retry-After") != "" {
		t.Errorf("throttled: %d %s Retry-After %q", status, code, hdr.Get("Retry-After"))
	}
	_, body, _ = h.post(h.ts.URL+"/v1.0/$batch", batchItems(1, func(int) string { return "/deviceManagement/managedDevices" }))
	var r batchResp
	if err := json.Unmarshal(body, &r); err != nil || len(r.Responses) != 1 {
		t.Fatalf("batch: %s", body)
	}
	if a := r.Responses[0]; a.Status != 429 || a.Headers["Retry-After"] != "" {
		t.Errorf("batch item: %d %v", a.Status, a.Headers)
	}
}

// TestBatchQuirks: startswith acting like contains, and a literal Graph
// refuses failing only its own $batch item.
func TestBatchQuirks(t *testing.T) {
	devs := []ManagedDevice{
		{ID: "a", DeviceName: "WS-00042", SerialNumber: "PF1"},
		{ID: "b", DeviceName: "LAB-WS-00042", SerialNumber: "PF2"},
		{ID: "c", DeviceName: "ws-000420", SerialNumber: "PF3"},
	}
	byName := func(name string) string {
		return "/deviceManagement/managedDevices?$filter=" + url.QueryEscape("startswith(deviceName,'"+name+"')") + "&$select=id"
	}
	long := strings.Repeat("x", 121)
	tests := []struct {
		name string
		opts Options
		urls []string
		want []string // per item: status and ids
	}{
		{name: "documented startswith", urls: []string{byName("ws-00042")}, want: []string{"200 a c"}},
		{name: "startswith acting like contains", opts: Options{StartsWithContains: true}, urls: []string{byName("ws-00042")}, want: []string{"200 a b c"}},
		{name: "long literal accepted by default", urls: []string{byName(long), byName("lab")}, want: []string{"200", "200 b"}},
		{name: "long literal refused alone", opts: Options{MaxFilterLiteral: 120}, urls: []string{byName(long), byName("lab")}, want: []string{"400", "200 b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Devices, tc.opts.BatchInOrder = devs, true
			h := newHarness(t, tc.opts)
			_, body, _ := h.post(h.ts.URL+"/v1.0/$batch", batchItems(len(tc.urls), func(i int) string { return tc.urls[i-1] }))
			var r batchResp
			if err := json.Unmarshal(body, &r); err != nil {
				t.Fatalf("batch: %s", body)
			}
			var got []string
			for _, a := range r.Responses {
				s := fmt.Sprint(a.Status)
				if a.Status == 200 {
					var pg struct{ Value []struct{ ID string } }
					_ = json.Unmarshal(a.Body, &pg)
					for _, v := range pg.Value {
						s += " " + v.ID
					}
				} else if code, msg := graphCode(t, a.Body); code != "BadRequest" || strings.Contains(msg, long) {
					t.Errorf("item %s: %s %q", a.ID, code, msg)
				}
				got = append(got, s)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("items %q, want %q", got, tc.want)
			}
		})
	}
}

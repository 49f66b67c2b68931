package jamfmock

import (
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

func fixture() Options {
	seen := func(d int) *string {
		return ptr(FormatTime(time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC).AddDate(0, 0, -d)))
	}
	comp := func(id, name, serial, mac, email, fv string, managed bool) Computer {
		return Computer{
			ID: id, UDID: "UDID-" + id,
			General: &General{Name: name, Platform: "Mac", LastContactTime: seen(len(id)),
				RemoteManagement: RemoteManagement{Managed: managed}, MDMCapable: MDMCapable{CapableUsers: []string{}}},
			Hardware:        &Hardware{SerialNumber: serial, MacAddress: mac, NetworkAdapterType: "IEEE80211"},
			OperatingSystem: &OperatingSystem{Name: "macOS", FileVault2Status: fv},
			UserAndLocation: &UserAndLocation{Email: email},
			Security:        &Security{SIPStatus: "ENABLED"},
		}
	}
	return Options{
		ClientID: "cid", ClientSecret: "csecret", Username: "admin", Password: "pw",
		Computers: []Computer{
			comp("1", "alpha", "C02AAA", "6A:2C:4B:B7:65:B5", "alice@example.com", FileVaultAllEncrypted, true),
			comp("2", "bravo", "C02BBB", "aa:bb:cc:dd:ee:01", "bob@example.com", FileVaultNotEncrypted, true),
			comp("3", "charlie", "C02CCC", "00:00:00:00:00:00", "", FileVaultBootEncrypted, false),
			comp("10", "delta", "C02AAA", "aa:bb:cc:dd:ee:02", "alice@example.com", FileVaultSomeEncrypted, true),
			comp("11", "echo.corp.example", "C02EEE", "AA:BB:CC:DD:EE:03", "Eve@Example.com", FileVaultNotApplicable, true),
		},
		MobileDevices: []MobileDevice{
			{MobileDeviceID: "1", DeviceType: "ios",
				General:         &MobileGeneral{DisplayName: "iphone-1", Managed: true},
				Hardware:        &MobileHardware{SerialNumber: "F0001Q", WifiMacAddress: "ee:00:7c:f0:e5:ff"},
				UserAndLocation: &MobileUserAndLocation{EmailAddress: "alice@example.com"},
				Security:        &MobileSecurity{PasscodePresent: true}},
			{MobileDeviceID: "2", DeviceType: "ios",
				General:  &MobileGeneral{DisplayName: "ipad-2"},
				Hardware: &MobileHardware{SerialNumber: "F0002Q", WifiMacAddress: "ee:00:7c:f0:e5:01"}},
		},
	}
}

type harness struct {
	t    *testing.T
	mock *Server
	srv  *httptest.Server
}

func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	m := New(opts)
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	return &harness{t: t, mock: m, srv: srv}
}

func (h *harness) do(method, path, token string, body io.Reader, hdr ...string) (int, http.Header, string) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	// Redirects are what is under test, not followed.
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func (h *harness) oauth(path, id, secret string) (int, map[string]any) {
	h.t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}
	status, _, body := h.do(http.MethodPost, path, "", strings.NewReader(form.Encode()), "Content-Type", "application/x-www-form-urlencoded")
	var out map[string]any
	_ = json.Unmarshal([]byte(body), &out)
	return status, out
}

func (h *harness) token() string {
	h.t.Helper()
	status, out := h.oauth("/api/v1/oauth/token", "cid", "csecret")
	if status != http.StatusOK {
		h.t.Fatalf("token: status %d", status)
	}
	return out["access_token"].(string)
}

type listing struct {
	TotalCount int              `json:"totalCount"`
	Results    []map[string]any `json:"results"`
}

func (h *harness) list(path string, q url.Values) (int, listing, string) {
	h.t.Helper()
	status, _, body := h.do(http.MethodGet, path+"?"+q.Encode(), h.token(), nil)
	var l listing
	if status == http.StatusOK {
		if err := json.Unmarshal([]byte(body), &l); err != nil {
			h.t.Fatalf("decode %s: %v", body, err)
		}
	}
	return status, l, body
}

func ids(l listing, key string) string {
	var out []string
	for _, r := range l.Results {
		out = append(out, fmt.Sprint(r[key]))
	}
	return strings.Join(out, ",")
}

func TestOAuthToken(t *testing.T) {
	tests := []struct {
		name, path, id, secret string
		v1                     MissingRoute
		want                   int
		wantErr                string
	}{
		{"v1 path", "/api/v1/oauth/token", "cid", "csecret", Served, 200, ""},
		{"unversioned path", "/api/oauth/token", "cid", "csecret", Served, 200, ""},
		{"bad secret", "/api/v1/oauth/token", "cid", "nope", Served, 401, "invalid_client"},
		{"unknown client", "/api/oauth/token", "other", "csecret", Served, 401, "invalid_client"},
		{"old instance v1: 404", "/api/v1/oauth/token", "cid", "csecret", MissingNotFound, 404, ""},
		{"old instance v1: 405", "/api/v1/oauth/token", "cid", "csecret", MissingMethodNotAllowed, 405, ""},
		{"old instance v1: 401", "/api/v1/oauth/token", "cid", "csecret", MissingUnauthorized, 401, ""},
		{"old instance v1: login page", "/api/v1/oauth/token", "cid", "csecret", MissingLoginPage, 200, ""},
		{"old instance v1: redirect", "/api/v1/oauth/token", "cid", "csecret", MissingRedirect, 302, ""},
		{"old instance unversioned", "/api/oauth/token", "cid", "csecret", MissingUnauthorized, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := fixture()
			opts.OAuthV1 = tc.v1
			h := newHarness(t, opts)
			status, out := h.oauth(tc.path, tc.id, tc.secret)
			if status != tc.want {
				t.Fatalf("status %d, want %d (%v)", status, tc.want, out)
			}
			if tc.wantErr != "" && out["error"] != tc.wantErr {
				t.Fatalf("error %v, want %s", out["error"], tc.wantErr)
			}
			missing := tc.v1 != Served && tc.path == "/api/v1/oauth/token"
			if status == 200 && !missing && (out["token_type"] != "Bearer" || out["expires_in"].(float64) != 1200 || out["access_token"] == "") {
				t.Fatalf("token response %v", out)
			}
			if missing && (out["access_token"] != nil || out["error"] != nil) {
				t.Fatalf("a missing token path answered like one: %v", out)
			}
		})
	}
	t.Run("wrong grant type", func(t *testing.T) {
		h := newHarness(t, fixture())
		status, _, body := h.do(http.MethodPost, "/api/oauth/token", "", strings.NewReader("grant_type=password&client_id=cid&client_secret=csecret"),
			"Content-Type", "application/x-www-form-urlencoded")
		if status != 400 || !strings.Contains(body, "unsupported_grant_type") {
			t.Fatalf("%d %s", status, body)
		}
	})
}

func TestLegacyTokenLifecycle(t *testing.T) {
	h := newHarness(t, fixture())
	req := func(path, user, pass string) (int, string) {
		r, _ := http.NewRequest(http.MethodPost, h.srv.URL+path, nil)
		r.SetBasicAuth(user, pass)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := req("/api/v1/auth/token", "admin", "wrong"); status != 401 || !strings.Contains(body, `"errors" : [ ]`) {
		t.Fatalf("bad password: %d %s", status, body)
	}
	status, body := req("/api/v1/auth/token", "admin", "pw")
	var tok struct{ Token, Expires string }
	if status != 200 || json.Unmarshal([]byte(body), &tok) != nil || tok.Token == "" {
		t.Fatalf("token: %d %s", status, body)
	}
	exp, err := time.Parse("2006-01-02T15:04:05.000Z", tok.Expires)
	if err != nil || time.Until(exp) < 19*time.Minute {
		t.Fatalf("expires %q: %v", tok.Expires, err)
	}
	inv := "/api/v3/computers-inventory"
	if status, _, _ := h.do(http.MethodGet, inv, tok.Token, nil); status != 200 {
		t.Fatalf("fresh token: %d", status)
	}
	// keep-alive swaps the token; the old one is now invalidated.
	status, _, body = h.do(http.MethodPost, "/api/v1/auth/keep-alive", tok.Token, nil)
	var renewed struct{ Token string }
	if status != 200 || json.Unmarshal([]byte(body), &renewed) != nil || renewed.Token == tok.Token {
		t.Fatalf("keep-alive: %d %s", status, body)
	}
	if status, _, body := h.do(http.MethodGet, inv, tok.Token, nil); status != 401 || body != "{\n  \"httpStatus\" : 401,\n  \"errors\" : [ ]\n}" {
		t.Fatalf("old token after keep-alive: %d %q", status, body)
	}
	if status, _, _ := h.do(http.MethodPost, "/api/v1/auth/invalidate-token", renewed.Token, nil); status != 204 {
		t.Fatalf("invalidate: %d", status)
	}
	if status, _, _ := h.do(http.MethodGet, inv, renewed.Token, nil); status != 401 {
		t.Fatalf("invalidated token: %d", status)
	}
	if got := h.mock.Calls.Get("authToken"); got != 2 {
		t.Fatalf("authToken calls %d", got)
	}
}

func TestBearerFailures(t *testing.T) {
	const invalidToken = "{\n  \"httpStatus\" : 401,\n  \"errors\" : [ {\n    \"code\" : \"INVALID_TOKEN\",\n    \"description\" : \"Unauthorized\",\n    \"id\" : \"0\",\n    \"field\" : null\n  } ]\n}"
	h := newHarness(t, fixture())
	tok := h.token()
	tests := []struct {
		name  string
		token string
		setup func()
	}{
		{"missing token", "", nil},
		{"unknown token", "deadbeef", nil},
		{"expired token", tok, h.mock.ExpireTokens},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			status, hdr, body := h.do(http.MethodGet, "/api/v3/computers-inventory", tc.token, nil)
			if status != 401 || body != invalidToken || hdr.Get("Content-Type") != contentType {
				t.Fatalf("%d %s %q", status, hdr.Get("Content-Type"), body)
			}
		})
	}
}

func TestPaging(t *testing.T) {
	h := newHarness(t, fixture())
	for page, want := range []string{"1,2", "3,10", "11", ""} {
		status, l, body := h.list("/api/v3/computers-inventory", url.Values{"page": {fmt.Sprint(page)}, "page-size": {"2"}, "sort": {"id:asc"}})
		if status != 200 || l.TotalCount != 5 || ids(l, "id") != want {
			t.Fatalf("page %d: %d total=%d ids=%s %s", page, status, l.TotalCount, ids(l, "id"), body)
		}
	}
	t.Run("default page size", func(t *testing.T) {
		opts := fixture()
		opts.DefaultPageSize = 3
		h := newHarness(t, opts)
		_, l, _ := h.list("/api/v3/computers-inventory", nil)
		if len(l.Results) != 3 || l.TotalCount != 5 {
			t.Fatalf("got %d of %d", len(l.Results), l.TotalCount)
		}
	})
	t.Run("page size capped", func(t *testing.T) {
		opts := fixture()
		opts.MaxPageSize = 2
		h := newHarness(t, opts)
		_, l, _ := h.list("/api/v3/computers-inventory", url.Values{"page-size": {"500"}})
		if len(l.Results) != 2 || l.TotalCount != 5 {
			t.Fatalf("got %d of %d", len(l.Results), l.TotalCount)
		}
	})
	for _, bad := range []url.Values{{"page": {"-1"}}, {"page": {"x"}}, {"page-size": {"0"}}, {"page-size": {"1e3"}}} {
		t.Run("bad "+bad.Encode(), func(t *testing.T) {
			if status, _, body := h.list("/api/v3/computers-inventory", bad); status != 400 || !strings.Contains(body, `"httpStatus" : 400`) {
				t.Fatalf("%d %s", status, body)
			}
		})
	}
}

func TestSectionsAndSort(t *testing.T) {
	h := newHarness(t, fixture())
	tests := []struct {
		name    string
		q       url.Values
		status  int
		present []string
		null    []string
		order   string
	}{
		{"default section and sort", nil, 200, []string{"general"}, []string{"hardware", "operatingSystem", "userAndLocation", "purchasing"}, "1,2,3,10,11"},
		{"repeated sections", url.Values{"section": {"GENERAL", "HARDWARE", "OPERATING_SYSTEM", "USER_AND_LOCATION"}, "sort": {"id:desc"}},
			200, []string{"general", "hardware", "operatingSystem", "userAndLocation"}, []string{"security", "diskEncryption", "applications"}, "11,10,3,2,1"},
		{"comma separated sections", url.Values{"section": {"HARDWARE,SECURITY"}, "sort": {"hardware.model:asc,id:asc"}},
			200, []string{"hardware", "security"}, []string{"general"}, "1,2,3,10,11"},
		{"unmodelled section rendered empty", url.Values{"section": {"APPLICATIONS"}}, 200, []string{"applications"}, []string{"general"}, ""},
		{"unknown section", url.Values{"section": {"BOGUS"}}, 400, nil, nil, ""},
		{"lower-case section", url.Values{"section": {"general"}}, 400, nil, nil, ""},
		{"unknown sort field", url.Values{"sort": {"hardware.serialNumber:asc"}}, 400, nil, nil, ""},
		{"bad sort direction", url.Values{"sort": {"id:up"}}, 400, nil, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, l, body := h.list("/api/v3/computers-inventory", tc.q)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			if status != 200 {
				return
			}
			for _, k := range tc.present {
				if l.Results[0][k] == nil {
					t.Errorf("section %s missing", k)
				}
			}
			for _, k := range tc.null {
				if v, ok := l.Results[0][k]; !ok || v != nil {
					t.Errorf("section %s = %v, want null", k, v)
				}
			}
			if tc.order != "" && ids(l, "id") != tc.order {
				t.Errorf("order %s, want %s", ids(l, "id"), tc.order)
			}
		})
	}
}

func TestFilters(t *testing.T) {
	tests := []struct {
		name   string
		filter string
		status int
		ids    string
		body   string
	}{
		{"serials or-joined", `hardware.serialNumber=="c02aaa",hardware.serialNumber=="C02EEE"`, 200, "1,10,11", ""},
		{"mac case-insensitive", `hardware.macAddress=="6a:2c:4b:b7:65:b5",hardware.macAddress=="aa:bb:cc:dd:ee:03"`, 200, "1,11", ""},
		{"hostname with fqdn wildcard", `general.name=="echo",general.name=="echo.*"`, 200, "11", ""},
		{"email", `userAndLocation.email=="eve@example.com"`, 200, "11", ""},
		// J-RSQL documents =in= and case-insensitive comparison "for all
		// operators": https://developer.jamf.com/jamf-pro/docs/filtering-with-rsql
		{"serials in a list, any case", `hardware.serialNumber=in=(c02aaa,"C02eee")`, 200, "1,10,11", ""},
		{"macs in a list, any case", `hardware.macAddress=in=(6a:2c:4b:b7:65:b5,"AA:BB:CC:DD:EE:03")`, 200, "1,11", ""},
		{"names in a list, any case", `general.name=in=(ALPHA,"Echo.Corp.Example")`, 200, "1,11", ""},
		{"emails in a list, any case", `userAndLocation.email=in=(eve@example.com,"BOB@EXAMPLE.COM")`, 200, "2,11", ""},
		{"managed and encrypted", `general.remoteManagement.managed==true;operatingSystem.fileVault2Status=in=(ALL_ENCRYPTED,BOOT_ENCRYPTED)`, 200, "1", ""},
		{"no match", `hardware.serialNumber=="NOPE"`, 200, "", ""},
		{"altMacAddress not filterable", `hardware.altMacAddress=="aa:bb:cc:dd:ee:ff"`, 400, "",
			"Cannot filter by field [hardware.altMacAddress]. Fields that can be used in filtering results of this endpoint: [general.name, udid, id,"},
		{"v4 field on v3", `general.lastCheckIn>2020-01-01`, 400, "", "Cannot filter by field [general.lastCheckIn]"},
		{"syntax error", `hardware.serialNumber=="X`, 400, "", `"field" : "filter"`},
	}
	h := newHarness(t, fixture())
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, l, body := h.list("/api/v3/computers-inventory", url.Values{"filter": {tc.filter}, "sort": {"id:asc"}})
			if status != tc.status || (status == 200 && ids(l, "id") != tc.ids) || !strings.Contains(body, tc.body) {
				t.Fatalf("status %d ids %q body %s", status, ids(l, "id"), body)
			}
		})
	}
	t.Run("syntax error as 500", func(t *testing.T) {
		opts := fixture()
		opts.SyntaxError500 = true
		h := newHarness(t, opts)
		status, _, body := h.list("/api/v3/computers-inventory", url.Values{"filter": {`general.name==x (1)`}})
		if status != 500 || body != "{\n  \"httpStatus\" : 500,\n  \"errors\" : [ ]\n}" {
			t.Fatalf("%d %q", status, body)
		}
	})
}

func TestReleases(t *testing.T) {
	tests := []struct {
		name    string
		release Release
		served  string
	}{
		{"default is 11.30+", Release{}, "v3,v4"},
		{"10.x: v1 only", ReleaseV1Only, "v1"},
		{"11.23 to 11.29", ReleaseV3, "v1,v2,v3"},
		{"11.30+", ReleaseV4, "v3,v4"},
		{"v4 only", ReleaseV4Only, "v4"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := fixture()
			opts.Release = tc.release
			h := newHarness(t, opts)
			var served []string
			for _, v := range []string{"v1", "v2", "v3", "v4", "v5"} {
				status, l, body := h.list("/api/"+v+"/computers-inventory", url.Values{"sort": {"id:asc"}})
				switch status {
				case 200:
					served = append(served, v)
					if l.TotalCount != 5 {
						t.Errorf("%s: %d computers", v, l.TotalCount)
					}
				case 404:
					if !strings.Contains(body, `"httpStatus" : 404`) {
						t.Errorf("%s: 404 body %s", v, body)
					}
				default:
					t.Errorf("%s: status %d", v, status)
				}
				if status, _, _ := h.do(http.MethodGet, "/api/"+v+"/computers-inventory-detail/1", h.token(), nil); (status == 200) != (l.TotalCount > 0) {
					t.Errorf("%s: detail status %d, listing %d", v, status, l.TotalCount)
				}
			}
			if got := strings.Join(served, ","); got != tc.served {
				t.Errorf("served %s, want %s", got, tc.served)
			}
			if got, want := h.mock.Calls.Get("notFound"), 2*(5-len(served)); got != want {
				t.Errorf("%d requests counted as not found, want %d: a 404 is a call too", got, want)
			}
			status, _, body := h.do(http.MethodGet, "/api/v1/jamf-pro-version", h.token(), nil)
			want := opts.Release.Version
			if want == "" {
				want = ReleaseV4.Version
			}
			if status != 200 || body != "{\n  \"version\" : \""+want+"\"\n}" {
				t.Errorf("jamf-pro-version: %d %q", status, body)
			}
			if status, _, _ := h.do(http.MethodGet, "/api/v1/jamf-pro-version", "", nil); status != 401 {
				t.Errorf("jamf-pro-version without a token: %d", status)
			}
		})
	}
}

func TestHeaderLimit(t *testing.T) {
	tests := []struct {
		name   string
		limit  int
		filter int // bytes of filter value
		want   int
	}{
		{"small request", 0, 100, 200},
		{"request line over Tomcat's 8 KB", 0, 8200, 400},
		{"request line under a raised limit", 16384, 8200, 200},
		{"no limit", -1, 20000, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := fixture()
			opts.MaxHeaderBytes = tc.limit
			h := newHarness(t, opts)
			q := url.Values{"filter": {`hardware.serialNumber=="` + strings.Repeat("A", tc.filter) + `"`}}
			status, _, body := h.do(http.MethodGet, "/api/v3/computers-inventory?"+q.Encode(), h.token(), nil)
			if status != tc.want {
				t.Fatalf("status %d, want %d: %.200s", status, tc.want, body)
			}
			if status == 400 && !strings.Contains(body, "Request header is too large") {
				t.Errorf("400 body %s", body)
			}
		})
	}
}

func TestV4LastCheckIn(t *testing.T) {
	h := newHarness(t, fixture())
	status, l, body := h.list("/api/v4/computers-inventory", url.Values{"filter": {`general.lastCheckIn>2000-01-01`}, "sort": {"general.lastCheckIn:desc"}})
	if status != 200 || l.TotalCount != 5 {
		t.Fatalf("%d %s", status, body)
	}
	g := l.Results[0]["general"].(map[string]any)
	if _, ok := g["lastContactTime"]; ok || g["lastCheckIn"] == nil {
		t.Fatalf("v4 general: %v", g)
	}
	if status, _, _ := h.list("/api/v4/computers-inventory", url.Values{"filter": {`general.lastContactTime>2000-01-01`}}); status != 400 {
		t.Fatalf("v3 field on v4: %d", status)
	}
	if status, _, _ := h.list("/api/v9/computers-inventory", nil); status != 404 {
		t.Fatalf("unknown version: %d", status)
	}
}

func TestMobileDevices(t *testing.T) {
	h := newHarness(t, fixture())
	tests := []struct {
		name, filter, ids string
		status            int
	}{
		{"serial", `serialNumber=="f0001q",serialNumber=="F0002Q"`, "1,2", 200},
		{"wifi mac", `wifiMacAddress=="EE:00:7C:F0:E5:FF"`, "1", 200},
		{"display name", `displayName=="ipad-2"`, "2", 200},
		{"email", `emailAddress=="ALICE@example.com"`, "1", 200},
		{"dotted names are computer fields", `hardware.serialNumber=="F0001Q"`, "", 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, l, body := h.list("/api/v2/mobile-devices/detail", url.Values{"filter": {tc.filter}, "sort": {"mobileDeviceId:asc"},
				"section": {"GENERAL", "HARDWARE", "USER_AND_LOCATION", "SECURITY"}})
			if status != tc.status || ids(l, "mobileDeviceId") != tc.ids {
				t.Fatalf("%d %q %s", status, ids(l, "mobileDeviceId"), body)
			}
		})
	}
	t.Run("null sections", func(t *testing.T) {
		_, l, _ := h.list("/api/v2/mobile-devices/detail", url.Values{"section": {"GENERAL", "SECURITY"}, "sort": {"mobileDeviceId:asc"}})
		if l.Results[1]["security"] != nil || l.Results[0]["security"] == nil || l.Results[0]["hardware"] != nil {
			t.Fatalf("%v", l.Results)
		}
	})
	t.Run("default sort displayName", func(t *testing.T) {
		_, l, _ := h.list("/api/v2/mobile-devices/detail", nil)
		if ids(l, "mobileDeviceId") != "2,1" { // ipad-2 < iphone-1
			t.Fatalf("%s", ids(l, "mobileDeviceId"))
		}
	})
	t.Run("no privilege", func(t *testing.T) {
		opts := fixture()
		opts.NoMobilePrivilege = true
		h := newHarness(t, opts)
		if status, _, body := h.list("/api/v2/mobile-devices/detail", nil); status != 403 || !strings.Contains(body, "INVALID_PRIVILEGE") {
			t.Fatalf("%d %s", status, body)
		}
	})
}

func TestSingleRecords(t *testing.T) {
	h := newHarness(t, fixture())
	tok := h.token()
	tests := []struct {
		path   string
		status int
		check  func(map[string]any) bool
	}{
		{"/api/v3/computers-inventory/10?section=HARDWARE", 200, func(m map[string]any) bool { return m["hardware"] != nil && m["general"] == nil }},
		{"/api/v3/computers-inventory/10", 200, func(m map[string]any) bool { return m["general"] != nil && m["hardware"] == nil }},
		{"/api/v3/computers-inventory-detail/10", 200, func(m map[string]any) bool { return m["general"] != nil && m["hardware"] != nil }},
		{"/api/v3/computers-inventory/999", 404, nil},
		{"/api/v2/mobile-devices/2/detail", 200, func(m map[string]any) bool { return m["general"] != nil && m["security"] == nil }},
		{"/api/v2/mobile-devices/999/detail", 404, nil},
		{"/api/v1/nothing-here", 404, nil},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			status, _, body := h.do(http.MethodGet, tc.path, tok, nil)
			var m map[string]any
			_ = json.Unmarshal([]byte(body), &m)
			if status != tc.status || (tc.check != nil && !tc.check(m)) {
				t.Fatalf("%d %s", status, body)
			}
		})
	}
}

func TestFaults(t *testing.T) {
	h := newHarness(t, fixture())
	tests := []struct {
		name   string
		inject func()
		status int
		check  func(http.Header, string) bool
	}{
		{"rate limited", func() { h.mock.Faults.RateLimit(1, 1500*time.Millisecond) }, 429,
			func(hd http.Header, _ string) bool { return hd.Get("Retry-After") == "2" }},
		{"server error", func() { h.mock.Faults.FailServer(1) }, 500,
			func(_ http.Header, b string) bool { return b == "{\n  \"httpStatus\" : 500,\n  \"errors\" : [ ]\n}" }},
		{"malformed", func() { h.mock.Faults.Malform(1) }, 200,
			func(_ http.Header, b string) bool { return !json.Valid([]byte(b)) }},
		{"recovered", func() {}, 200, func(_ http.Header, b string) bool { return json.Valid([]byte(b)) }},
	}
	tok := h.token()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.inject()
			status, hdr, body := h.do(http.MethodGet, "/api/v3/computers-inventory", tok, nil)
			if status != tc.status || !tc.check(hdr, body) {
				t.Fatalf("%d %v %q", status, hdr, body)
			}
		})
	}
}

func TestConcurrencyLimit(t *testing.T) {
	opts := fixture()
	opts.ConcurrencyLimit = 2
	h := newHarness(t, opts)
	tok := h.token()
	h.mock.Faults.SetLatency(200 * time.Millisecond)
	var wg sync.WaitGroup
	statuses := make([]int, 4)
	for i := range statuses {
		wg.Go(func() {
			statuses[i], _, _ = h.do(http.MethodGet, "/api/v3/computers-inventory", tok, nil)
		})
	}
	wg.Wait()
	ok, rejected := 0, 0
	for _, s := range statuses {
		switch s {
		case 200:
			ok++
		case 503:
			rejected++
		}
	}
	if ok != 2 || rejected != 2 || h.mock.Calls.Get("rejected") != 2 {
		t.Fatalf("statuses %v, rejected count %d", statuses, h.mock.Calls.Get("rejected"))
	}
}

func TestJacksonFormatAndDeterminism(t *testing.T) {
	h := newHarness(t, fixture())
	tok := h.token()
	path := "/api/v3/computers-inventory?section=HARDWARE&filter=id%3D%3D3"
	status, hdr, body := h.do(http.MethodGet, path, tok, nil)
	want := `{
  "totalCount" : 1,
  "results" : [ {
    "id" : "3",
    "udid" : "UDID-3",
    "general" : null,
    "diskEncryption" : null,
    "purchasing" : null,
    "applications" : null,
    "storage" : null,
    "userAndLocation" : null,
    "configurationProfiles" : null,
    "printers" : null,
    "services" : null,
    "hardware" : {
      "make" : "",
      "model" : "",
      "modelIdentifier" : "",
      "serialNumber" : "C02CCC",
      "networkAdapterType" : "IEEE80211",
      "macAddress" : "00:00:00:00:00:00",
      "altNetworkAdapterType" : null,
      "altMacAddress" : null,
      "appleSilicon" : false
    },
    "localUserAccounts" : null,
    "certificates" : null,
    "attachments" : null,
    "plugins" : null,
    "packageReceipts" : null,
    "fonts" : null,
    "security" : null,
    "operatingSystem" : null,
    "licensedSoftware" : null,
    "ibeacons" : null,
    "softwareUpdates" : null,
    "extensionAttributes" : null,
    "contentCaching" : null,
    "groupMemberships" : null
  } ]
}`
	if status != 200 || body != want || hdr.Get("Content-Type") != "application/json;charset=UTF-8" {
		t.Fatalf("%d %s\n%s", status, hdr.Get("Content-Type"), body)
	}
	_, _, again := h.do(http.MethodGet, path, tok, nil)
	if again != body {
		t.Fatal("same request, different bytes")
	}
	if got := string(jackson([]byte(`{"a":[],"b":{},"c":[1,"x,y",{"d":"e\"}"}],"f":"<&>"}`))); got !=
		"{\n  \"a\" : [ ],\n  \"b\" : { },\n  \"c\" : [ 1, \"x,y\", {\n    \"d\" : \"e\\\"}\"\n  } ],\n  \"f\" : \"<&>\"\n}" {
		t.Fatalf("jackson: %q", got)
	}
}

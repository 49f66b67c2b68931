package jamf

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postured/postured/internal/conf"
	"github.com/postured/postured/internal/fleet"
	"github.com/postured/postured/providers"
	"github.com/postured/postured/providers/jamf/jamfmock"
)

var _ interface {
	Lookup(context.Context, providers.Query) ([]providers.Record, error)
	List(context.Context) ([]providers.Record, error)
} = (*Provider)(nil)

const (
	testClientID = "postured-client"
	testSecret   = "s3cr3t-client-value"
	testUser     = "api-reader"
	testPassword = "pw-value-xyz"
)

// recorder wraps the mock to keep every request's path and query, to
// answer a request in the mock's place (before, reporting whether it did)
// and to run a hook after a request was served.
type recorder struct {
	next   http.Handler
	mu     sync.Mutex
	reqs   []*url.URL
	before func(http.ResponseWriter, *http.Request) bool
	after  func(*http.Request)
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req.URL)
	before, after := r.before, r.after
	r.mu.Unlock()
	if before != nil && before(w, req) {
		return
	}
	r.next.ServeHTTP(w, req)
	if after != nil {
		after(req)
	}
}

func (r *recorder) setBefore(f func(http.ResponseWriter, *http.Request) bool) {
	r.mu.Lock()
	r.before = f
	r.mu.Unlock()
}

func (r *recorder) setAfter(f func(*http.Request)) {
	r.mu.Lock()
	r.after = f
	r.mu.Unlock()
}

func (r *recorder) paths(prefix string) []*url.URL {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*url.URL
	for _, u := range r.reqs {
		if strings.HasPrefix(u.Path, prefix) {
			out = append(out, u)
		}
	}
	return out
}

type env struct {
	mock *jamfmock.Server
	rec  *recorder
	url  string
}

func newEnv(t *testing.T, opts jamfmock.Options) *env {
	t.Helper()
	if opts.ClientID == "" {
		opts.ClientID, opts.ClientSecret = testClientID, testSecret
	}
	if opts.Username == "" {
		opts.Username, opts.Password = testUser, testPassword
	}
	m := jamfmock.New(opts)
	rec := &recorder{next: m}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return &env{mock: m, rec: rec, url: srv.URL}
}

// config is a fast-retrying, client-credentials config for the mock.
func (e *env) config(mut ...func(*Config)) *Config {
	c := &Config{
		Common:       providers.Common{Name: "jamf", Type: "jamf", Weight: 2},
		BaseURL:      e.url,
		ClientID:     testClientID,
		ClientSecret: testSecret,
	}
	c.RequestsPerSecond, c.Burst = 10000, 100 // the budget is not under test here
	c.RetryWaitMin = conf.Duration(5 * time.Millisecond)
	c.RetryWaitMax = conf.Duration(50 * time.Millisecond)
	for _, f := range mut {
		f(c)
	}
	c.Defaults()
	return c
}

func basicAuth(c *Config) {
	c.ClientID, c.ClientSecret, c.Username, c.Password = "", "", testUser, testPassword
}

func newProv(t *testing.T, cfg *Config) *Provider {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := New(cfg, providers.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func str(s string) *string { return &s }

func mockComputer(id, name, serial, mac, email, fv string, managed bool) jamfmock.Computer {
	return jamfmock.Computer{
		ID: id,
		General: &jamfmock.General{Name: name, LastContactTime: str("2026-11-20T10:00:00.123Z"),
			RemoteManagement: jamfmock.RemoteManagement{Managed: managed}},
		Hardware:        &jamfmock.Hardware{SerialNumber: serial, MacAddress: mac},
		OperatingSystem: &jamfmock.OperatingSystem{FileVault2Status: fv},
		UserAndLocation: &jamfmock.UserAndLocation{Email: email},
	}
}

func mockMobile(id, name, serial, mac, email string, managed, passcode, jailbroken bool) jamfmock.MobileDevice {
	return jamfmock.MobileDevice{
		MobileDeviceID: id, DeviceType: "ios",
		General:         &jamfmock.MobileGeneral{DisplayName: name, Managed: managed, LastInventoryUpdateDate: str("2026-11-19T08:00:00.000Z")},
		Hardware:        &jamfmock.MobileHardware{SerialNumber: serial, WifiMacAddress: mac},
		UserAndLocation: &jamfmock.MobileUserAndLocation{EmailAddress: email},
		Security:        &jamfmock.MobileSecurity{PasscodePresent: passcode, JailBreakDetected: jailbroken},
	}
}

// smallFleet is a hand-written inventory whose identifiers are stored the
// messy way Jamf stores them.
func smallFleet() jamfmock.Options {
	mac := mockComputer("9", "MBP-00042.corp.example", "c02xk1zzjgh5", "6A:2C:4B:B7:65:B5", "Alice@Example.COM", jamfmock.FileVaultAllEncrypted, true)
	mac.Hardware.AltMacAddress = str("82:45:58:44:dc:01")
	return jamfmock.Options{
		Computers: []jamfmock.Computer{
			mac,
			mockComputer("12", "bob-mbp", "C02BOB", "aa:bb:cc:dd:ee:01", "bob@example.com", jamfmock.FileVaultNotEncrypted, true),
		},
		MobileDevices: []jamfmock.MobileDevice{
			mockMobile("12", "iPhone-7", "F0007Q", "ee:00:7c:f0:e5:ff", "alice@example.com", true, true, false),
		},
	}
}

func ids(recs []providers.Record) string {
	var out []string
	for _, r := range recs {
		out = append(out, r.ID)
	}
	return strings.Join(out, ",")
}

func TestLookupKinds(t *testing.T) {
	e := newEnv(t, smallFleet())
	p := newProv(t, e.config())
	tests := []struct {
		name   string
		kind   providers.Kind
		values []string
		want   string
	}{
		{"serial, stored lower case", providers.KindSerial, []string{"C02XK1ZZJGH5"}, "9"},
		{"serial of a mobile device", providers.KindSerial, []string{"F0007Q", "C02BOB"}, "12,mobile-12"},
		{"primary mac, stored upper case", providers.KindMAC, []string{"6a2c4bb765b5"}, "9"},
		{"wifi mac of a mobile device", providers.KindMAC, []string{"ee007cf0e5ff"}, "mobile-12"},
		{"alt mac is not filterable in Jamf", providers.KindMAC, []string{"82455844dc01"}, ""},
		{"hostname, stored as upper-case fqdn", providers.KindHostname, []string{"mbp-00042"}, "9"},
		{"hostname of a mobile device", providers.KindHostname, []string{"iphone-7"}, "mobile-12"},
		{"email, stored mixed case, on both kinds", providers.KindEmail, []string{"alice@example.com"}, "9,mobile-12"},
		{"no match", providers.KindSerial, []string{"NOPE"}, ""},
		{"nothing filterable", providers.KindEmail, []string{"*@*"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := p.Lookup(context.Background(), providers.Query{Kind: tc.kind, Values: tc.values})
			if err != nil {
				t.Fatal(err)
			}
			if ids(recs) != tc.want {
				t.Fatalf("got %q, want %q", ids(recs), tc.want)
			}
			for _, r := range recs {
				if !slices.ContainsFunc(tc.values, func(v string) bool { return r.Has(tc.kind, v) }) {
					t.Errorf("record %s carries none of %q after normalisation: %+v", r.ID, tc.values, r)
				}
			}
		})
	}
	t.Run("normalised record", func(t *testing.T) {
		recs, err := p.Lookup(context.Background(), providers.Query{Kind: providers.KindSerial, Values: []string{"C02XK1ZZJGH5"}})
		if err != nil || len(recs) != 1 {
			t.Fatal(recs, err)
		}
		r := recs[0]
		want := providers.Record{
			ID: "9", Serials: []string{"C02XK1ZZJGH5"}, MACs: []string{"6a2c4bb765b5", "82455844dc01"},
			Hostnames: []string{"mbp-00042"}, Emails: []string{"alice@example.com"},
			LastSeen: time.Date(2026, 11, 20, 10, 0, 0, 123e6, time.UTC),
			Score:    100, Reason: "managed=true fileVault2Status=ALL_ENCRYPTED",
		}
		if fmt.Sprintf("%+v", r) != fmt.Sprintf("%+v", want) {
			t.Fatalf("got  %+v\nwant %+v", r, want)
		}
	})
}

// TestLookupFleet looks every Jamf computer of a generated fleet up by each
// kind, with the identifiers as Cloudflare would send them, normalised.
func TestLookupFleet(t *testing.T) {
	f := fleet.Generate(400, 11, time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC))
	comps := jamfmock.FleetComputers(f)
	e := newEnv(t, jamfmock.Options{Computers: comps, MobileDevices: jamfmock.FleetMobileDevices(f)})
	p := newProv(t, e.config())
	for _, kind := range providers.Kinds {
		t.Run(kind.String(), func(t *testing.T) {
			want := map[string]string{} // normalised value -> an id that must come back
			var values []string
			for _, c := range comps {
				var raw string
				switch kind {
				case providers.KindSerial:
					raw = c.Hardware.SerialNumber
				case providers.KindMAC:
					raw = c.Hardware.MacAddress
				case providers.KindHostname:
					raw = c.General.Name
				case providers.KindEmail:
					if c.UserAndLocation != nil {
						raw = c.UserAndLocation.Email
					}
				}
				v, ok := providers.Normalize(kind, raw)
				if !ok {
					continue
				}
				if _, dup := want[v]; !dup {
					values = append(values, v)
				}
				want[v] = c.ID
			}
			recs, err := p.Lookup(context.Background(), providers.Query{Kind: kind, Values: values})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for _, r := range recs {
				got[r.ID] = true
			}
			for v, id := range want {
				if !got[id] {
					t.Errorf("%s %q: record %s not returned", kind, v, id)
				}
			}
		})
	}
}

func TestAuth(t *testing.T) {
	tests := []struct {
		name       string
		mock       func(*jamfmock.Options)
		cfg        func(*Config)
		wantErr    string
		oauthCalls int
		basicCalls int
	}{
		{"client credentials", nil, nil, "", 1, 0},
		{"explicit token path", nil, func(c *Config) { c.TokenPath = "/api/oauth/token" }, "", 1, 0},
		{"basic auth", nil, basicAuth, "", 0, 1},
		{"bad client secret", nil, func(c *Config) { c.ClientSecret = "wrong-" + testSecret },
			"jamf: lookup computers: fetch token: /api/v1/oauth/token: credentials rejected: status 401", 1, 0},
		{"bad client secret on an older Jamf Pro", func(o *jamfmock.Options) { o.OAuthV1 = jamfmock.MissingNotFound },
			func(c *Config) { c.ClientSecret = "wrong-" + testSecret },
			"jamf: lookup computers: fetch token: /api/oauth/token: credentials rejected: status 401", 1, 0},
		{"bad password", nil, func(c *Config) { basicAuth(c); c.Password = "wrong-" + testPassword },
			"jamf: lookup computers: fetch token: /api/v1/auth/token: credentials rejected: status 401", 0, 1},
		{"pinned path missing on server", func(o *jamfmock.Options) { o.OAuthV1 = jamfmock.MissingNotFound },
			func(c *Config) { c.TokenPath = "/api/v1/oauth/token" }, "status 404", 0, 0},
		{"no token path at all", func(o *jamfmock.Options) { o.OAuthV1 = jamfmock.MissingLoginPage },
			func(c *Config) { c.TokenPath = "/api/v1/oauth/token" }, "/api/v1/oauth/token: not a token endpoint", 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := smallFleet()
			if tc.mock != nil {
				tc.mock(&opts)
			}
			e := newEnv(t, opts)
			var muts []func(*Config)
			if tc.cfg != nil {
				muts = append(muts, tc.cfg)
			}
			muts = append(muts, func(c *Config) { c.MobileDevices = ptr(false) })
			p := newProv(t, e.config(muts...))
			recs, err := p.Lookup(context.Background(), providers.Query{Kind: providers.KindSerial, Values: []string{"C02BOB"}})
			switch {
			case tc.wantErr == "" && (err != nil || ids(recs) != "12"):
				t.Fatalf("got %q, %v", ids(recs), err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			if err != nil && (strings.Contains(err.Error(), testSecret) || strings.Contains(err.Error(), testPassword)) {
				t.Fatalf("secret in error: %v", err)
			}
			if got := e.mock.Calls.Get("oauthToken"); got != tc.oauthCalls {
				t.Errorf("oauth token calls %d, want %d", got, tc.oauthCalls)
			}
			if got := e.mock.Calls.Get("authToken"); got != tc.basicCalls {
				t.Errorf("basic token calls %d, want %d", got, tc.basicCalls)
			}
		})
	}
}

// TestTokenPathFallback plays a Jamf Pro older than /api/v1/oauth/token in
// every way such a server is seen to answer for it: each must lead to
// /api/oauth/token, and the path that worked is the one asked next time.
func TestTokenPathFallback(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer jamfmock.MissingRoute
	}{
		{"404", jamfmock.MissingNotFound},
		{"405", jamfmock.MissingMethodNotAllowed},
		{"401 from the API's token filter", jamfmock.MissingUnauthorized},
		{"HTML login page", jamfmock.MissingLoginPage},
		{"redirect to the login page", jamfmock.MissingRedirect},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := smallFleet()
			opts.OAuthV1 = tc.answer
			e := newEnv(t, opts)
			p := newProv(t, e.config())
			for range 2 {
				recs, err := p.Lookup(context.Background(), providers.Query{Kind: providers.KindSerial, Values: []string{"C02BOB"}})
				if err != nil || ids(recs) != "12" {
					t.Fatalf("got %q, %v", ids(recs), err)
				}
				e.mock.ExpireTokens()
			}
			if v1, v0 := len(e.rec.paths("/api/v1/oauth/token")), len(e.rec.paths("/api/oauth/token")); v1 != 1 || v0 != 2 {
				t.Fatalf("token requests: %d to the v1 path, %d to the old path; want 1 and 2", v1, v0)
			}
		})
	}
}

// TestTokenExpiryMidCrawl expires the token once the first page is served:
// the later pages, fetched concurrently, all get 401 and must share one
// refresh.
func TestTokenExpiryMidCrawl(t *testing.T) {
	opts := jamfmock.Options{}
	for i := 1; i <= 9; i++ {
		opts.Computers = append(opts.Computers, mockComputer(fmt.Sprint(i), fmt.Sprintf("mbp-%d", i), fmt.Sprintf("C02%03d", i), "", "", jamfmock.FileVaultAllEncrypted, true))
	}
	e := newEnv(t, opts)
	var once sync.Once
	e.rec.setAfter(func(r *http.Request) {
		if r.URL.Path == computersInventoryPath("v4") && r.URL.Query().Get("page") == "0" {
			once.Do(e.mock.ExpireTokens)
		}
	})
	p := newProv(t, e.config(func(c *Config) { c.PageSize, c.MobileDevices = 2, ptr(false) }))
	recs, err := p.List(context.Background())
	if err != nil || len(recs) != 9 {
		t.Fatalf("%d records, %v", len(recs), err)
	}
	if got := e.mock.Calls.Get("oauthToken"); got != 2 {
		t.Fatalf("token calls %d, want 2 (one refresh for all pages)", got)
	}
}

func TestListPaging(t *testing.T) {
	opts := jamfmock.Options{}
	for i := 1; i <= 7; i++ {
		opts.Computers = append(opts.Computers, mockComputer(fmt.Sprint(i), fmt.Sprintf("mbp-%d", i), fmt.Sprintf("C02%03d", i), "", "", jamfmock.FileVaultAllEncrypted, true))
	}
	for i := 1; i <= 5; i++ {
		opts.MobileDevices = append(opts.MobileDevices, mockMobile(fmt.Sprint(i), fmt.Sprintf("iphone-%d", i), fmt.Sprintf("F%03dQ", i), "", "", true, true, false))
	}
	e := newEnv(t, opts)
	p := newProv(t, e.config(func(c *Config) { c.PageSize = 2 }))
	recs, err := p.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := "1,2,3,4,5,6,7,mobile-1,mobile-2,mobile-3,mobile-4,mobile-5"; ids(recs) != want {
		t.Fatalf("got %s, want %s", ids(recs), want)
	}
	if c, m := e.mock.Calls.Get("computersInventory"), e.mock.Calls.Get("mobileDevicesDetail"); c != 4 || m != 3 {
		t.Fatalf("calls: %d computer pages, %d mobile pages; want 4 and 3", c, m)
	}
	var pages []string
	for _, u := range e.rec.paths(computersInventoryPath("v4")) {
		q := u.Query()
		if q.Get("page-size") != "2" || q.Get("sort") != "id:asc" || q.Has("filter") {
			t.Errorf("list query %s", u.RawQuery)
		}
		pages = append(pages, q.Get("page"))
	}
	slices.Sort(pages)
	if strings.Join(pages, ",") != "0,1,2,3" {
		t.Fatalf("pages requested: %v", pages)
	}

	t.Run("mobile devices off", func(t *testing.T) {
		e := newEnv(t, opts)
		p := newProv(t, e.config(func(c *Config) { c.MobileDevices = ptr(false) }))
		recs, err := p.List(context.Background())
		if err != nil || len(recs) != 7 || e.mock.Calls.Get("mobileDevicesDetail") != 0 {
			t.Fatalf("%d records, %v, %d mobile calls", len(recs), err, e.mock.Calls.Get("mobileDevicesDetail"))
		}
	})
	t.Run("server caps page size", func(t *testing.T) {
		o := opts
		o.MaxPageSize = 2
		e := newEnv(t, o)
		p := newProv(t, e.config(func(c *Config) { c.PageSize, c.MobileDevices = 5, ptr(false) }))
		_, err := p.List(context.Background())
		if err == nil || !strings.Contains(err.Error(), "jamf: list computers: the server returned 2 of 7 records for page-size 5; lower page_size") {
			t.Fatalf("got %v", err)
		}
	})
}

func TestRequestShape(t *testing.T) {
	e := newEnv(t, smallFleet())
	p := newProv(t, e.config())
	if _, err := p.Lookup(context.Background(), providers.Query{Kind: providers.KindSerial, Values: []string{"C02A", "C02B"}}); err != nil {
		t.Fatal(err)
	}
	comps, mobiles := e.rec.paths(computersInventoryPath("v4")), e.rec.paths(mobileDevicesPath)
	if len(comps) != 1 || len(mobiles) != 1 {
		t.Fatalf("%d computer calls, %d mobile calls", len(comps), len(mobiles))
	}
	for _, tc := range []struct {
		u                      *url.URL
		sections, sort, filter string
	}{
		{comps[0], "GENERAL,HARDWARE,OPERATING_SYSTEM,USER_AND_LOCATION", "id:asc", `hardware.serialNumber=in=(C02A,C02B)`},
		{mobiles[0], "GENERAL,HARDWARE,USER_AND_LOCATION,SECURITY", "mobileDeviceId:asc", `serialNumber=in=(C02A,C02B)`},
	} {
		q := tc.u.Query()
		if strings.Join(q["section"], ",") != tc.sections || q.Get("sort") != tc.sort || q.Get("filter") != tc.filter ||
			q.Get("page") != "0" || q.Get("page-size") != "500" {
			t.Errorf("%s?%s", tc.u.Path, tc.u.RawQuery)
		}
		if strings.Contains(tc.u.RawQuery, "(") || strings.Contains(tc.u.RawQuery, `"`) {
			t.Errorf("filter not fully encoded: %s", tc.u.RawQuery)
		}
	}
}

func TestConcurrencyBounded(t *testing.T) {
	opts := smallFleet()
	opts.ConcurrencyLimit = jamfMaxConcurrency // 503 beyond Jamf's five connections
	e := newEnv(t, opts)
	e.mock.Faults.SetLatency(5 * time.Millisecond)
	p := newProv(t, e.config(func(c *Config) { c.RetryMax = 0 }))
	var serials []string
	for i := range 400 {
		serials = append(serials, fmt.Sprintf("S%05d", i))
	}
	if _, err := p.Lookup(context.Background(), providers.Query{Kind: providers.KindSerial, Values: serials}); err != nil {
		t.Fatal(err)
	}
	if r := e.mock.Calls.Get("rejected"); r != 0 {
		t.Fatalf("%d requests over the concurrency limit", r)
	}
}

func TestErrors(t *testing.T) {
	q := providers.Query{Kind: providers.KindSerial, Values: []string{"F0007Q"}} // no computer's
	t.Run("5xx exhaustion while listing", func(t *testing.T) {
		e := newEnv(t, smallFleet())
		p := newProv(t, e.config(func(c *Config) { c.RetryMax = 1 }))
		e.mock.Faults.FailServer(100)
		if _, err := p.List(context.Background()); err == nil || !strings.Contains(err.Error(), "jamf: list ") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("missing privilege for mobile devices", func(t *testing.T) {
		opts := smallFleet()
		opts.NoMobilePrivilege = true
		e := newEnv(t, opts)
		p := newProv(t, e.config())
		_, err := p.Lookup(context.Background(), q)
		if err == nil || !strings.Contains(err.Error(), "jamf: lookup mobile devices: status 403") || !strings.Contains(err.Error(), "mobile_devices: false") {
			t.Fatalf("got %v", err)
		}
	})
}

func TestScoring(t *testing.T) {
	nullGeneral := mockComputer("30", "x", "C02NULL", "", "", jamfmock.FileVaultAllEncrypted, true)
	nullGeneral.General = nil
	noSecurity := mockMobile("33", "tv", "TV1", "", "", true, false, false)
	noSecurity.DeviceType, noSecurity.Security = "appleTv", nil
	opts := jamfmock.Options{
		Computers: []jamfmock.Computer{
			mockComputer("21", "a", "C1", "", "", jamfmock.FileVaultAllEncrypted, true),
			mockComputer("22", "b", "C2", "", "", jamfmock.FileVaultBootEncrypted, true),
			mockComputer("23", "c", "C3", "", "", jamfmock.FileVaultSomeEncrypted, true),
			mockComputer("24", "d", "C4", "", "", jamfmock.FileVaultNotEncrypted, true),
			mockComputer("25", "e", "C5", "", "", jamfmock.FileVaultNotApplicable, true),
			mockComputer("26", "f", "C6", "", "", jamfmock.FileVaultAllEncrypted, false),
			mockComputer("27", "g", "C7", "", "", jamfmock.FileVaultNotEncrypted, false),
			nullGeneral,
		},
		MobileDevices: []jamfmock.MobileDevice{
			mockMobile("31", "m1", "M1", "", "", true, true, false),
			mockMobile("32", "m2", "M2", "", "", true, false, false),
			mockMobile("34", "m4", "M4", "", "", true, true, true),
			mockMobile("35", "m5", "M5", "", "", false, true, false),
			noSecurity,
		},
	}
	type want struct {
		score  int
		reason string
	}
	defaults := map[string]want{
		"21":        {100, "managed=true fileVault2Status=ALL_ENCRYPTED"},
		"22":        {100, "managed=true fileVault2Status=BOOT_ENCRYPTED"},
		"23":        {50, "managed=true fileVault2Status=SOME_ENCRYPTED"},
		"24":        {50, "managed=true fileVault2Status=NOT_ENCRYPTED"},
		"25":        {50, "managed=true fileVault2Status=NOT_APPLICABLE"},
		"26":        {0, "managed=false fileVault2Status=ALL_ENCRYPTED"},
		"27":        {0, "managed=false fileVault2Status=NOT_ENCRYPTED"},
		"30":        {0, "managed=unknown fileVault2Status=ALL_ENCRYPTED"},
		"mobile-31": {100, "managed=true jailBreakDetected=false passcodePresent=true"},
		"mobile-32": {50, "managed=true jailBreakDetected=false passcodePresent=false"},
		"mobile-33": {50, "managed=true jailBreakDetected=unknown passcodePresent=unknown"},
		"mobile-34": {0, "managed=true jailBreakDetected=true"},
		"mobile-35": {0, "managed=false"},
	}
	overridden := map[string]want{"21": {90, ""}, "23": {0, ""}, "26": {20, ""}, "mobile-31": {90, ""}, "mobile-34": {0, ""}, "mobile-35": {20, ""}}
	for _, tc := range []struct {
		name string
		cfg  func(*Config)
		want map[string]want
	}{
		{"defaults", func(*Config) {}, defaults},
		{"overrides", func(c *Config) { c.ScoreEncrypted, c.ScoreUnencrypted, c.ScoreUnmanaged = ptr(90), ptr(0), ptr(20) }, overridden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, opts)
			p := newProv(t, e.config(tc.cfg))
			recs, err := p.List(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != len(defaults) {
				t.Fatalf("%d records", len(recs))
			}
			for _, r := range recs {
				w, ok := tc.want[r.ID]
				if !ok {
					continue
				}
				if r.Score != w.score || (w.reason != "" && r.Reason != w.reason) {
					t.Errorf("%s: score %d %q, want %d %q", r.ID, r.Score, r.Reason, w.score, w.reason)
				}
			}
		})
	}
}

func TestFilterEscapingRoundTrip(t *testing.T) {
	opts := smallFleet()
	opts.Computers = append(opts.Computers, mockComputer("40", `o"brien\mbp`, "C02Q", "", `O"Brien@Example.com`, jamfmock.FileVaultAllEncrypted, true))
	e := newEnv(t, opts)
	p := newProv(t, e.config())
	for _, q := range []providers.Query{
		{Kind: providers.KindEmail, Values: []string{`o"brien@example.com`}},
		{Kind: providers.KindHostname, Values: []string{`o"brien\mbp`}},
	} {
		recs, err := p.Lookup(context.Background(), q)
		if err != nil || ids(recs) != "40" {
			t.Fatalf("%v: %q, %v", q, ids(recs), err)
		}
	}
}

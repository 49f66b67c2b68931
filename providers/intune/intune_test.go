package intune

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postured/postured/internal/conf"
	"github.com/postured/postured/internal/fleet"
	"github.com/postured/postured/providers"
	"github.com/postured/postured/providers/intune/intunemock"
)

var _ interface {
	Lookup(context.Context, providers.Query) ([]providers.Record, error)
	List(context.Context) ([]providers.Record, error)
} = (*Provider)(nil)

// secret has the characters Entra secrets carry, to catch escaping bugs.
const secret = "Zx8Q~abc.DEF_ghi-JKL~mno.PQR_stu-VWX~yz0"

var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

// devices is a small hand-made tenant covering the identifier shapes.
func devices() []intunemock.ManagedDevice {
	mk := func(i int, name, serial, upn, state string) intunemock.ManagedDevice {
		return intunemock.ManagedDevice{
			ID:                fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
			DeviceName:        name,
			SerialNumber:      serial,
			UserPrincipalName: upn,
			EmailAddress:      upn,
			ComplianceState:   state,
			LastSyncDateTime:  t0.Add(-time.Duration(i)*time.Hour + 7156189*100),
			WiFiMacAddress:    fmt.Sprintf("02AABBCC%04X", i),
			JailBroken:        "Unknown",
		}
	}
	devs := []intunemock.ManagedDevice{
		mk(1, "DESKTOP-00001", "PF00000001", "alice@example.com", "compliant"),
		mk(2, "mbp-00002.corp.example", "C020000002A", "Bob@Example.com", "inGracePeriod"),
		mk(3, "mbp-000020", "C020000020B", "bob@example.com", "noncompliant"),
		mk(4, "o'brien-pc", "PF00000004", "o'brien@example.com", "unknown"),
		mk(5, "ws-00005", "", "carol@example.com", "conflict"),
		mk(6, "ws-00006", "LNX0000006", "dave@example.com", "error"),
		mk(7, "iphone-00007", "F000000007Q", "erin@example.com", "configManager"),
		// re-enrolled: same serial as #1, older sync, different id
		mk(8, "DESKTOP-00001", "PF00000001", "alice@example.com", "noncompliant"),
		// Mixed case as Intune stores it: a macOS name, a VMware serial,
		// an address with capitals.
		mk(9, "Oskars-Mac-mini-29", "VMware-56 4d 1b 2c 3e 4f 5a 6b-7c 8d 9e 0f 1a 2b 3c 4d", "Oskar.Berg@Example.com", "compliant"),
		// A lab machine named after ws-00006, which a startswith that
		// acts like contains also returns.
		mk(10, "LAB-WS-00006", "LAB0000010", "", "compliant"),
	}
	devs[1].EthernetMacAddress = "02DDEEFF0002"
	devs[4].EmailAddress = "carol.alias@example.com; Carol@Example.org"
	devs[5].LastSyncDateTime = time.Time{} // never synced: 0001-01-01 sentinel
	return devs
}

type fixture struct {
	p   *Provider
	srv *intunemock.Server
	ts  *httptest.Server
	cfg *Config
}

// newFixture serves opts through the mock (wrapped by wrap, if set) and
// builds a provider with fast retries pointed at it.
func newFixture(t *testing.T, opts intunemock.Options, mod func(*Config), wrap func(http.Handler) http.Handler) *fixture {
	t.Helper()
	opts.ClientSecret = secret
	srv := intunemock.New(opts)
	var h http.Handler = srv
	if wrap != nil {
		h = wrap(srv)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	cfg := &Config{
		Common:       providers.Common{Name: "intune", Type: "intune", Weight: 1},
		TenantID:     intunemock.DefaultTenantID,
		ClientID:     intunemock.DefaultClientID,
		ClientSecret: secret,
		BaseURL:      ts.URL,
		TokenURL:     ts.URL + "/" + intunemock.DefaultTenantID + "/oauth2/v2.0/token",
		HTTPConfig: providers.HTTPConfig{
			RequestsPerSecond: 10000, Burst: 10000,
			RetryWaitMin: conf.Duration(5 * time.Millisecond), RetryWaitMax: conf.Duration(50 * time.Millisecond),
		},
	}
	if mod != nil {
		mod(cfg)
	}
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	p, err := New(cfg, providers.Deps{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &fixture{p: p, srv: srv, ts: ts, cfg: cfg}
}

func ids(recs []providers.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.ID[len(r.ID)-2:])
	}
	slices.Sort(out)
	return out
}

func query(k providers.Kind, raw ...string) providers.Query {
	q := providers.Query{Kind: k}
	for _, v := range raw {
		if n, ok := providers.Normalize(k, v); ok {
			q.Values = append(q.Values, n)
		}
	}
	return q
}

// TestLookupKinds runs against Graph as documented and as reported, where
// startswith acts like contains (microsoft-graph-docs#11809, #21956).
func TestLookupKinds(t *testing.T) {
	tests := []struct {
		name string
		q    providers.Query
		want []string // last two digits of the ids
	}{
		{name: "serial, any case, duplicates returned", q: query(providers.KindSerial, "pf00000001 "), want: []string{"01", "08"}},
		{name: "serials", q: query(providers.KindSerial, "C020000002A", "F000000007Q", "NOPE123"), want: []string{"02", "07"}},
		{name: "serial with quote", q: providers.Query{Kind: providers.KindSerial, Values: []string{"PF'0001"}}, want: nil},
		{name: "hostname upper-case Windows name", q: query(providers.KindHostname, "desktop-00001"), want: []string{"01", "08"}},
		{name: "hostname matches FQDN device name, not longer siblings", q: query(providers.KindHostname, "MBP-00002.corp.example"), want: []string{"02"}},
		{name: "hostname sibling asked too", q: query(providers.KindHostname, "mbp-00002", "mbp-000020"), want: []string{"02", "03"}},
		{name: "hostname with quote", q: query(providers.KindHostname, "o'brien-pc"), want: []string{"04"}},
		{name: "email by UPN, case-insensitive, both devices", q: query(providers.KindEmail, "BOB@example.com"), want: []string{"02", "03"}},
		{name: "email with quote", q: query(providers.KindEmail, "o'brien@example.com"), want: []string{"04"}},
		{name: "mixed-case serial", q: query(providers.KindSerial, "VMware-56 4d 1b 2c 3e 4f 5a 6b-7c 8d 9e 0f 1a 2b 3c 4d"), want: []string{"09"}},
		{name: "mixed-case hostname", q: query(providers.KindHostname, "Oskars-Mac-mini-29"), want: []string{"09"}},
		{name: "mixed-case email", q: query(providers.KindEmail, "oskar.berg@example.com"), want: []string{"09"}},
		{name: "hostname, not the lab machine named after it", q: query(providers.KindHostname, "ws-00006"), want: []string{"06"}},
	}
	for _, contains := range []bool{false, true} {
		f := newFixture(t, intunemock.Options{Devices: devices(), StartsWithContains: contains}, nil, nil)
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%s/startswith as contains %v", tc.name, contains), func(t *testing.T) {
				recs, err := f.p.Lookup(t.Context(), tc.q)
				if err != nil {
					t.Fatal(err)
				}
				if got := ids(recs); !slices.Equal(got, tc.want) {
					t.Errorf("ids %v, want %v", got, tc.want)
				}
				for _, r := range recs {
					if !slices.ContainsFunc(tc.q.Values, func(v string) bool { return r.Has(tc.q.Kind, v) }) {
						t.Errorf("record %s carries none of %v", r.ID, tc.q.Values)
					}
				}
			})
		}
	}
}

func TestRecordMapping(t *testing.T) {
	f := newFixture(t, intunemock.Options{Devices: devices()}, func(c *Config) {
		c.ComplianceScores = map[string]int{"noncompliant": 10}
		c.DefaultScore = 5
	}, nil)
	recs, err := f.p.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]providers.Record{}
	for _, r := range recs {
		byID[r.ID[len(r.ID)-2:]] = r
	}
	wantScore := map[string]struct {
		score  int
		reason string
	}{
		"01": {100, "complianceState=compliant"}, "02": {50, "complianceState=inGracePeriod"},
		"03": {10, "complianceState=noncompliant"}, "04": {5, "complianceState=unknown"},
		"05": {5, "complianceState=conflict"}, "06": {5, "complianceState=error"},
		"07": {5, "complianceState=configManager"}, "08": {10, "complianceState=noncompliant"},
	}
	for id, w := range wantScore {
		if r := byID[id]; r.Score != w.score || r.Reason != w.reason {
			t.Errorf("%s: score %d %q, want %d %q", id, r.Score, r.Reason, w.score, w.reason)
		}
	}
	r1 := byID["01"]
	if want := t0.Add(-time.Hour + 7156189*100); !r1.LastSeen.Equal(want) {
		t.Errorf("LastSeen %s, want %s (7-digit fraction)", r1.LastSeen, want)
	}
	if !slices.Equal(r1.Serials, []string{"PF00000001"}) || !slices.Equal(r1.MACs, []string{"02aabbcc0001"}) ||
		!slices.Equal(r1.Hostnames, []string{"desktop-00001"}) || !slices.Equal(r1.Emails, []string{"alice@example.com"}) {
		t.Errorf("record 01 identifiers: %+v", r1)
	}
	if r := byID["02"]; !slices.Equal(r.Hostnames, []string{"mbp-00002"}) || !slices.Equal(r.Emails, []string{"bob@example.com"}) {
		t.Errorf("record 02: %+v", r)
	}
	// Non-default ethernetMacAddress is null in list calls: not a MAC.
	if r := byID["02"]; len(r.MACs) != 1 {
		t.Errorf("record 02 MACs %v", r.MACs)
	}
	if r := byID["05"]; r.Serials != nil || !slices.Equal(r.Emails, []string{"carol@example.com", "carol.alias@example.com", "carol@example.org"}) {
		t.Errorf("record 05: %+v", r)
	}
	if r := byID["06"]; !r.LastSeen.IsZero() {
		t.Errorf("sentinel lastSyncDateTime should be zero, got %s", r.LastSeen)
	}
}

func TestParseGraphTime(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
		err  bool
	}{
		{in: "2016-12-31T23:58:46.7156189-08:00", want: time.Date(2017, 1, 1, 7, 58, 46, 715618900, time.UTC)},
		{in: "2024-03-23T19:21:27Z", want: time.Date(2024, 3, 23, 19, 21, 27, 0, time.UTC)},
		{in: "0001-01-01T00:00:00Z"},
		{in: "9999-12-31T23:59:59Z"},
		{in: ""},
		{in: "yesterday", err: true},
	}
	for _, tc := range tests {
		got, err := parseGraphTime(tc.in)
		if (err != nil) != tc.err || !got.Equal(tc.want) {
			t.Errorf("parseGraphTime(%q) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestAuth(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want string // substring of the error; "" = success
	}{
		{name: "good credentials", mod: nil},
		{name: "tenant by domain", mod: func(c *Config) {
			c.TokenURL = strings.Replace(c.TokenURL, intunemock.DefaultTenantID, intunemock.DefaultTenantDomain, 1)
		}},
		{name: "wrong secret", mod: func(c *Config) { c.ClientSecret = "wrong-" + secret }, want: "token endpoint answered 401: invalid_client"},
		{name: "unknown client", mod: func(c *Config) { c.ClientID = "11111111-1111-1111-1111-111111111111" }, want: "token endpoint answered 400: unauthorized_client"},
		{name: "unknown tenant", mod: func(c *Config) {
			c.TokenURL = strings.Replace(c.TokenURL, intunemock.DefaultTenantID, "fabrikam.onmicrosoft.com", 1)
		}, want: "token endpoint answered 400: invalid_request"},
		{name: "wrong scope", mod: func(c *Config) { c.Scope = "https://graph.microsoft.us/.default" }, want: "token endpoint answered 400: invalid_scope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, intunemock.Options{Devices: devices()}, tc.mod, nil)
			recs, err := f.p.Lookup(t.Context(), query(providers.KindSerial, "PF00000001"))
			if tc.want == "" {
				if err != nil || len(recs) != 2 {
					t.Fatalf("recs %d err %v", len(recs), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "intune: lookup serial: fetch token:") {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "Zx8Q") {
				t.Errorf("secret leaked: %v", err)
			}
			// Credentials errors are not retried.
			if n := f.srv.Calls.Get("token"); n != 1 {
				t.Errorf("token calls = %d, want 1", n)
			}
		})
	}
	t.Run("missing permission", func(t *testing.T) {
		f := newFixture(t, intunemock.Options{Devices: devices(), DenyPermission: true}, nil, nil)
		_, err := f.p.List(t.Context())
		if err == nil || !strings.Contains(err.Error(), "intune: list managed devices: status 403") || !strings.Contains(err.Error(), "Forbidden") {
			t.Fatalf("err = %v", err)
		}
		_, err = f.p.Lookup(t.Context(), query(providers.KindSerial, "PF00000001"))
		if err == nil || !strings.Contains(err.Error(), "$batch item: status 403: Forbidden") {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestTokenExpiryMidCrawl expires the token between two pages of a crawl:
// the next page refreshes it once.
func TestTokenExpiryMidCrawl(t *testing.T) {
	var srv atomic.Pointer[intunemock.Server]
	var pages atomic.Int32
	f := newFixture(t, intunemock.Options{Devices: devices(), PageSize: 2}, nil, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/managedDevices") && pages.Add(1) == 3 {
				srv.Load().ExpireTokens() // the token dies between page 2 and 3
			}
			h.ServeHTTP(w, r)
		})
	})
	srv.Store(f.srv)
	recs, err := f.p.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(devices()) {
		t.Errorf("%d records", len(recs))
	}
	if n := f.srv.Calls.Get("token"); n != 2 {
		t.Errorf("token calls = %d, want exactly one refresh", n)
	}
}

func TestListPaging(t *testing.T) {
	tests := []struct {
		name  string
		opts  intunemock.Options
		pages int
	}{
		{name: "page size 3", opts: intunemock.Options{PageSize: 3}, pages: 4},
		{name: "page size 1", opts: intunemock.Options{PageSize: 1}, pages: 10},
		{name: "empty first page", opts: intunemock.Options{PageSize: 4, EmptyFirstPage: true}, pages: 4},
		{name: "one page", opts: intunemock.Options{}, pages: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Devices = devices()
			f := newFixture(t, tc.opts, nil, nil)
			recs, err := f.p.List(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(recs); len(slices.Compact(got)) != len(devices()) {
				t.Errorf("ids %v", got)
			}
			if n := f.srv.Calls.Get("managedDevices"); n != tc.pages {
				t.Errorf("%d page requests, want %d", n, tc.pages)
			}
		})
	}
}

func TestLookupPagesWithinClause(t *testing.T) {
	// PageSize 1: bob's two devices come back over two pages of one
	// clause; the second page is a nextLink GET outside the batch.
	f := newFixture(t, intunemock.Options{Devices: devices(), PageSize: 1, EmptyFirstPage: true}, nil, nil)
	recs, err := f.p.Lookup(t.Context(), query(providers.KindEmail, "bob@example.com", "alice@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(recs); !slices.Equal(got, []string{"01", "02", "03", "08"}) {
		t.Errorf("ids %v", got)
	}
	if b, p := f.srv.Calls.Get("$batch"), f.srv.Calls.Get("managedDevices"); b != 1 || p != 4 {
		t.Errorf("$batch %d, nextLink pages %d; want 1 and 4", b, p)
	}
}

func TestClausePageCap(t *testing.T) {
	// A device enrollment manager account owning more devices than the
	// per-key page cap: the lookup keeps the first pages, not the tenant.
	var devs []intunemock.ManagedDevice
	for i := range maxClausePages + 5 {
		devs = append(devs, intunemock.ManagedDevice{ID: fmt.Sprintf("dem-%02d", i), UserPrincipalName: "enroll@example.com", ComplianceState: "compliant"})
	}
	f := newFixture(t, intunemock.Options{Devices: devs, PageSize: 1}, nil, nil)
	recs, err := f.p.Lookup(t.Context(), query(providers.KindEmail, "enroll@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != maxClausePages || f.srv.Calls.Get("managedDevices") != maxClausePages-1 {
		t.Errorf("%d records over %d nextLink pages", len(recs), f.srv.Calls.Get("managedDevices"))
	}
}

// TestConcurrencyBounded: the $batch calls of one lookup go out at most
// max_concurrency at a time.
func TestConcurrencyBounded(t *testing.T) {
	var devs []intunemock.ManagedDevice
	for i := range 1000 {
		devs = append(devs, intunemock.ManagedDevice{ID: fmt.Sprintf("id-%04d", i), SerialNumber: fmt.Sprintf("SN%08d", i), ComplianceState: "compliant"})
	}
	var inFlight, peak atomic.Int32
	f := newFixture(t, intunemock.Options{Devices: devs}, func(c *Config) { c.MaxConcurrency = 2 }, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			h.ServeHTTP(w, r)
		})
	})
	f.srv.Faults.SetLatency(10 * time.Millisecond)
	var serials []string
	for i := range 200 {
		serials = append(serials, fmt.Sprintf("SN%08d", i))
	}
	if _, err := f.p.Lookup(t.Context(), query(providers.KindSerial, serials...)); err != nil {
		t.Fatal(err)
	}
	if p := peak.Load(); p > 2 {
		t.Errorf("%d requests in flight, max_concurrency 2", p)
	}
}

// retries records OnRetry calls.
type retries struct {
	mu    sync.Mutex
	calls []string
}

func (r *retries) hook(status int, wait time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, fmt.Sprintf("%d/%s", status, wait))
}

func (r *retries) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

func TestRetries(t *testing.T) {
	serials := query(providers.KindSerial, "PF00000001", "C020000002A", "PF00000004")
	tests := []struct {
		name    string
		mod     func(*Config)
		inject  func(*intunemock.Server)
		retries []string // OnRetry calls, in order
		err     string   // error substring; "" = success
		limited time.Duration
	}{
		{name: "fractional Retry-After", inject: func(s *intunemock.Server) { s.Faults.RateLimit(1, 25*time.Millisecond) }, retries: []string{"429/25ms"}},
		{name: "throttled batch items re-sent alone", inject: func(s *intunemock.Server) { s.ItemFaults.RateLimit(2, 20*time.Millisecond) }, retries: []string{"429/20ms"}},
		{name: "item Retry-After beyond retry_wait_max", inject: func(s *intunemock.Server) { s.ItemFaults.RateLimit(1, 2500*time.Millisecond) },
			err: "retry after 2.5s", limited: 2500 * time.Millisecond},
		{name: "5xx item retried", inject: func(s *intunemock.Server) { s.ItemFaults.FailServer(1) }, retries: []string{"500/5ms"}},
		{name: "5xx item exhaustion", mod: func(c *Config) { c.RetryMax = 1 }, inject: func(s *intunemock.Server) { s.ItemFaults.FailServer(10) },
			retries: []string{"500/5ms"}, err: "intune: lookup serial: $batch item still failing after 2 attempts: status 500: InternalServerError"},
		{name: "items throttled until retries run out", mod: func(c *Config) { c.RetryMax = 1 }, inject: func(s *intunemock.Server) { s.ItemFaults.RateLimit(100, 10*time.Millisecond) },
			retries: []string{"429/10ms"}, err: "intune: lookup serial: rate limited by vendor, retry after 10ms", limited: 10 * time.Millisecond},
		{name: "malformed item", inject: func(s *intunemock.Server) { s.ItemFaults.Malform(1) }, err: "intune: lookup serial: decode response:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Fractional Retry-After keeps these waits in milliseconds.
			f := newFixture(t, intunemock.Options{Devices: devices(), FractionalRetryAfter: true}, tc.mod, nil)
			var r retries
			f.p.onRetry = r.hook
			tc.inject(f.srv)
			recs, err := f.p.Lookup(t.Context(), serials)
			if got := r.get(); !slices.Equal(got, tc.retries) {
				t.Errorf("retries %v, want %v", got, tc.retries)
			}
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := ids(recs); !slices.Equal(got, []string{"01", "02", "04", "08"}) {
					t.Errorf("ids %v", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
			var rl *providers.RateLimitedError
			if tc.limited > 0 && (!errors.As(err, &rl) || rl.RetryAfter != tc.limited) {
				t.Errorf("want RateLimitedError{%s}, got %v", tc.limited, err)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "PF00000001") {
				t.Errorf("error leaks a secret or identifier: %v", err)
			}
		})
	}
}

func TestListFaults(t *testing.T) {
	tests := []struct {
		name   string
		inject func(*intunemock.Server)
		err    string
	}{
		{name: "malformed page", inject: func(s *intunemock.Server) { s.Faults.Malform(1) }, err: "intune: list managed devices: decode response:"},
		{name: "5xx exhaustion", inject: func(s *intunemock.Server) { s.Faults.FailServer(10) }, err: "intune: list managed devices: status 500"},
		{name: "token endpoint down", inject: func(s *intunemock.Server) { s.TokenFaults.FailServer(10) }, err: "intune: list managed devices: fetch token:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, intunemock.Options{Devices: devices(), PageSize: 3}, nil, nil)
			tc.inject(f.srv)
			_, err := f.p.List(t.Context())
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("secret leaked: %v", err)
			}
		})
	}
}

func TestFilterIgnored(t *testing.T) {
	// A tenant where Graph silently ignores the userPrincipalName filter
	// and answers with every device, 2 a page.
	f := newFixture(t, intunemock.Options{Devices: devices(), PageSize: 2, NotFilterable: []string{"userPrincipalName"}}, nil, nil)
	_, err := f.p.Lookup(t.Context(), query(providers.KindEmail, "alice@example.com", "bob@example.com"))
	if !errors.Is(err, errFilterIgnored) || !strings.Contains(err.Error(), "userPrincipalName") {
		t.Fatalf("err = %v, want errFilterIgnored", err)
	}
	if n := f.srv.Calls.Get("managedDevices"); n != 0 {
		t.Errorf("followed %d nextLinks of an ignored filter", n)
	}
	// The other kinds still work.
	if recs, err := f.p.Lookup(t.Context(), query(providers.KindSerial, "PF00000004")); err != nil || len(recs) != 1 {
		t.Errorf("serial lookup: %d, %v", len(recs), err)
	}
	// Names that neither start with nor contain the value still show an
	// ignored filter where startswith acts like contains.
	f = newFixture(t, intunemock.Options{Devices: devices(), StartsWithContains: true, NotFilterable: []string{"deviceName"}}, nil, nil)
	_, err = f.p.Lookup(t.Context(), query(providers.KindHostname, "ws-00006"))
	if !errors.Is(err, errFilterIgnored) || !strings.Contains(err.Error(), "deviceName") {
		t.Fatalf("err = %v, want errFilterIgnored", err)
	}
}

func TestNextLinkToOtherHostRefused(t *testing.T) {
	f := newFixture(t, intunemock.Options{Devices: devices(), PageSize: 2, ExternalURL: "http://graph.attacker.example"}, nil, nil)
	_, err := f.p.List(t.Context())
	if err == nil || !strings.Contains(err.Error(), "another host (graph.attacker.example)") {
		t.Fatalf("err = %v", err)
	}
}

// TestFleet runs the provider against the mock serving the generated fleet
// and checks every Intune device is found by every key Graph can filter
// on, and only then by MAC through sync mode.
func TestFleet(t *testing.T) {
	fl := fleet.Generate(800, 7, time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	mds := intunemock.FleetDevices(fl)
	// Three full-fleet lookups exceed Graph's 2000 items per 20 s; the
	// throttle has its own tests.
	f := newFixture(t, intunemock.Options{Devices: mds, ThrottleLimit: -1}, nil, nil)
	batch := fl.Batch()

	type truth struct{ serials, hosts, emails map[string][]string } // key -> ids
	tr := truth{map[string][]string{}, map[string][]string{}, map[string][]string{}}
	for _, md := range mds {
		if s, ok := providers.NormalizeSerial(md.SerialNumber); ok {
			tr.serials[s] = append(tr.serials[s], md.ID)
		}
		if h, ok := providers.NormalizeHostname(md.DeviceName); ok {
			tr.hosts[h] = append(tr.hosts[h], md.ID)
		}
		if e, ok := providers.NormalizeEmail(md.UserPrincipalName); ok {
			tr.emails[e] = append(tr.emails[e], md.ID)
		}
	}
	kinds := []struct {
		kind  providers.Kind
		raw   func(fleet.CloudflareDevice) string
		truth map[string][]string
	}{
		{providers.KindSerial, func(d fleet.CloudflareDevice) string { return d.SerialNumber }, tr.serials},
		{providers.KindHostname, func(d fleet.CloudflareDevice) string { return d.Hostname }, tr.hosts},
		{providers.KindEmail, func(d fleet.CloudflareDevice) string { return d.Email }, tr.emails},
	}
	for _, k := range kinds {
		t.Run(k.kind.String(), func(t *testing.T) {
			var raw []string
			for _, d := range batch {
				raw = append(raw, k.raw(d))
			}
			q := query(k.kind, raw...)
			q.Values = slices.Compact(slices.Sorted(slices.Values(q.Values)))
			recs, err := f.p.Lookup(t.Context(), q)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]string{}
			for _, r := range recs {
				for _, v := range r.Identifiers(k.kind) {
					got[v] = append(got[v], r.ID)
				}
			}
			missing := 0
			for _, v := range q.Values {
				want := slices.Sorted(slices.Values(k.truth[v]))
				have := slices.Sorted(slices.Values(got[v]))
				if !slices.Equal(want, have) {
					missing++
					if missing < 5 {
						t.Errorf("%s %s: got %v, want %v", k.kind, v, have, want)
					}
				}
			}
			if missing > 0 {
				t.Errorf("%d of %d %s keys mismatched", missing, len(q.Values), k.kind)
			}
		})
	}
	t.Run("mac via sync mode", func(t *testing.T) {
		recs, err := f.p.List(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		// What a Syncer indexes: every Wi-Fi MAC the listed records carry.
		listed := map[string]bool{}
		for i := range recs {
			for _, m := range recs[i].Normalize().MACs {
				listed[m] = true
			}
		}
		found, want := 0, 0
		for _, d := range batch {
			m, ok := providers.NormalizeMAC(d.MACAddress)
			if !ok {
				continue
			}
			for _, md := range mds {
				if wm, _ := providers.NormalizeMAC(md.WiFiMacAddress); wm == m {
					want++
					if listed[m] {
						found++
					}
					break
				}
			}
		}
		if want == 0 || found != want {
			t.Errorf("found %d of %d Wi-Fi MACs in the listed records", found, want)
		}
	})
}

func TestQueryEscape(t *testing.T) {
	tests := []struct{ in, want string }{
		{"serialNumber eq 'PF00000001'", "serialNumber%20eq%20'PF00000001'"},
		{"userPrincipalName eq 'o''brien@example.com'", "userPrincipalName%20eq%20'o''brien@example.com'"},
		{"startswith(deviceName,'mbp-42')", "startswith(deviceName,'mbp-42')"},
		{"a+b&c=d#e%f;g/h?i", "a%2Bb%26c%3Dd%23e%25f%3Bg%2Fh%3Fi"},
		{"Ünïcode\t", "%C3%9Cn%C3%AFcode%09"},
	}
	for _, tc := range tests {
		got := queryEscape(tc.in)
		if got != tc.want {
			t.Errorf("queryEscape(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if back, err := url.QueryUnescape(got); err != nil || back != tc.in {
			t.Errorf("%q does not decode back to %q: %q, %v", got, tc.in, back, err)
		}
	}
}

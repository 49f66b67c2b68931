package crowdstrike

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postured/postured/internal/conf"
	"github.com/postured/postured/providers"
	"github.com/postured/postured/providers/crowdstrike/crowdstrikemock"
)

var _ interface {
	Lookup(context.Context, providers.Query) ([]providers.Record, error)
	List(context.Context) ([]providers.Record, error)
} = (*Provider)(nil)

const testSecret = "s3cr3t-Falcon-Client-Secret-42"

func testConfig(baseURL string) *Config {
	cfg := &Config{
		Common:       providers.Common{Name: "falcon", Type: "crowdstrike", Weight: 1},
		HTTPConfig:   providers.HTTPConfig{RetryWaitMin: conf.Duration(5 * time.Millisecond), RetryWaitMax: conf.Duration(50 * time.Millisecond), RequestsPerSecond: 1000, Burst: 1000},
		BaseURL:      baseURL,
		ClientID:     "falcon-client",
		ClientSecret: testSecret,
	}
	return cfg
}

type env struct {
	mock *crowdstrikemock.Server
	srv  *httptest.Server
	p    *Provider
}

// newEnv starts the mock over opts and a provider against it; tweak edits
// the config before defaults and validation.
func newEnv(t *testing.T, opts crowdstrikemock.Options, tweak func(*Config)) *env {
	t.Helper()
	if opts.ClientSecret == "" {
		opts.ClientID, opts.ClientSecret = "falcon-client", testSecret
	}
	e := &env{mock: crowdstrikemock.New(opts)}
	e.srv = httptest.NewServer(e.mock)
	t.Cleanup(e.srv.Close)
	cfg := testConfig(e.srv.URL)
	if tweak != nil {
		tweak(cfg)
	}
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := New(cfg, providers.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	e.p = p
	return e
}

func aid(i int) string { return fmt.Sprintf("%032x", 0xa1d000+i) }

// sampleHosts is a tenant with the edge cases the matching rules care about.
func sampleHosts() ([]crowdstrikemock.Host, []crowdstrikemock.Assessment) {
	hosts := []crowdstrikemock.Host{
		{DeviceID: aid(0), Hostname: "mbp-42", SerialNumber: "C02XK1ZZJGH5", MACAddress: "74-1d-3e-23-e0-fe", ConnectionMACAddress: "74-1d-3e-23-e0-fe",
			Status: "normal", LastSeen: "2026-11-20T10:00:00Z", PlatformName: "Mac", Email: "jdoe@example.com"},
		{DeviceID: aid(1), Hostname: "DESKTOP-7", SerialNumber: "PF000007", MACAddress: "02-00-00-00-00-01", ConnectionMACAddress: "0a-bb-cc-dd-ee-ff",
			Status: "contained", LastSeen: "2026-11-19T09:00:00Z", PlatformName: "Windows", LastLoginUser: `CORP\asmith`},
		{DeviceID: aid(2), Hostname: "ws-9.corp.example", SerialNumber: "ec2a1b2c-0000-1111-2222-333344445555", MACAddress: "02-00-00-00-00-02",
			Status: "containment_pending", LastSeen: "2026-11-18T08:00:00Z", PlatformName: "Linux"},
		{DeviceID: aid(3), Hostname: "linux-new", SerialNumber: "LNX0000003", MACAddress: "02-00-00-00-00-03",
			Status: "normal", LastSeen: "2026-11-20T07:00:00Z", PlatformName: "Linux"},
		// Re-enrolment leftover of aid(0): same serial, older, no longer contained.
		{DeviceID: aid(4), Hostname: "mbp-42", SerialNumber: "C02XK1ZZJGH5", MACAddress: "74-1d-3e-23-e0-fe",
			Status: "normal", LastSeen: "2026-08-01T00:00:00Z", PlatformName: "Mac"},
		{DeviceID: aid(5), Hostname: "Mixed-Case.corp.example", SerialNumber: "MIX5", MACAddress: "02-00-00-00-00-05",
			Status: "normal", LastSeen: "2026-11-20T07:00:00Z", PlatformName: "Mac"},
	}
	zta := []crowdstrikemock.Assessment{
		{AID: aid(0), Assessment: crowdstrikemock.Scores{Overall: 83, OS: 80, SensorConfig: 90, Version: "2.1.0"}},
		{AID: aid(1), Assessment: crowdstrikemock.Scores{Overall: 90, Version: "2.1.0"}},
		{AID: aid(2), Assessment: crowdstrikemock.Scores{Overall: 77, Version: "2.1.0"}},
		{AID: aid(4), Assessment: crowdstrikemock.Scores{Overall: 95, Version: "2.1.0"}},
		{AID: aid(5), Assessment: crowdstrikemock.Scores{Overall: 64, Version: "2.1.0"}},
	}
	return hosts, zta
}

func sampleOpts() crowdstrikemock.Options {
	h, z := sampleHosts()
	return crowdstrikemock.Options{Devices: h, Assessments: z}
}

func ids(recs []providers.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	slices.Sort(out)
	return out
}

func TestConfig(t *testing.T) {
	ok := func() *Config { return testConfig("https://api.crowdstrike.com") }
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string
		wantURL string
	}{
		{name: "full url", wantURL: "https://api.crowdstrike.com"},
		{name: "default cloud", edit: func(c *Config) { c.BaseURL = "" }, wantURL: "https://api.crowdstrike.com"},
		{name: "cloud name", edit: func(c *Config) { c.BaseURL = "EU-1" }, wantURL: "https://api.eu-1.crowdstrike.com"},
		{name: "gov cloud", edit: func(c *Config) { c.BaseURL = "us-gov-1" }, wantURL: "https://api.laggar.gcw.crowdstrike.com"},
		{name: "trailing slash", edit: func(c *Config) { c.BaseURL = "http://mock:8080/falcon/" }, wantURL: "http://mock:8080/falcon"},
		{name: "unknown cloud", edit: func(c *Config) { c.BaseURL = "us-9" }, wantErr: "base_url must be"},
		{name: "bad scheme", edit: func(c *Config) { c.BaseURL = "ftp://x" }, wantErr: "base_url must be"},
		{name: "credentials in url", edit: func(c *Config) { c.BaseURL = "https://u:p@api.crowdstrike.com" }, wantErr: "must not carry credentials"},
		{name: "no client id", edit: func(c *Config) { c.ClientID = "" }, wantErr: "client_id is required"},
		{name: "no secret", edit: func(c *Config) { c.ClientSecret = "" }, wantErr: "client_secret is required"},
		{name: "score range", edit: func(c *Config) { v := 101; c.UnassessedScore = &v }, wantErr: "unassessed_score must be between 0 and 100"},
		{name: "contained score range", edit: func(c *Config) { v := -1; c.ContainedScore = &v }, wantErr: "contained_score must be"},
		{name: "page size", edit: func(c *Config) { c.PageSize = 5001 }, wantErr: "page_size must be between 1 and 5000"},
		{name: "weight from common", edit: func(c *Config) { c.Weight = 0 }, wantErr: "weight must be > 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok()
			if tc.edit != nil {
				tc.edit(c)
			}
			c.Defaults()
			err := c.Validate()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := c.apiBase(); got != tc.wantURL {
				t.Errorf("base = %q, want %q", got, tc.wantURL)
			}
			if *c.UnassessedScore != 50 || *c.ContainedScore != 0 || c.PageSize != 5000 || c.RequestsPerSecond != 1000 {
				t.Errorf("defaults not applied: %+v", c)
			}
		})
	}
	t.Run("http defaults", func(t *testing.T) {
		c := &Config{}
		c.Defaults()
		if c.RequestsPerSecond != 20 || c.Burst != 60 || c.MaxConcurrency != 4 || c.BaseURL != "us-1" {
			t.Fatalf("%+v", c.HTTPConfig)
		}
	})
	t.Run("zero unassessed score kept", func(t *testing.T) {
		c := ok()
		zero := 0
		c.UnassessedScore = &zero
		c.Defaults()
		if *c.UnassessedScore != 0 {
			t.Fatal("explicit 0 replaced by the default")
		}
	})
}

func TestAuth(t *testing.T) {
	serial := providers.Query{Kind: providers.KindSerial, Values: []string{"PF000007"}}
	t.Run("good credentials", func(t *testing.T) {
		e := newEnv(t, sampleOpts(), nil)
		recs, err := e.p.Lookup(context.Background(), serial)
		if err != nil || len(recs) != 1 {
			t.Fatalf("%v %v", recs, err)
		}
		if _, err := e.p.Lookup(context.Background(), serial); err != nil {
			t.Fatal(err)
		}
		if n := e.mock.Calls.Get("token"); n != 1 {
			t.Fatalf("token calls = %d, want 1 (token reused)", n)
		}
	})
	t.Run("bad credentials", func(t *testing.T) {
		e := newEnv(t, sampleOpts(), func(c *Config) { c.ClientSecret = "wrong-" + testSecret })
		_, err := e.p.Lookup(context.Background(), serial)
		if err == nil {
			t.Fatal("want an error")
		}
		for _, want := range []string{"falcon: query devices", "403", "access denied, authorization failed", "client_secret"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
		if strings.Contains(err.Error(), testSecret) {
			t.Fatalf("secret leaked: %v", err)
		}
		if n := e.mock.Calls.Get("queryDevices"); n != 0 {
			t.Errorf("API called %d times without a token", n)
		}
	})
	t.Run("unknown member cid", func(t *testing.T) {
		e := newEnv(t, sampleOpts(), func(c *Config) { c.MemberCID = "0123" })
		if _, err := e.p.Lookup(context.Background(), serial); err == nil || !strings.Contains(err.Error(), "authorization failed") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("wrong cloud", func(t *testing.T) {
		opts := sampleOpts()
		opts.RedirectRegion = "us-2"
		e := newEnv(t, opts, nil)
		_, err := e.p.Lookup(context.Background(), serial)
		if err == nil || !strings.Contains(err.Error(), `cloud "us-2"`) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestPaging(t *testing.T) {
	opts := sampleOpts()
	// Seven hosts share one serial prefix; ask for them by exact serial.
	var serials []string
	for i := range 7 {
		s := fmt.Sprintf("PAGE%03d", i)
		serials = append(serials, s)
		opts.Devices = append(opts.Devices, crowdstrikemock.Host{DeviceID: aid(100 + i), SerialNumber: s, Status: "normal"})
	}
	e := newEnv(t, opts, func(c *Config) { c.PageSize = 2 })
	recs, err := e.p.Lookup(context.Background(), providers.Query{Kind: providers.KindSerial, Values: serials})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 7 {
		t.Fatalf("%d records, want 7", len(recs))
	}
	if n := e.mock.Calls.Get("queryDevices"); n != 4 {
		t.Fatalf("queryDevices calls = %d, want 4 pages of 2", n)
	}
	for _, r := range e.mock.Requests() {
		if r.Endpoint == "queryDevices" && r.Limit != "2" {
			t.Fatalf("page asked for limit %s", r.Limit)
		}
	}
}

// bulkOpts is a tenant of n hosts with serials SN00000.., half assessed.
func bulkOpts(n int) (crowdstrikemock.Options, []string) {
	var opts crowdstrikemock.Options
	var serials []string
	for i := range n {
		h := crowdstrikemock.Host{DeviceID: aid(i), SerialNumber: fmt.Sprintf("SN%05d", i), Hostname: fmt.Sprintf("host-%05d", i),
			MACAddress: fmt.Sprintf("02-00-00-00-%02x-%02x", i/256, i%256), Status: "normal", LastSeen: "2026-11-20T10:00:00Z"}
		opts.Devices = append(opts.Devices, h)
		serials = append(serials, h.SerialNumber)
		if i%2 == 0 {
			opts.Assessments = append(opts.Assessments, crowdstrikemock.Assessment{AID: h.DeviceID, Assessment: crowdstrikemock.Scores{Overall: 70}})
		}
	}
	return opts, serials
}

func TestLookupKinds(t *testing.T) {
	tests := []struct {
		name   string
		kind   providers.Kind
		values []string // as Cloudflare sends them, normalised below
		exact  bool     // hostname_exact_only
		want   []string
	}{
		{"serial with duplicate", providers.KindSerial, []string{"c02xk1zzjgh5"}, false, []string{aid(0), aid(4)}},
		{"serial upper-case uuid", providers.KindSerial, []string{"EC2A1B2C-0000-1111-2222-333344445555"}, false, []string{aid(2)}},
		{"serial unknown", providers.KindSerial, []string{"NOPE"}, false, nil},
		{"mac colon form", providers.KindMAC, []string{"74:1D:3E:23:E0:FE"}, false, []string{aid(0), aid(4)}},
		{"mac only as connection mac", providers.KindMAC, []string{"0A-BB-CC-DD-EE-FF"}, false, []string{aid(1)}},
		{"mac cisco form", providers.KindMAC, []string{"0200.0000.0002"}, false, []string{aid(2)}},
		{"hostname lower", providers.KindHostname, []string{"MBP-42"}, false, []string{aid(0), aid(4)}},
		{"hostname windows upper", providers.KindHostname, []string{"desktop-7.corp.example"}, false, []string{aid(1)}},
		{"hostname fqdn in falcon", providers.KindHostname, []string{"ws-9"}, false, []string{aid(2)}},
		{"hostname fqdn skipped when exact only", providers.KindHostname, []string{"ws-9"}, true, nil},
		{"hostname mixed case is a query-mode limit", providers.KindHostname, []string{"mixed-case"}, false, nil},
		{"email", providers.KindEmail, []string{"JDoe@Example.com"}, false, []string{aid(0)}},
		{"several kinds of values at once", providers.KindSerial, []string{"PF000007", "LNX0000003"}, false, []string{aid(1), aid(3)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, sampleOpts(), func(c *Config) { c.HostnameExactOnly = tc.exact })
			var vals []string
			for _, v := range tc.values {
				n, ok := providers.Normalize(tc.kind, v)
				if !ok {
					t.Fatalf("%q does not normalise", v)
				}
				vals = append(vals, n)
			}
			recs, err := e.p.Lookup(context.Background(), providers.Query{Kind: tc.kind, Values: vals})
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(recs); !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for _, r := range recs {
				for _, v := range vals {
					if !r.Has(tc.kind, v) && tc.kind != providers.KindSerial {
						t.Errorf("record %s lacks normalised %s %q: %+v", r.ID, tc.kind, v, r)
					}
				}
			}
		})
	}
	t.Run("records are normalised", func(t *testing.T) {
		e := newEnv(t, sampleOpts(), nil)
		recs, err := e.p.Lookup(context.Background(), providers.Query{Kind: providers.KindSerial, Values: []string{"EC2A1B2C-0000-1111-2222-333344445555", "PF000007"}})
		if err != nil || len(recs) != 2 {
			t.Fatal(recs, err)
		}
		slices.SortFunc(recs, func(a, b providers.Record) int { return strings.Compare(a.ID, b.ID) })
		w := recs[0]
		if !slices.Equal(w.MACs, []string{"020000000001", "0abbccddeeff"}) || !slices.Equal(w.Hostnames, []string{"desktop-7"}) ||
			w.Emails != nil || !w.LastSeen.Equal(time.Date(2026, 11, 19, 9, 0, 0, 0, time.UTC)) {
			t.Errorf("windows host record %+v", w)
		}
		l := recs[1]
		if !slices.Equal(l.Serials, []string{"EC2A1B2C-0000-1111-2222-333344445555"}) || !slices.Equal(l.Hostnames, []string{"ws-9"}) {
			t.Errorf("linux host record %+v", l)
		}
	})
	t.Run("unsafe values are not sent", func(t *testing.T) {
		e := newEnv(t, sampleOpts(), nil)
		recs, err := e.p.Lookup(context.Background(), providers.Query{Kind: providers.KindSerial, Values: []string{"X'],serial_number:*'*", "*"}})
		if err != nil || len(recs) != 0 || e.mock.Calls.Total() != 0 {
			t.Fatalf("recs %v err %v calls %v", recs, err, e.mock.Calls.Snapshot())
		}
	})
}

func TestScoring(t *testing.T) {
	type want struct {
		score  int
		reason string
	}
	tests := []struct {
		name  string
		opts  func(*crowdstrikemock.Options)
		tweak func(*Config)
		want  map[string]want
	}{
		{
			name: "defaults, ZTA 404 partial",
			want: map[string]want{
				aid(0): {83, "zta.overall=83"},
				aid(1): {0, "status=contained"},
				aid(2): {0, "status=containment_pending"},
				aid(3): {50, "zta=unassessed"},
			},
		},
		{
			name: "ZTA omits unassessed",
			opts: func(o *crowdstrikemock.Options) { o.ZTAOmitMissing = true },
			want: map[string]want{aid(0): {83, "zta.overall=83"}, aid(3): {50, "zta=unassessed"}},
		},
		{
			name: "overrides",
			tweak: func(c *Config) {
				u, k := 20, 5
				c.UnassessedScore, c.ContainedScore = &u, &k
			},
			want: map[string]want{aid(1): {5, "status=contained"}, aid(3): {20, "zta=unassessed"}, aid(0): {83, "zta.overall=83"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := sampleOpts()
			if tc.opts != nil {
				tc.opts(&opts)
			}
			e := newEnv(t, opts, tc.tweak)
			recs, err := e.p.Lookup(context.Background(), providers.Query{Kind: providers.KindSerial,
				Values: []string{"C02XK1ZZJGH5", "PF000007", "EC2A1B2C-0000-1111-2222-333344445555", "LNX0000003"}})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]want{}
			for _, r := range recs {
				got[r.ID] = want{r.Score, r.Reason}
			}
			for id, w := range tc.want {
				if got[id] != w {
					t.Errorf("%s: got %+v, want %+v", id, got[id], w)
				}
			}
		})
	}
}

func TestZTAGateway404IsAnError(t *testing.T) {
	// A 404 without resources (a proxy or wrong path) must not read as
	// "nothing assessed": that would score every host 50.
	opts := sampleOpts()
	mock := crowdstrikemock.New(crowdstrikemock.Options{Devices: opts.Devices, Assessments: opts.Assessments, ClientID: "falcon-client", ClientSecret: testSecret})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/zero-trust-assessment/") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"meta":{"query_time":0,"trace_id":"x"},"errors":[{"code":404,"message":"Not Found"}]}`))
			return
		}
		mock.ServeHTTP(w, r)
	}))
	defer srv.Close()
	cfg := testConfig(srv.URL)
	cfg.Defaults()
	p, err := New(cfg, providers.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Lookup(context.Background(), providers.Query{Kind: providers.KindSerial, Values: []string{"PF000007"}})
	if err == nil || !strings.Contains(err.Error(), "falcon: zta assessments: status 404") {
		t.Fatalf("err = %v", err)
	}
}

func TestDetails404WithPartialResources(t *testing.T) {
	// A host deleted between the query and the details call: Falcon may
	// answer 404 with the other hosts in resources.
	opts := sampleOpts()
	opts.HostsMissing = crowdstrikemock.MissingNotFound
	opts.ClientID, opts.ClientSecret = "falcon-client", testSecret
	mock := crowdstrikemock.New(opts)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/devices/queries/devices/v1" {
			rec := httptest.NewRecorder()
			mock.ServeHTTP(rec, r)
			body := strings.Replace(rec.Body.String(), `"resources":[`, `"resources":["ffffffffffffffffffffffffffffffff",`, 1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(rec.Code)
			_, _ = w.Write([]byte(body))
			return
		}
		mock.ServeHTTP(w, r)
	}))
	defer srv.Close()
	cfg := testConfig(srv.URL)
	cfg.Defaults()
	p, err := New(cfg, providers.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := p.Lookup(context.Background(), providers.Query{Kind: providers.KindSerial, Values: []string{"PF000007"}})
	if err != nil || !slices.Equal(ids(recs), []string{aid(1)}) {
		t.Fatalf("%v %v", recs, err)
	}
	var sawPartial bool
	for _, r := range mock.Requests() {
		sawPartial = sawPartial || (r.Endpoint == "deviceEntities" && r.Status == http.StatusNotFound)
	}
	if !sawPartial {
		t.Fatal("the details call did not answer 404: the test proves nothing")
	}
}

func TestList(t *testing.T) {
	opts, _ := bulkOpts(250)
	e := newEnv(t, opts, func(c *Config) { c.PageSize = 100 })
	recs, err := e.p.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 250 {
		t.Fatalf("%d records", len(recs))
	}
	want := map[string]int{"scrollDevices": 3, "deviceEntities": 1, "ztaAssessments": 3}
	for k, n := range want {
		if got := e.mock.Calls.Get(k); got != n {
			t.Errorf("%s calls = %d, want %d", k, got, n)
		}
	}
	assessed := 0
	for _, r := range recs {
		if r.Reason == "zta.overall=70" {
			assessed++
		}
		if len(r.Serials) != 1 || len(r.MACs) != 1 || len(r.Hostnames) != 1 || r.LastSeen.IsZero() {
			t.Fatalf("record %+v", r)
		}
	}
	if assessed != 125 {
		t.Errorf("%d assessed records, want 125", assessed)
	}
	t.Run("expired token mid-crawl", func(t *testing.T) {
		e.mock.ResetRequests()
		e.mock.ExpireTokens()
		if recs, err := e.p.List(context.Background()); err != nil || len(recs) != 250 {
			t.Fatalf("%d %v", len(recs), err)
		}
		if n := e.mock.Calls.Get("token"); n != 1 {
			t.Fatalf("token calls = %d, want 1", n)
		}
	})
}

func TestRetryAfterParser(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tests := []struct {
		name   string
		header map[string]string
		want   time.Duration
		ok     bool
	}{
		{"epoch seconds", map[string]string{"X-Ratelimit-Retryafter": "1800000007"}, 7 * time.Second, true},
		{"epoch milliseconds", map[string]string{"X-Ratelimit-Retryafter": "1800000002500"}, 2500 * time.Millisecond, true},
		{"in the past waits the minimum", map[string]string{"X-Ratelimit-Retryafter": "1799999990"}, time.Second, true},
		{"capped", map[string]string{"X-Ratelimit-Retryafter": "1900000000"}, 24 * time.Hour, true},
		{"standard header fallback", map[string]string{"Retry-After": "3"}, 3 * time.Second, true},
		{"garbage falls back", map[string]string{"X-Ratelimit-Retryafter": "soon", "Retry-After": "2"}, 2 * time.Second, true},
		{"none", nil, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := &http.Response{Header: http.Header{}}
			for k, v := range tc.header {
				resp.Header.Set(k, v)
			}
			got, ok := retryAfterAt(resp, now)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("got %s %v, want %s %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestStatementLimits(t *testing.T) {
	var vals []string
	for i := range 1000 {
		vals = append(vals, fmt.Sprintf("host-%04d", i))
	}
	for _, tc := range []struct {
		name    string
		queries []query
		want    int
	}{
		{"hostname exact", packBrackets(vals, hostnameForms, "hostname"), 10},
		{"serial", packBrackets(vals, serialForms, "serial_number"), 5},
		{"mac two props", packBrackets(vals, identity, "mac_address", "connection_mac_address"), 10},
		{"hostname prefix", hostnamePrefixQueries(vals), 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.queries) != tc.want {
				t.Errorf("%d statements, want %d", len(tc.queries), tc.want)
			}
			seen := 0
			for _, q := range tc.queries {
				seen += len(q.values)
				if n := strings.Count(q.filter, "'") / 2; n > maxFQLValues {
					t.Errorf("%d values in one statement", n)
				}
				if n := strings.Count(q.filter, ":"); n > maxFQLProperties {
					t.Errorf("%d properties in one statement", n)
				}
			}
			if seen != len(vals) {
				t.Errorf("statements cover %d values, want %d", seen, len(vals))
			}
		})
	}
	if f := packBrackets([]string{"EC2A-B"}, serialForms, "serial_number")[0].filter; f != "serial_number:['EC2A-B','ec2a-b']" {
		t.Errorf("uuid-like serial statement %q", f)
	}
	if f := hostnamePrefixQueries([]string{"mbp-1"})[0].filter; f != "hostname:*'mbp-1.*',hostname:*'MBP-1.*'" {
		t.Errorf("prefix statement %q", f)
	}
}

func TestPacer(t *testing.T) {
	var pc pacer
	pc.observe(http.Header{"X-Ratelimit-Remaining": {"500"}})
	start := time.Now()
	if err := pc.wait(context.Background()); err != nil || time.Since(start) > 50*time.Millisecond {
		t.Fatal("paced with plenty of budget left")
	}
	pc.observe(http.Header{"X-Ratelimit-Remaining": {"3"}})
	start = time.Now()
	if err := pc.wait(context.Background()); err != nil || time.Since(start) < 400*time.Millisecond {
		t.Fatal("did not slow down with 3 requests left")
	}
	pc.observe(http.Header{"X-Ratelimit-Remaining": {"1"}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := pc.wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait ignored cancellation: %v", err)
	}
}

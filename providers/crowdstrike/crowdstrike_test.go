package crowdstrike

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
	"testing"
	"testing/synctest"
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

// newTestProvider is a provider with testConfig's settings against baseURL.
func newTestProvider(t *testing.T, baseURL string) *Provider {
	t.Helper()
	cfg := testConfig(baseURL)
	cfg.Defaults()
	p, err := New(cfg, providers.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	return p
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
		// Stored as the device reports them, in mixed case; a lift of
		// containment not yet done.
		{DeviceID: aid(6), Hostname: "Oskars-Mac-mini-29", SerialNumber: "VMware-56 4d 9e 3a 1b 2c 3d 4e-5f 6a 7b 8c 9d 0e 1f 2a",
			MACAddress: "02-00-00-00-00-06", Email: "Oskar.Berg@Example.com", Status: "lift_containment_pending",
			LastSeen: "2026-11-20T07:00:00Z", PlatformName: "Mac"},
		// Decoys a single FQL term also matches (by prefix), which must
		// not be taken for aid(6) and aid(8).
		{DeviceID: aid(7), Hostname: "oskars-mac-mini-290", SerialNumber: "VMware-56 4d 9e 3a 1b 2c 3d 4e-5f 6a 7b 8c 9d 0e 1f 2a0",
			MACAddress: "02-00-00-00-00-07", Email: "oskar.berg@example.com.au", Status: "normal", LastSeen: "2026-11-20T07:00:00Z"},
		{DeviceID: aid(8), Hostname: "MacBook-Pro", SerialNumber: "C02MiXeD9", MACAddress: "02-00-00-00-00-08",
			Status: "normal", LastSeen: "2026-11-20T07:00:00Z", PlatformName: "Mac"},
		{DeviceID: aid(9), Hostname: "MacBook-Pro-2", SerialNumber: "C02MIXED90", MACAddress: "02-00-00-00-00-09",
			Status: "normal", LastSeen: "2026-11-20T07:00:00Z", PlatformName: "Mac"},
	}
	zta := []crowdstrikemock.Assessment{
		{AID: aid(0), Assessment: crowdstrikemock.Scores{Overall: 83, OS: 80, SensorConfig: 90, Version: "2.1.0"}},
		{AID: aid(1), Assessment: crowdstrikemock.Scores{Overall: 90, Version: "2.1.0"}},
		{AID: aid(2), Assessment: crowdstrikemock.Scores{Overall: 77, Version: "2.1.0"}},
		{AID: aid(4), Assessment: crowdstrikemock.Scores{Overall: 95, Version: "2.1.0"}},
		{AID: aid(5), Assessment: crowdstrikemock.Scores{Overall: 64, Version: "2.1.0"}},
		{AID: aid(6), Assessment: crowdstrikemock.Scores{Overall: 88, Version: "2.1.0"}},
		{AID: aid(7), Assessment: crowdstrikemock.Scores{Overall: 91, Version: "2.1.0"}},
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
		{name: "trailing slash", edit: func(c *Config) { c.BaseURL = "https://mock:8080/falcon/" }, wantURL: "https://mock:8080/falcon"},
		{name: "plain http to loopback", edit: func(c *Config) { c.BaseURL = "http://127.0.0.1:8080/falcon" }, wantURL: "http://127.0.0.1:8080/falcon"},
		{name: "plain http elsewhere", edit: func(c *Config) { c.BaseURL = "http://mock:8080/falcon" }, wantErr: `base_url must use https: plain http is allowed only to a loopback host (localhost, 127.0.0.1, ::1), got "http://mock:8080/falcon"`},
		{name: "unknown cloud", edit: func(c *Config) { c.BaseURL = "us-9" }, wantErr: `base_url must be one of us-1, us-2, eu-1, us-gov-1, us-gov-2 or an https URL, got "us-9"`},
		{name: "bad scheme", edit: func(c *Config) { c.BaseURL = "ftp://x" }, wantErr: `base_url must be an absolute https URL, got "ftp://x"`},
		{name: "credentials in url", edit: func(c *Config) { c.BaseURL = "https://u:p@api.crowdstrike.com" }, wantErr: "must not carry credentials"},
		{name: "no client id", edit: func(c *Config) { c.ClientID = "" }, wantErr: "client_id is required"},
		{name: "no secret", edit: func(c *Config) { c.ClientSecret = "" }, wantErr: "client_secret is required"},
		{name: "score range", edit: func(c *Config) { v := 101; c.UnassessedScore = &v }, wantErr: "unassessed_score must be between 0 and 100"},
		{name: "contained score range", edit: func(c *Config) { v := -1; c.ContainedScore = &v }, wantErr: "contained_score must be"},
		{name: "page size", edit: func(c *Config) { c.PageSize = 10001 }, wantErr: "page_size must be between 1 and 10000"},
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
	if n := e.mock.Calls.Get("combinedDevices"); n != 4 {
		t.Fatalf("combinedDevices calls = %d, want 4 pages of 2", n)
	}
	for _, r := range e.mock.Requests() {
		if r.Endpoint == "combinedDevices" && r.Limit != "2" {
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

// padFound and padMissing are the values padTenant adds to a lookup that
// hosts carry and that none does.
const padFound, padMissing = 30, 30

// padTenant adds padFound hosts to hosts and returns them with the
// normalised values of kind k of a batch: those of the new hosts and
// padMissing no host carries. The new hosts store their identifiers as most
// hosts do: serials upper-case, hostnames and emails lower-case.
func padTenant(hosts []crowdstrikemock.Host, k providers.Kind) ([]crowdstrikemock.Host, []string) {
	var values []string
	for i := range padFound + padMissing {
		h := crowdstrikemock.Host{DeviceID: fmt.Sprintf("%032x", 0xbad000+i), SerialNumber: fmt.Sprintf("PAD%05d", i),
			Hostname: fmt.Sprintf("pad-%05d", i), Email: fmt.Sprintf("pad%05d@example.com", i),
			MACAddress: fmt.Sprintf("02-00-00-ba-%02x-%02x", i/256, i%256), Status: "normal", LastSeen: "2026-11-20T10:00:00Z"}
		raw := map[providers.Kind]string{providers.KindSerial: h.SerialNumber, providers.KindMAC: h.MACAddress,
			providers.KindHostname: h.Hostname, providers.KindEmail: h.Email}[k]
		v, _ := providers.Normalize(k, raw)
		values = append(values, v)
		if i < padFound {
			hosts = append(hosts, h)
		}
	}
	return hosts, values
}

func TestLookupKinds(t *testing.T) {
	tests := []struct {
		name   string
		kind   providers.Kind
		values []string // as Cloudflare sends them, normalised below
		substr bool     // the mock's single terms match substrings
		want   []string
	}{
		{"serial with duplicate", providers.KindSerial, []string{"c02xk1zzjgh5"}, false, []string{aid(0), aid(4)}},
		{"serial upper-case uuid", providers.KindSerial, []string{"EC2A1B2C-0000-1111-2222-333344445555"}, false, []string{aid(2)}},
		{"serial mixed case in falcon", providers.KindSerial, []string{"VMware-56 4d 9e 3a 1b 2c 3d 4e-5f 6a 7b 8c 9d 0e 1f 2a"}, false, []string{aid(6)}},
		{"serial mixed case, prefix decoy dropped", providers.KindSerial, []string{"C02MIXED9"}, false, []string{aid(8)}},
		{"serial unknown", providers.KindSerial, []string{"NOPE"}, false, nil},
		{"mac colon form", providers.KindMAC, []string{"74:1D:3E:23:E0:FE"}, false, []string{aid(0), aid(4)}},
		{"mac only as connection mac", providers.KindMAC, []string{"0A-BB-CC-DD-EE-FF"}, false, []string{aid(1)}},
		{"mac cisco form", providers.KindMAC, []string{"0200.0000.0002"}, false, []string{aid(2)}},
		{"hostname lower", providers.KindHostname, []string{"MBP-42"}, false, []string{aid(0), aid(4)}},
		{"hostname windows upper", providers.KindHostname, []string{"desktop-7.corp.example"}, false, []string{aid(1)}},
		{"hostname fqdn in falcon", providers.KindHostname, []string{"ws-9"}, false, []string{aid(2)}},
		{"hostname mixed case fqdn in falcon", providers.KindHostname, []string{"mixed-case"}, false, []string{aid(5)}},
		{"hostname mixed case, prefix decoy dropped", providers.KindHostname, []string{"Oskars-Mac-mini-29"}, false, []string{aid(6)}},
		{"hostname macbook-pro is not macbook-pro-2", providers.KindHostname, []string{"macbook-pro"}, false, []string{aid(8)}},
		{"hostname both macbooks", providers.KindHostname, []string{"macbook-pro", "MACBOOK-PRO-2"}, false, []string{aid(8), aid(9)}},
		{"hostname substring matches dropped", providers.KindHostname, []string{"book-pro"}, true, nil},
		{"hostname found with substring matching", providers.KindHostname, []string{"oskars-mac-mini-29"}, true, []string{aid(6)}},
		{"hostname unknown", providers.KindHostname, []string{"nope-1"}, false, nil},
		{"email", providers.KindEmail, []string{"JDoe@Example.com"}, false, []string{aid(0)}},
		{"email unknown", providers.KindEmail, []string{"nope@example.com"}, false, nil},
		{"email mixed case in falcon, decoy dropped", providers.KindEmail, []string{"oskar.berg@example.com"}, false, []string{aid(6)}},
		{"several values at once", providers.KindSerial, []string{"PF000007", "LNX0000003"}, false, []string{aid(1), aid(3)}},
	}
	for _, tc := range tests {
		// Alone, a value goes out as a single term. In a batch, which
		// takes more than one statement, a serial is first asked in a
		// bracket list and only then, if no host carries it exactly, as a
		// single term: both must find the same hosts.
		for _, batch := range []bool{false, true} {
			name := tc.name
			if batch {
				name += " in a batch"
			}
			t.Run(name, func(t *testing.T) {
				opts := sampleOpts()
				opts.SubstringTerms = tc.substr
				var vals, padding []string
				for _, v := range tc.values {
					n, ok := providers.Normalize(tc.kind, v)
					if !ok {
						t.Fatalf("%q does not normalise", v)
					}
					vals = append(vals, n)
				}
				if batch {
					opts.Devices, padding = padTenant(opts.Devices, tc.kind)
				}
				e := newEnv(t, opts, nil)
				recs, err := e.p.Lookup(context.Background(), providers.Query{Kind: tc.kind, Values: append(slices.Clone(vals), padding...)})
				if err != nil {
					t.Fatal(err)
				}
				var got []providers.Record
				padded := 0
				for _, r := range recs {
					switch {
					case slices.ContainsFunc(vals, func(v string) bool { return r.Has(tc.kind, v) }):
						got = append(got, r)
					case slices.ContainsFunc(padding, func(v string) bool { return r.Has(tc.kind, v) }):
						padded++
					default:
						t.Errorf("record %s carries none of the %s values asked for: %+v", r.ID, tc.kind, r)
					}
				}
				if g := ids(got); !slices.Equal(g, tc.want) {
					t.Fatalf("got %v, want %v", g, tc.want)
				}
				if batch && padded != padFound {
					t.Errorf("%d records for the padding values, want %d", padded, padFound)
				}
				brackets := slices.ContainsFunc(e.mock.Requests(), func(r crowdstrikemock.LoggedRequest) bool {
					return strings.Contains(r.Filter, "serial_number:[")
				})
				if want := batch && tc.kind == providers.KindSerial; brackets != want {
					t.Errorf("serials asked in a bracket list: %v, want %v", brackets, want)
				}
			})
		}
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
		recs, err := e.p.Lookup(context.Background(), providers.Query{Kind: providers.KindSerial, Values: []string{"X'],serial_number:*'*", "*", "A'"}})
		if err != nil || len(recs) != 0 || e.mock.Calls.Total() != 0 {
			t.Fatalf("recs %v err %v calls %v", recs, err, e.mock.Calls.Snapshot())
		}
	})
	t.Run("assessments only for hosts that match", func(t *testing.T) {
		// oskars-mac-mini-29 also returns the decoy aid(7) from Falcon:
		// its assessment is not fetched.
		e := newEnv(t, sampleOpts(), nil)
		if _, err := e.p.Lookup(context.Background(), providers.Query{Kind: providers.KindHostname, Values: []string{"oskars-mac-mini-29"}}); err != nil {
			t.Fatal(err)
		}
		for _, r := range e.mock.Requests() {
			if r.Endpoint == "ztaAssessments" && r.IDs != 1 {
				t.Errorf("assessments asked for %d hosts, want only the match", r.IDs)
			}
		}
	})
}

func TestScoring(t *testing.T) {
	type want struct {
		score     int
		reason    string
		contained bool // hysteresis never delays these
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
				aid(0): {83, "status=normal zta.overall=83", false},
				aid(1): {0, "status=contained", true},
				aid(2): {0, "status=containment_pending", true},
				aid(3): {50, "status=normal zta=unassessed", false},
				aid(6): {0, "status=lift_containment_pending", true}, // still contained
			},
		},
		{
			name: "ZTA omits unassessed",
			opts: func(o *crowdstrikemock.Options) { o.ZTAOmitMissing = true },
			want: map[string]want{aid(0): {83, "status=normal zta.overall=83", false}, aid(3): {50, "status=normal zta=unassessed", false}},
		},
		{
			name: "overrides",
			tweak: func(c *Config) {
				u, k := 20, 5
				c.UnassessedScore, c.ContainedScore = &u, &k
			},
			want: map[string]want{aid(1): {5, "status=contained", true}, aid(3): {20, "status=normal zta=unassessed", false}, aid(0): {83, "status=normal zta.overall=83", false},
				aid(6): {5, "status=lift_containment_pending", true}},
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
				Values: []string{"C02XK1ZZJGH5", "PF000007", "EC2A1B2C-0000-1111-2222-333344445555", "LNX0000003",
					"VMWARE-56 4D 9E 3A 1B 2C 3D 4E-5F 6A 7B 8C 9D 0E 1F 2A"}})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]want{}
			for _, r := range recs {
				got[r.ID] = want{r.Score, r.Reason, r.Contained}
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
	p := newTestProvider(t, srv.URL)
	_, err := p.Lookup(context.Background(), providers.Query{Kind: providers.KindSerial, Values: []string{"PF000007"}})
	if err == nil || !strings.Contains(err.Error(), "falcon: zta assessments: status 404") {
		t.Fatalf("err = %v", err)
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
	// One page of scores; by id only the 125 hosts it does not list.
	want := map[string]int{"combinedDevices": 3, "ztaQueries": 1, "ztaAssessments": 2}
	for k, n := range want {
		if got := e.mock.Calls.Get(k); got != n {
			t.Errorf("%s calls = %d, want %d", k, got, n)
		}
	}
	assessed := 0
	for _, r := range recs {
		if r.Reason == "status=normal zta.overall=70" {
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

func TestStatements(t *testing.T) {
	values := func(n int, f func(int) string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	hosts := values(1000, func(i int) string { return fmt.Sprintf("host-%04d", i) })
	// 256 bytes that URL-encode to three bytes each.
	wide := values(30, func(i int) string { return fmt.Sprintf("%03d", i) + strings.Repeat("é", 126) + "x" })
	tests := []struct {
		name   string
		kind   providers.Kind
		exact  bool // the plan's exact stage
		values []string
		want   int
	}{
		{"serial exact: 200 in a bracket list", providers.KindSerial, true, hosts, 5},
		{"serial: 20 single terms", providers.KindSerial, false, hosts, 50},
		{"hostname: 20 single terms", providers.KindHostname, false, hosts, 50},
		{"email: 20 single terms", providers.KindEmail, false, hosts, 50},
		{"mac: 100 in two bracket lists", providers.KindMAC, false, values(1000, func(i int) string { return fmt.Sprintf("0242ac%06x", i) }), 10},
		{"long values: by encoded size", providers.KindHostname, false, wide, 5},     // 780 bytes each, 7 a statement
		{"long serials exact: by encoded size", providers.KindSerial, true, wide, 5}, // 770 bytes each, 7 a statement
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pl, _ := planFor(tc.kind)
			st := pl.rest
			if tc.exact {
				st = *pl.exact
			}
			stmts := st.pack(tc.values)
			if len(stmts) != tc.want {
				t.Errorf("%d statements, want %d", len(stmts), tc.want)
			}
			var seen []string
			for _, vals := range stmts {
				seen = append(seen, vals...)
				f := st.filter(vals)
				if props := strings.Count(f, ":"); props > maxFQLProperties {
					t.Errorf("%d properties in one statement", props)
				}
				if entries := strings.Count(f, "'") / 2; strings.Contains(f, "[") && entries > maxFQLValues {
					t.Errorf("%d bracket entries in one statement", entries)
				}
				if n := len(url.QueryEscape(f)); n > maxFilterBytes && len(vals) > 1 {
					t.Errorf("statement of %d values is %d bytes encoded", len(vals), n)
				}
			}
			if !slices.Equal(seen, tc.values) {
				t.Error("statements do not cover the values once each, in order")
			}
		})
	}
	for _, tc := range []struct {
		kind   providers.Kind
		exact  bool
		values []string
		want   string
	}{
		{providers.KindSerial, true, []string{"C02X", "VMWARE-56 4D"}, "serial_number:['C02X','VMWARE-56 4D']"},
		{providers.KindSerial, false, []string{"C02X", "VMWARE-56 4D"}, "serial_number:'C02X',serial_number:'VMWARE-56 4D'"},
		{providers.KindHostname, false, []string{"mbp-1"}, "hostname:'mbp-1'"},
		{providers.KindEmail, false, []string{"a@example.com"}, "email:'a@example.com'"},
		{providers.KindMAC, false, []string{"741d3e23e0fe", "020000000001"},
			"mac_address:['74-1d-3e-23-e0-fe','02-00-00-00-00-01'],connection_mac_address:['74-1d-3e-23-e0-fe','02-00-00-00-00-01']"},
	} {
		pl, _ := planFor(tc.kind)
		st := pl.rest
		if tc.exact {
			st = *pl.exact
		}
		if got := st.filter(tc.values); got != tc.want {
			t.Errorf("%s statement %q, want %q", tc.kind, got, tc.want)
		}
	}
	for _, k := range []providers.Kind{providers.KindMAC, providers.KindHostname, providers.KindEmail} {
		if pl, _ := planFor(k); pl.exact != nil {
			t.Errorf("%s has an exact stage", k)
		}
	}
}

func TestGate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := gate{maxWait: 5 * time.Second}
		waited := func(ctx context.Context) (time.Duration, error) {
			start := time.Now()
			err := g.wait(ctx)
			return time.Since(start), err
		}
		if d, err := waited(t.Context()); d != 0 || err != nil {
			t.Fatalf("closed gate: waited %s, %v", d, err)
		}
		g.observe(http.Header{"X-Ratelimit-Remaining": {"500"}})
		if d, _ := waited(t.Context()); d != 0 {
			t.Fatalf("paced with plenty of budget left: %s", d)
		}
		g.observe(http.Header{"X-Ratelimit-Remaining": {"3"}})
		if d, _ := waited(t.Context()); d != 500*time.Millisecond {
			t.Fatalf("3 requests left: waited %s, want 500ms", d)
		}

		// A 429 holds every waiter until the time Falcon named; a shorter
		// pause reported later does not cut it short.
		g.hold(time.Now().Add(2 * time.Second))
		g.hold(time.Now().Add(time.Second))
		var wg sync.WaitGroup
		got := make([]time.Duration, 3)
		for i := range got {
			wg.Go(func() { got[i], _ = waited(t.Context()) })
		}
		wg.Wait()
		for i, d := range got {
			if d != 2*time.Second {
				t.Errorf("waiter %d released after %s, want 2s", i, d)
			}
		}

		g = gate{maxWait: 5 * time.Second}
		g.hold(time.Now().Add(30 * time.Second))
		d, err := waited(t.Context())
		var rl *providers.RateLimitedError
		if d != 0 || !errors.As(err, &rl) || rl.RetryAfter != 30*time.Second {
			t.Fatalf("pause past retry_wait_max: waited %s, %v; want a RateLimitedError at once", d, err)
		}

		g = gate{maxWait: 5 * time.Second}
		g.hold(time.Now().Add(4 * time.Second))
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if d, err := waited(ctx); d != time.Second || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("context ended mid-pause: waited %s, %v", d, err)
		}
	})
}

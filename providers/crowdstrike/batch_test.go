package crowdstrike

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postured/postured/internal/conf"
	"github.com/postured/postured/internal/fleet"
	"github.com/postured/postured/providers"
	"github.com/postured/postured/providers/crowdstrike/crowdstrikemock"
)

// TestRefusedStatements: a statement Falcon refuses fails only the values
// Falcon will not take; every other value of the batch is answered.
func TestRefusedStatements(t *testing.T) {
	// longSerials is a tenant whose serials are 180 characters long, so
	// that a full statement is longer than its assessments request.
	longSerials := func(n int) (crowdstrikemock.Options, []string) {
		opts, serials := bulkOpts(n)
		for i := range opts.Devices {
			opts.Devices[i].SerialNumber += strings.Repeat("P", 180)
			serials[i] = opts.Devices[i].SerialNumber
		}
		return opts, serials
	}
	tests := []struct {
		name        string
		opts        func() (crowdstrikemock.Options, []string)
		maxURLBytes int
		extra       string // a value no host has, mixed into the batch
		wantRefused bool   // the extra value fails alone
		want414     int    // statements Falcon refuses; -1: some
	}{
		{name: "a 10 KB serial is asked alone", opts: func() (crowdstrikemock.Options, []string) { return bulkOpts(1000) },
			extra: strings.Repeat("X", 10<<10)},
		{name: "a serial over the URL limit fails alone", opts: func() (crowdstrikemock.Options, []string) { return bulkOpts(1000) },
			extra: strings.Repeat("X", 20<<10), wantRefused: true, want414: 1},
		{name: "statements over the URL limit are split", opts: func() (crowdstrikemock.Options, []string) { return longSerials(60) },
			maxURLBytes: 3000, want414: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts, serials := tc.opts()
			opts.MaxURLBytes = tc.maxURLBytes
			e := newEnv(t, opts, nil)
			values := slices.Clone(serials)
			if tc.extra != "" {
				values = slices.Insert(values, len(values)/2, tc.extra)
			}
			recs, err := e.p.Lookup(context.Background(), providers.Query{Kind: providers.KindSerial, Values: values})
			var pe *providers.PartialError
			switch {
			case !tc.wantRefused && err != nil:
				t.Fatalf("err = %v, want every value answered", err)
			case tc.wantRefused && !errors.As(err, &pe):
				t.Fatalf("err = %v, want a *providers.PartialError", err)
			case tc.wantRefused && !slices.Equal(pe.Values, []string{tc.extra}):
				t.Fatalf("refused %d values, want only the long one", len(pe.Values))
			}
			if len(recs) != len(serials) {
				t.Errorf("%d records, want one for each of the %d serials in Falcon", len(recs), len(serials))
			}
			refused := 0
			for _, r := range e.mock.Requests() {
				if r.Status == http.StatusRequestURITooLong {
					refused++
				}
				// Whatever the URL limit, a long value must not take
				// others down with it.
				if tc.extra != "" && strings.Contains(r.Filter, tc.extra) && r.Filter != "serial_number:'"+tc.extra+"'" {
					t.Errorf("the long value was asked together with others: %.80q...", r.Filter)
				}
			}
			if tc.want414 >= 0 && refused != tc.want414 || tc.want414 < 0 && refused == 0 {
				t.Errorf("%d statements refused with 414, want %d (-1: some)", refused, tc.want414)
			}
		})
	}
}

// TestRefusedInBracketList: a serial Falcon refuses in a bracket list is
// isolated there as in single terms, the other serials of its list
// answered by the list; it is then asked as a single term, which finds it
// or, refused too, fails it alone in a *providers.PartialError.
func TestRefusedInBracketList(t *testing.T) {
	const poison = "SN00033" // a serial of the tenant
	tests := []struct {
		name         string
		status       int
		refuseSingle bool // Falcon refuses the single term too
	}{
		{"400 in a list, found as a single term", http.StatusBadRequest, false},
		{"414 in a list, found as a single term", http.StatusRequestURITooLong, false},
		{"400 in a list and alone: refused", http.StatusBadRequest, true},
		{"414 in a list and alone: refused", http.StatusRequestURITooLong, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts, serials := bulkOpts(60)
			opts.ClientID, opts.ClientSecret = "falcon-client", testSecret
			mock := crowdstrikemock.New(opts)
			var (
				mu      sync.Mutex
				refused []string
			)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if f := r.URL.Query().Get("filter"); strings.Contains(f, poison) && (strings.Contains(f, "[") || tc.refuseSingle) {
					mu.Lock()
					refused = append(refused, f)
					mu.Unlock()
					w.WriteHeader(tc.status)
					fmt.Fprintf(w, `{"meta":{"query_time":0,"trace_id":"x"},"resources":[],"errors":[{"code":%d,"message":"invalid filter"}]}`, tc.status)
					return
				}
				mock.ServeHTTP(w, r)
			}))
			defer srv.Close()
			p := newTestProvider(t, srv.URL)
			recs, err := p.Lookup(context.Background(), providers.Query{Kind: providers.KindSerial, Values: serials})
			var pe *providers.PartialError
			want := len(serials)
			switch {
			case !tc.refuseSingle && err != nil:
				t.Fatalf("err = %v, want every serial answered", err)
			case tc.refuseSingle && (!errors.As(err, &pe) || !slices.Equal(pe.Values, []string{poison})):
				t.Fatalf("err = %v, want a *providers.PartialError for %s alone", err, poison)
			case tc.refuseSingle:
				want--
			}
			if len(recs) != want {
				t.Errorf("%d records, want %d", len(recs), want)
			}
			mu.Lock()
			defer mu.Unlock()
			if !slices.Contains(refused, "serial_number:['"+poison+"']") {
				t.Errorf("the refused list was not split down to %s: refused %q", poison, refused)
			}
			asked := slices.Clone(refused)
			for _, r := range mock.Requests() {
				asked = append(asked, r.Filter)
			}
			for _, f := range asked {
				if f != "" && !strings.Contains(f, "[") && f != "serial_number:'"+poison+"'" {
					t.Errorf("asked as single terms: %.60q; only the refused serial should be", f)
				}
			}
		})
	}
}

// TestRateLimitPausesEveryRequest: after a 429, no request of the provider
// goes out before the time Falcon named, whichever goroutine or lookup it
// belongs to: the pool is the customer's, and a request sent into it only
// spends it further.
func TestRateLimitPausesEveryRequest(t *testing.T) {
	t.Run("a pause past retry_wait_max fails later lookups unsent", func(t *testing.T) {
		e := newEnv(t, sampleOpts(), nil)
		e.mock.Faults.RateLimit(1, 30*time.Second)
		serial := providers.Query{Kind: providers.KindSerial, Values: []string{"PF000007"}}
		var rl *providers.RateLimitedError
		if _, err := e.p.Lookup(context.Background(), serial); !errors.As(err, &rl) {
			t.Fatalf("err = %v, want a *providers.RateLimitedError", err)
		}
		sent := e.mock.Calls.Total()
		for _, q := range []providers.Query{serial, {Kind: providers.KindHostname, Values: []string{"mbp-42"}}} {
			if _, err := e.p.Lookup(context.Background(), q); !errors.As(err, &rl) || rl.RetryAfter < 20*time.Second {
				t.Errorf("%s lookup during the pause: %v, want a *providers.RateLimitedError of the pause left", q.Kind, err)
			}
		}
		if n := e.mock.Calls.Total() - sent; n != 0 {
			t.Errorf("%d requests sent during the pause", n)
		}
	})

	t.Run("a short pause holds back the other goroutines", func(t *testing.T) {
		// Hostnames, as their single terms make three statements of 41
		// values (41 serials would fit one bracket list).
		opts, _ := bulkOpts(2*maxFQLProperties + 1)
		var hostnames []string
		for _, h := range opts.Devices {
			hostnames = append(hostnames, h.Hostname)
		}
		opts.ClientID, opts.ClientSecret = "falcon-client", testSecret
		mock := crowdstrikemock.New(opts)
		var (
			mu        sync.Mutex
			arrived   int
			notBefore time.Time
			early     int
			bothIn    = make(chan struct{})
			released  = make(chan struct{})
			release   sync.Once
		)
		// The first two statements go out together. The first is refused
		// with 429 once both are in flight; the second is answered only
		// after the client has read the 429, so that the third statement,
		// which follows it, is sent knowing of the pause.
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == tokenPath {
				mock.ServeHTTP(w, r)
				return
			}
			mu.Lock()
			arrived++
			n, nb := arrived, notBefore
			// The clocks of client and mock are one; the margin only
			// absorbs scheduling, far below the second a request sent
			// without waiting would be early by.
			if n > 2 && time.Now().Before(nb.Add(-250*time.Millisecond)) {
				early++
			}
			mu.Unlock()
			// A failure bound, not an ordering: if the statements stop
			// going out two at a time, fail instead of hanging.
			wait := func(ch chan struct{}, what string) bool {
				select {
				case <-ch:
					return true
				case <-time.After(30 * time.Second):
					t.Errorf("statement %d: %s never came", n, what)
					w.WriteHeader(http.StatusInternalServerError)
					return false
				}
			}
			switch n {
			case 1:
				if !wait(bothIn, "a second statement in flight") {
					return
				}
				at := time.Now().Add(time.Second).Unix() + 1
				mu.Lock()
				notBefore = time.Unix(at, 0)
				mu.Unlock()
				w.Header().Set("X-Ratelimit-Retryafter", strconv.FormatInt(at, 10))
				w.WriteHeader(http.StatusTooManyRequests)
				fmt.Fprint(w, `{"meta":{"query_time":0,"trace_id":"x"},"errors":[{"code":429,"message":"API rate limit exceeded."}]}`)
				return
			case 2:
				close(bothIn)
				if !wait(released, "the client's reading of the 429") {
					return
				}
			}
			mock.ServeHTTP(w, r)
		}))
		defer srv.Close()
		cfg := testConfig(srv.URL)
		cfg.MaxConcurrency, cfg.RetryWaitMax = 2, conf.Duration(5*time.Second)
		cfg.Defaults()
		p, err := newProvider(cfg, providers.Deps{}, func(status int, _ time.Duration) {
			if status == http.StatusTooManyRequests {
				release.Do(func() { close(released) })
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		recs, err := p.Lookup(context.Background(), providers.Query{Kind: providers.KindHostname, Values: hostnames})
		if err != nil || len(recs) != len(hostnames) {
			t.Fatalf("%d records, %v; want all %d after the pause", len(recs), err, len(hostnames))
		}
		mu.Lock()
		defer mu.Unlock()
		if arrived < 4 {
			t.Fatalf("%d API requests: the scenario did not play out", arrived)
		}
		if early > 0 {
			t.Errorf("%d requests sent before the time the 429 named", early)
		}
	})
}

// TestColdBatchCalls looks a cold 1000-device batch up the way the
// aggregator does (serials first; MACs, hostnames and emails of the
// devices still unmatched, concurrently) against the fleet's Falcon view,
// and holds it to the mock's budget per batch. The serials go out 200 a
// bracket list, and only those no host stores exactly as normalised then
// as single terms. Every host carrying a serial of the batch must be
// found, whatever case Falcon stores it in, and no other.
func TestColdBatchCalls(t *testing.T) {
	f := fleet.Generate(5000, 1, time.Now())
	batch := f.Batch()[:1000]
	budget := crowdstrikemock.Vendor(f).BatchCalls
	tests := []struct {
		name  string
		hosts func() []crowdstrikemock.Host
	}{
		{"serials as the fleet stores them", func() []crowdstrikemock.Host { return crowdstrikemock.FleetHosts(f) }},
		{"serials all upper-case", func() []crowdstrikemock.Host {
			hosts := crowdstrikemock.FleetHosts(f)
			for i := range hosts {
				hosts[i].SerialNumber = strings.ToUpper(hosts[i].SerialNumber)
			}
			return hosts
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hosts := tc.hosts()
			mock := crowdstrikemock.New(crowdstrikemock.Options{Devices: hosts, Assessments: crowdstrikemock.FleetAssessments(f),
				ClientID: "falcon-client", ClientSecret: testSecret})
			srv := httptest.NewServer(mock)
			defer srv.Close()
			p := newTestProvider(t, srv.URL)
			coldBatch(t, p, mock, batch, hosts, budget)
		})
	}
}

// coldBatch looks batch up in p as the aggregator does, checks the serial
// statements and the records found against hosts, and the calls against
// budget.
func coldBatch(t *testing.T, p *Provider, mock *crowdstrikemock.Server, batch []fleet.CloudflareDevice, hosts []crowdstrikemock.Host, budget int) {
	t.Helper()
	key := func(k providers.Kind, cd fleet.CloudflareDevice) string {
		raw := map[providers.Kind]string{providers.KindSerial: cd.SerialNumber, providers.KindMAC: cd.MACAddress,
			providers.KindHostname: cd.Hostname, providers.KindEmail: cd.Email}[k]
		v, _ := providers.Normalize(k, raw)
		return v
	}
	matched := make([]bool, len(batch))
	lookup := func(k providers.Kind) ([]providers.Record, []string) {
		var values []string
		for i, cd := range batch {
			if v := key(k, cd); v != "" && !matched[i] && !slices.Contains(values, v) {
				values = append(values, v)
			}
		}
		recs, err := p.Lookup(context.Background(), providers.Query{Kind: k, Values: values})
		if err != nil {
			t.Errorf("%s: %v", k, err)
		}
		return recs, values
	}
	settle := func(k providers.Kind, recs []providers.Record) {
		for i, cd := range batch {
			v := key(k, cd)
			matched[i] = matched[i] || v != "" && slices.ContainsFunc(recs, func(r providers.Record) bool { return r.Has(k, v) })
		}
	}

	recs, values := lookup(providers.KindSerial)
	settle(providers.KindSerial, recs)
	carriers := map[string][]string{} // normalised serial: the AIDs of the hosts carrying it
	stored := map[string]bool{}       // serials as Falcon stores them
	for _, h := range hosts {
		stored[h.SerialNumber] = true
		if v, ok := providers.NormalizeSerial(h.SerialNumber); ok {
			carriers[v] = append(carriers[v], h.DeviceID)
		}
	}
	got := map[string][]string{}
	for _, r := range recs {
		for _, v := range r.Serials {
			got[v] = append(got[v], r.ID)
		}
	}
	absent, gained, inexact := 0, 0, 0
	for _, v := range values {
		want, have := carriers[v], got[v]
		slices.Sort(want)
		slices.Sort(have)
		if !slices.Equal(have, want) {
			t.Errorf("serial %q: hosts %v, want %v", v, have, want)
		}
		if len(want) == 0 {
			absent++ // not in Falcon: only single terms can tell
		}
		if len(want) > 0 && !stored[v] {
			inexact++
		}
		for _, id := range have {
			if !slices.Contains(want, id) {
				gained++
			}
		}
	}
	if gained > 0 {
		t.Errorf("%d records for serials their hosts do not carry", gained)
	}
	var brackets, singles int
	for _, r := range mock.Requests() {
		switch {
		case strings.HasPrefix(r.Filter, "serial_number:["):
			brackets++
		case strings.HasPrefix(r.Filter, "serial_number:'"):
			singles++
			for term := range strings.SplitSeq(r.Filter, ",") {
				if v := strings.TrimSuffix(strings.TrimPrefix(term, "serial_number:'"), "'"); stored[v] {
					t.Errorf("serial %q, stored as normalised, was asked as a single term", v)
				}
			}
		}
	}
	ceil := func(a, b int) int { return (a + b - 1) / b }
	if want := ceil(len(values), maxFQLValues); brackets != want {
		t.Errorf("%d bracket statements for %d serials, want %d", brackets, len(values), want)
	}
	if want := ceil(absent+inexact, maxFQLProperties); singles != want {
		t.Errorf("%d single-term statements for %d serials not in Falcon and %d stored in another case, want %d", singles, absent, inexact, want)
	}
	calls := mock.Calls.Total()
	t.Logf("serial: %d values (%d not in Falcon, %d in another case), %d calls: %d bracket and %d single-term statements",
		len(values), absent, inexact, calls, brackets, singles)
	round := []providers.Kind{providers.KindMAC, providers.KindHostname, providers.KindEmail}
	found := make([][]providers.Record, len(round))
	var wg sync.WaitGroup
	for i, k := range round {
		wg.Go(func() {
			recs, values := lookup(k)
			found[i] = recs
			t.Logf("%s: %d values", k, len(values))
		})
	}
	wg.Wait()
	for i, k := range round {
		settle(k, found[i])
	}
	total := mock.Calls.Total()
	t.Logf("MAC, hostname and email round: %d calls; batch: %d calls %v", total-calls, total, mock.Calls.Snapshot())
	if total > budget {
		t.Errorf("a cold 1000-device batch cost %d calls, the budget is %d", total, budget)
	}
}

package intune

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postured/postured/internal/fleet"
	"github.com/postured/postured/providers"
	"github.com/postured/postured/providers/intune/intunemock"
)

// clocked points the provider's budget at c; the mock must have been
// built with Options.Now c.Now so that both see the same time.
func clocked(f *fixture, c *fakeClock) {
	f.p.budget.now, f.p.budget.sleep = c.Now, c.Sleep
}

// TestRefusedValueFailsAlone: a value Graph refuses (here a literal longer
// than Graph takes, microsoft-graph-explorer-v4#2103) fails only itself,
// in the one $batch that carried it with the others.
func TestRefusedValueFailsAlone(t *testing.T) {
	long := strings.Repeat("x", 200)
	tests := []struct {
		kind   providers.Kind
		values []string
		want   []string
	}{
		{providers.KindSerial, []string{"PF00000001", long, "VMware-56 4d 1b 2c 3e 4f 5a 6b-7c 8d 9e 0f 1a 2b 3c 4d"}, []string{"01", "08", "09"}},
		{providers.KindHostname, []string{"desktop-00001", long, "Oskars-Mac-mini-29"}, []string{"01", "08", "09"}},
		{providers.KindEmail, []string{"alice@example.com", long + "@example.com", "Oskar.Berg@Example.com"}, []string{"01", "08", "09"}},
	}
	for _, tc := range tests {
		t.Run(tc.kind.String(), func(t *testing.T) {
			f := newFixture(t, intunemock.Options{Devices: devices(), MaxFilterLiteral: 120}, nil, nil)
			q := query(tc.kind, tc.values...)
			refused, _ := providers.Normalize(tc.kind, tc.values[1])
			recs, err := f.p.Lookup(t.Context(), q)
			var pe *providers.PartialError
			if !errors.As(err, &pe) || !slices.Equal(pe.Values, []string{refused}) {
				t.Fatalf("err = %v, want a PartialError for the long value alone", err)
			}
			if providers.Rejected(pe.Err) == false || !strings.HasPrefix(pe.Err.Error(), "intune: lookup "+tc.kind.String()+": $batch item: status 400") {
				t.Errorf("refusal %v", pe.Err)
			}
			if got := ids(recs); !slices.Equal(got, tc.want) {
				t.Errorf("ids %v, want %v", got, tc.want)
			}
			if n := f.srv.Calls.Get("$batch"); n != 1 {
				t.Errorf("%d $batch calls: an item refusal needs no second one", n)
			}
		})
	}
}

// bulkDevices are n devices with serials BULK000000.. and host names
// bulk-00000.., for lookups that fill Graph's throttle window.
func bulkDevices(n int) ([]intunemock.ManagedDevice, []string, []string) {
	var devs []intunemock.ManagedDevice
	var serials, hosts []string
	for i := range n {
		d := intunemock.ManagedDevice{ID: fmt.Sprintf("bulk-%05d", i), SerialNumber: fmt.Sprintf("BULK%06d", i),
			DeviceName: fmt.Sprintf("bulk-%05d", i), ComplianceState: "compliant"}
		devs = append(devs, d)
		serials, hosts = append(serials, d.SerialNumber), append(hosts, d.DeviceName)
	}
	return devs, serials, hosts
}

// TestBudgetAgainstGraph: two lookups one after the other, 4000 $batch
// items in all, and a crawl stay within Graph's 2000 requests per 20 s
// (the mock throttles as Graph does, on the same clock), so Graph never
// throttles them: the budget counts items, not $batch envelopes, and is
// shared by every lookup and crawl of the provider.
func TestBudgetAgainstGraph(t *testing.T) {
	c := newFakeClock()
	devs, serials, hosts := bulkDevices(appRequestLimit)
	// One request at a time: the fake clock jumps when a request waits,
	// and must not jump while another is on its way to the mock.
	f := newFixture(t, intunemock.Options{Devices: devs, Now: c.Now}, func(cfg *Config) { cfg.MaxConcurrency = 1 }, nil)
	clocked(f, c)
	var r retries
	f.p.onRetry = r.hook
	// Each lookup fills the window; the second and the crawl wait for the
	// one before.
	for i, q := range []providers.Query{query(providers.KindSerial, serials...), query(providers.KindHostname, hosts...)} {
		recs, err := f.p.Lookup(t.Context(), q)
		if err != nil {
			t.Fatalf("%s: %v", q.Kind, err)
		}
		if len(recs) != len(devs) {
			t.Errorf("%s: %d records, want %d", q.Kind, len(recs), len(devs))
		}
		if waited := len(c.sleeps()) > 0; waited != (i > 0) {
			t.Errorf("after lookup %d: waited %v", i+1, c.sleeps())
		}
	}
	before := len(c.sleeps())
	if _, err := f.p.List(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(c.sleeps()) == before {
		t.Error("the crawl did not wait for the budget the lookups spent")
	}
	if got := r.get(); len(got) != 0 {
		t.Errorf("Graph throttled: retries %v", got)
	}
	if got := f.srv.Calls.Get("batchItem"); got != 2*appRequestLimit {
		t.Errorf("%d batch items sent, want each of the %d once", got, 2*appRequestLimit)
	}
}

// TestThrottledWithoutRetryAfter: a 429 that does not say how long to wait,
// on a $batch item or on the whole request, waits the 20 s throttle window
// (not a short backoff that Graph throttles again), bounded by the
// lookup's deadline.
func TestThrottledWithoutRetryAfter(t *testing.T) {
	tests := []struct {
		name     string
		inject   func(*intunemock.Server)
		deadline time.Duration // 0: none
		err      bool
		batches  int
	}{
		{name: "batch item", inject: func(s *intunemock.Server) { s.ItemFaults.RateLimit(1, 0) }, batches: 2},
		{name: "whole $batch", inject: func(s *intunemock.Server) { s.Faults.RateLimit(1, 0) }, batches: 2},
		{name: "batch item, deadline before the window ends", inject: func(s *intunemock.Server) { s.ItemFaults.RateLimit(1, 0) }, deadline: 5 * time.Second, err: true, batches: 1},
		{name: "whole $batch, deadline before the window ends", inject: func(s *intunemock.Server) { s.Faults.RateLimit(1, 0) }, deadline: 5 * time.Second, err: true, batches: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newFakeClock()
			f := newFixture(t, intunemock.Options{Devices: devices(), NoRetryAfter: true, Now: c.Now}, nil, nil)
			clocked(f, c)
			var r retries
			f.p.onRetry = r.hook
			tc.inject(f.srv)
			ctx := t.Context()
			if tc.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithDeadline(ctx, c.Now().Add(tc.deadline))
				defer cancel()
			}
			recs, err := f.p.Lookup(ctx, query(providers.KindSerial, "PF00000001", "C020000002A"))
			if got := r.get(); !slices.Equal(got, []string{"429/20s"}) {
				t.Errorf("retries %v, want one after the 20 s window", got)
			}
			if n := f.srv.Calls.Get("$batch"); n != tc.batches {
				t.Errorf("%d $batch calls, want %d", n, tc.batches)
			}
			if tc.err {
				var rl *providers.RateLimitedError
				if !errors.As(err, &rl) || rl.RetryAfter != throttleWindow {
					t.Fatalf("err = %v, want a RateLimitedError of 20s", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(recs); !slices.Equal(got, []string{"01", "02", "08"}) {
				t.Errorf("ids %v", got)
			}
			if got := c.sleeps(); !slices.Equal(got, []time.Duration{throttleWindow}) {
				t.Errorf("waits %v, want the 20 s window", got)
			}
		})
	}
}

// TestThrottlePausesProvider: a Retry-After longer than one lookup waits is
// handed back, and holds the provider's next requests until it has passed,
// as Graph throttles the app and not one request.
func TestThrottlePausesProvider(t *testing.T) {
	c := newFakeClock()
	f := newFixture(t, intunemock.Options{Devices: devices(), Now: c.Now}, nil, nil)
	clocked(f, c)
	q := query(providers.KindSerial, "PF00000001")
	f.srv.ItemFaults.RateLimit(1, 10*time.Second)
	_, err := f.p.Lookup(t.Context(), q)
	var rl *providers.RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter != 10*time.Second {
		t.Fatalf("err = %v, want a RateLimitedError of 10s", err)
	}
	ctx, cancel := context.WithDeadline(t.Context(), c.Now().Add(5*time.Second))
	defer cancel()
	if _, err := f.p.Lookup(ctx, q); !errors.As(err, &rl) || f.srv.Calls.Get("$batch") != 1 {
		t.Fatalf("lookup during the pause: %v after %d $batch calls; want a RateLimitedError and no call", err, f.srv.Calls.Get("$batch"))
	}
	recs, err := f.p.Lookup(t.Context(), q)
	if err != nil || len(recs) != 2 {
		t.Fatalf("lookup that may wait: %d records, %v", len(recs), err)
	}
	if got := c.sleeps(); !slices.Equal(got, []time.Duration{10 * time.Second}) {
		t.Errorf("waits %v, want the 10 s Graph asked for", got)
	}
}

// TestColdBatchCalls looks up a cold 1000-device batch as the aggregator
// does (serials, then host names and emails of the devices not yet
// found) against the mock the end-to-end tests use, where startswith acts
// like contains and lab machines share names: within the design's 150
// calls ($batch counting once, tokens and nextLinks counted), and every
// device finds its own newest record.
func TestColdBatchCalls(t *testing.T) {
	fl := fleet.Generate(1000, 3, time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	v := intunemock.Vendor(fl)
	f := newFixture(t, intunemock.Options{}, func(c *Config) {
		c.ClientSecret = intunemock.DefaultClientSecret
	}, func(http.Handler) http.Handler { return v.Handler })
	batch := fl.Batch()
	found := make([][]providers.Record, len(batch))
	kinds := []struct {
		kind providers.Kind
		raw  func(fleet.CloudflareDevice) string
	}{
		{providers.KindSerial, func(d fleet.CloudflareDevice) string { return d.SerialNumber }},
		{providers.KindHostname, func(d fleet.CloudflareDevice) string { return d.Hostname }},
		{providers.KindEmail, func(d fleet.CloudflareDevice) string { return d.Email }},
	}
	for _, k := range kinds {
		var raw []string
		for i, d := range batch {
			if found[i] == nil {
				raw = append(raw, k.raw(d))
			}
		}
		q := query(k.kind, raw...)
		q.Values = slices.Compact(slices.Sorted(slices.Values(q.Values)))
		recs, err := f.p.Lookup(t.Context(), q)
		if err != nil {
			t.Fatalf("%s: %v", k.kind, err)
		}
		for i, d := range batch {
			v, ok := providers.Normalize(k.kind, k.raw(d))
			if !ok || found[i] != nil {
				continue
			}
			for _, r := range recs {
				if r.Has(k.kind, v) {
					found[i] = append(found[i], r)
				}
			}
		}
	}
	// HTTP requests: a $batch counts once, not its items.
	calls := v.Calls.Requests()
	t.Logf("cold 1000-device batch: %d Intune calls (%v)", calls, v.Calls.Snapshot())
	if calls > v.BatchCalls {
		t.Errorf("%d calls, more than the %d the design allows", calls, v.BatchCalls)
	}
	missed := 0
	for i := range fl.Devices {
		e, ok := v.Expected[fl.Devices[i].Index]
		if !ok {
			continue
		}
		if !slices.ContainsFunc(found[i], func(r providers.Record) bool { return r.ID == e.ID }) {
			missed++
		}
		for _, r := range found[i] {
			for _, h := range r.Hostnames {
				if strings.HasPrefix(h, "lab-") {
					t.Errorf("device %d matched lab machine %s", i, r.ID)
				}
			}
		}
	}
	if missed > 0 {
		t.Errorf("%d of %d Intune devices did not find their record", missed, len(v.Expected))
	}
}

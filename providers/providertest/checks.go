package providertest

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/postured/postured/providers"
)

// checkTokenRefresh: a revoked token is refetched once and the call
// succeeds; a token rejected again after the refetch is an error, not a
// loop.
func checkTokenRefresh(t *testing.T, h Harness) {
	t.Run("revoked token is refreshed once", func(t *testing.T) {
		f := start(t, h, 0)
		p := f.probe(t)
		if _, err := f.lookup(t, t.Context(), p.Kind, p.Value); err != nil {
			t.Fatal(err)
		}
		f.Revoke()
		recs, err := f.lookup(t, t.Context(), p.Kind, p.Value)
		if err != nil {
			t.Fatalf("lookup after the token was revoked: %v", err)
		}
		if !hasID(recs, p.ID) {
			t.Errorf("lookup of %s %q after the refresh did not return %s", p.Kind, p.Value, p.ID)
		}
		if _, tokens := f.rec.counts(); tokens != 2 {
			t.Errorf("%d token requests, want 2: the first and exactly one refresh", tokens)
		}
	})
	t.Run("401 after a refresh is an error", func(t *testing.T) {
		f := start(t, h, 0)
		p := f.probe(t)
		if _, err := f.lookup(t, t.Context(), p.Kind, p.Value); err != nil {
			t.Fatal(err)
		}
		api0, _ := f.rec.counts()
		f.Revoke()
		f.rec.set(revokeIssued, 0)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		// Each call may be sent twice (old token, refreshed token); well
		// past that the provider is looping and the lookup is stopped.
		f.rec.stopAfter(api0+4*api0+4, cancel)
		_, err := f.lookup(t, ctx, p.Kind, p.Value)
		api, tokens := f.rec.counts()
		api -= api0
		if ctx.Err() != nil {
			t.Fatalf("lookup kept calling with rejected tokens (%d API requests, %d token requests)", api, tokens)
		}
		if statusOf(err) != http.StatusUnauthorized {
			t.Fatalf("err = %v, want a *providers.StatusError 401", err)
		}
		if api > 2*api0 {
			t.Errorf("%d API requests; one lookup makes %d, each may be retried once after a refresh", api, api0)
		}
	})
}

// checkSecrets drives the failures whose bodies can carry credentials and
// checks that neither the error nor the debug logs do. Every other check
// runs the same test on every error it sees.
func checkSecrets(t *testing.T, h Harness) {
	tests := []struct {
		name   string
		mode   mode
		status int
	}{
		{"success", pass, 0},
		{"token endpoint echoes the form, 400", echoToken, http.StatusBadRequest},
		{"token endpoint echoes the form, 401", echoToken, http.StatusUnauthorized},
		{"token endpoint echoes the form, 500", echoToken, http.StatusInternalServerError},
		{"vendor echoes the request, 400", echoAPI, http.StatusBadRequest},
		{"vendor echoes the request, 401", echoAPI, http.StatusUnauthorized},
		{"vendor echoes the request, 403", echoAPI, http.StatusForbidden},
		{"vendor echoes the request, 500", echoAPI, http.StatusInternalServerError},
		{"vendor echoes the request, 503", echoAPI, http.StatusServiceUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := start(t, h, 0)
			if len(f.Secrets) == 0 {
				t.Fatal("harness lists no secrets")
			}
			p := f.probe(t)
			f.rec.set(tc.mode, tc.status)
			_, err := f.lookup(t, t.Context(), p.Kind, p.Value)
			if (err == nil) != (tc.mode == pass) {
				t.Fatalf("err = %v", err)
			}
			if tc.mode == echoAPI && len(f.rec.bearers()) == 0 {
				t.Fatal("no API request carried a bearer token: the scenario proves nothing")
			}
		})
	}
}

// checkCancellation: a lookup (or crawl) whose context is cancelled while
// the vendor holds its request returns an error wrapping context.Canceled,
// and leaves no goroutine behind.
func checkCancellation(t *testing.T, h Harness) {
	for _, name := range []string{"lookup", "list"} {
		ignore := goleak.IgnoreCurrent()
		t.Run(name+" cancelled in flight", func(t *testing.T) {
			f := start(t, h, 0)
			p := f.probe(t)
			run := func(ctx context.Context) ([]providers.Record, error) {
				return f.Provider.Lookup(ctx, query(p.Kind, p.Value))
			}
			if name == "list" {
				l, ok := f.Provider.(Lister)
				if !ok {
					t.Skip("no sync mode")
				}
				run = l.List
			}
			held := f.rec.hold()
			ctx, cancel := context.WithCancel(t.Context())
			done := async(ctx, run)
			select {
			case <-held:
			case res := <-done:
				t.Fatalf("returned (%v) before the vendor answered", res.err)
			}
			cancel()
			select {
			case res := <-done:
				f.noSecrets(t, res.err)
				if !errors.Is(res.err, context.Canceled) {
					t.Fatalf("err = %v, want one wrapping context.Canceled", res.err)
				}
			case <-time.After(watchdog):
				t.Fatal("still running after its context was cancelled")
			}
		})
		goleak.VerifyNone(t, ignore)
	}
	ignore := goleak.IgnoreCurrent()
	t.Run("lookup with a cancelled context", func(t *testing.T) {
		f := start(t, h, 0)
		p := f.probe(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := f.lookup(t, ctx, p.Kind, p.Value); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want one wrapping context.Canceled", err)
		}
		if api, _ := f.rec.counts(); api != 0 {
			t.Errorf("%d API requests made for a cancelled context", api)
		}
	})
	goleak.VerifyNone(t, ignore)
}

// checkRetries: 429s are retried after the wait the vendor asks for, or
// handed back when it is longer than retry_wait_max; 5xx answers are
// retried a bounded number of times; a malformed answer is an error.
func checkRetries(t *testing.T, h Harness) {
	// warm looks the probe up once and returns the API requests it took,
	// so that each case can count the extra requests its fault costs.
	warm := func(t *testing.T, f *fixture) (Ident, int) {
		t.Helper()
		p := f.probe(t)
		if _, err := f.lookup(t, t.Context(), p.Kind, p.Value); err != nil {
			t.Fatal(err)
		}
		api, _ := f.rec.counts()
		f.resetRetries()
		return p, api
	}
	maxWait := time.Duration(fastHTTP.RetryWaitMax)

	t.Run("429 is retried after Retry-After", func(t *testing.T) {
		f := start(t, h, 0)
		p, api0 := warm(t, f)
		f.Faults.RateLimit(1, time.Second)
		recs, err := f.lookup(t, t.Context(), p.Kind, p.Value)
		if err != nil || !hasID(recs, p.ID) {
			t.Fatalf("lookup: %v; want %s found after one retry", err, p.ID)
		}
		if api, _ := f.rec.counts(); api-api0 != api0+1 {
			t.Errorf("%d API requests, want %d and the one retry", api-api0, api0)
		}
		r := f.retried()
		if len(r) != 1 || r[0].status != http.StatusTooManyRequests || r[0].wait < time.Second || r[0].wait > maxWait {
			t.Errorf("retries %+v, want one after a 429 waiting the 1s asked for", r)
		}
	})
	t.Run("429 longer than retry_wait_max is handed back", func(t *testing.T) {
		f := start(t, h, 0)
		p, api0 := warm(t, f)
		f.Faults.RateLimit(1, 30*time.Second)
		_, err := f.lookup(t, t.Context(), p.Kind, p.Value)
		var rl *providers.RateLimitedError
		if !errors.As(err, &rl) || rl.RetryAfter <= maxWait {
			t.Fatalf("err = %v, want a *providers.RateLimitedError of about 30s", err)
		}
		if api, _ := f.rec.counts(); api-api0 > api0 {
			t.Errorf("%d API requests: a long wait must not be retried inline", api-api0)
		}
		if r := f.retried(); len(r) != 0 {
			t.Errorf("retries %+v, want none", r)
		}
	})
	t.Run("5xx is retried", func(t *testing.T) {
		f := start(t, h, 0)
		p, api0 := warm(t, f)
		f.Faults.FailServer(1)
		recs, err := f.lookup(t, t.Context(), p.Kind, p.Value)
		if err != nil || !hasID(recs, p.ID) {
			t.Fatalf("lookup: %v; want %s found after one retry", err, p.ID)
		}
		if api, _ := f.rec.counts(); api-api0 != api0+1 {
			t.Errorf("%d API requests, want %d and the one retry", api-api0, api0)
		}
		if r := f.retried(); len(r) != 1 || r[0].status < 500 || r[0].wait > maxWait {
			t.Errorf("retries %+v, want one after a 5xx", r)
		}
	})
	t.Run("5xx until retries run out", func(t *testing.T) {
		f := start(t, h, 0)
		p, api0 := warm(t, f)
		f.Faults.FailServer(1000)
		_, err := f.lookup(t, t.Context(), p.Kind, p.Value)
		if s := statusOf(err); s < 500 {
			t.Fatalf("err = %v, want a *providers.StatusError 5xx", err)
		}
		attempts := 1 + fastHTTP.RetryMax
		if api, _ := f.rec.counts(); api-api0 < attempts || api-api0 > api0*attempts {
			t.Errorf("%d API requests, want %d attempts of at most %d calls", api-api0, attempts, api0)
		}
	})
	t.Run("malformed answer is an error", func(t *testing.T) {
		f := start(t, h, 0)
		p, _ := warm(t, f)
		f.Faults.Malform(1)
		if _, err := f.lookup(t, t.Context(), p.Kind, p.Value); err == nil {
			t.Fatal("a malformed vendor answer was taken for a result")
		}
	})
}

// kindSupporter is aggregate.KindSupporter: every vendor says, without a
// call, which kinds it can look up.
type kindSupporter interface{ Supports(providers.Kind) bool }

// checkUnsupported: kinds the vendor cannot query fail with
// ErrUnsupportedKind before any vendor call, and Supports says so; the
// kinds it can query, Supports says so too.
func checkUnsupported(t *testing.T, h Harness) {
	t.Run("supports its kinds", func(t *testing.T) {
		f := start(t, h, 0)
		ks, ok := f.Provider.(kindSupporter)
		if !ok {
			t.Fatal("the provider has no Supports(providers.Kind) bool")
		}
		for _, k := range h.Kinds {
			if !ks.Supports(k) {
				t.Errorf("Supports(%s) = false, but the harness says it looks up by %s", k, k)
			}
		}
	})
	samples := map[providers.Kind]string{
		providers.KindSerial:   "C02UNSUPP01",
		providers.KindMAC:      "02:00:5e:00:53:01",
		providers.KindHostname: "unsupported-host",
		providers.KindEmail:    "unsupported@example.com",
	}
	// One past the last kind: a kind no vendor knows.
	bogus := providers.Kinds[len(providers.Kinds)-1] + 1
	kinds := append(slices.DeleteFunc(slices.Clone(providers.Kinds[:]), func(k providers.Kind) bool {
		return slices.Contains(h.Kinds, k)
	}), bogus)
	for _, k := range kinds {
		name := k.String()
		if k == bogus {
			name = "undefined kind"
		}
		t.Run(name, func(t *testing.T) {
			f := start(t, h, 0)
			q := query(k, samples[k])
			if k == bogus {
				q = providers.Query{Kind: k, Values: []string{"anything"}}
			}
			if ks, ok := f.Provider.(kindSupporter); !ok || ks.Supports(k) {
				t.Errorf("Supports(%s) is not false: what-if and shadow policies would wait for a cache entry that can never exist", name)
			}
			_, err := f.Provider.Lookup(t.Context(), q)
			f.noSecrets(t, err)
			if !errors.Is(err, providers.ErrUnsupportedKind) {
				t.Fatalf("err = %v, want providers.ErrUnsupportedKind", err)
			}
			if api, tokens := f.rec.counts(); api+tokens != 0 {
				t.Errorf("%d vendor requests for a kind the vendor cannot query", api+tokens)
			}
		})
	}
}

// bulk is how many devices the calls-per-batch check looks up at once,
// a full Cloudflare batch.
const bulk = 1000

// checkCallsPerBatch: a lookup of many values costs at most the vendor's
// bound, which must be well below one call per value.
func checkCallsPerBatch(t *testing.T, h Harness) {
	for _, k := range h.Kinds {
		t.Run(k.String(), func(t *testing.T) {
			f := start(t, h, bulk)
			idents := f.known(k)
			var values []string
			for _, id := range idents {
				if n, ok := providers.Normalize(k, id.Value); ok && !slices.Contains(values, n) {
					values = append(values, n)
				}
			}
			if len(values) < bulk {
				t.Fatalf("harness knows %d %s values with Bulk %d", len(values), k, bulk)
			}
			if b := h.CallBound(k, len(values)); b >= len(values)/2 {
				t.Errorf("bound of %d calls for %d values is no batching", b, len(values))
			}
			for _, n := range []int{1, 45, len(values)} {
				api0, tokens0 := f.rec.counts()
				recs, err := f.Provider.Lookup(t.Context(), providers.Query{Kind: k, Values: values[:n]})
				if err != nil {
					t.Fatalf("%d values: %v", n, err)
				}
				api, tokens := f.rec.counts()
				calls, bound := api-api0+tokens-tokens0, h.CallBound(k, n)
				if calls > bound {
					t.Errorf("%d values cost %d vendor requests, bound %d", n, calls, bound)
				}
				t.Logf("%d values: %d vendor requests (bound %d)", n, calls, bound)
				missing := 0
				for _, id := range idents {
					if v, _ := providers.Normalize(k, id.Value); slices.Contains(values[:n], v) && !hasID(recs, id.ID) {
						missing++
					}
				}
				if missing > 0 {
					t.Errorf("%d values: %d records not found", n, missing)
				}
			}
		})
	}
}

// checkLookupKinds: every known identifier finds its record, alone and
// together with the others of its kind; a crawl returns every known
// record; no values means no records and no vendor call.
func checkLookupKinds(t *testing.T, h Harness) {
	f := start(t, h, 0)
	for _, k := range h.Kinds {
		t.Run(k.String(), func(t *testing.T) {
			idents := f.known(k)
			if len(idents) == 0 {
				t.Fatalf("harness lists no known %s", k)
			}
			var all []string
			for _, id := range idents {
				all = append(all, id.Value)
				recs, err := f.lookup(t, t.Context(), k, id.Value)
				if err != nil {
					t.Fatalf("%q: %v", id.Value, err)
				}
				if !hasID(recs, id.ID) {
					t.Errorf("%s %q did not find %s", k, id.Value, id.ID)
				}
			}
			recs, err := f.lookup(t, t.Context(), k, all...)
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range idents {
				if !hasID(recs, id.ID) {
					t.Errorf("%s %q did not find %s among the others", k, id.Value, id.ID)
				}
			}
		})
	}
	t.Run("no values", func(t *testing.T) {
		api0, tokens0 := f.rec.counts()
		for _, k := range h.Kinds {
			recs, err := f.Provider.Lookup(t.Context(), providers.Query{Kind: k})
			if err != nil || len(recs) != 0 {
				t.Errorf("%s: %d records, %v", k, len(recs), err)
			}
		}
		if api, tokens := f.rec.counts(); api+tokens != api0+tokens0 {
			t.Errorf("%d vendor requests for empty lookups", api+tokens-api0-tokens0)
		}
	})
	t.Run("list", func(t *testing.T) {
		l, ok := f.Provider.(Lister)
		if !ok {
			t.Skip("no sync mode")
		}
		recs, err := l.List(t.Context())
		f.noSecrets(t, err)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range f.Known {
			if !hasID(recs, id.ID) {
				t.Errorf("crawl lacks %s (%s %q)", id.ID, id.Kind, id.Value)
			}
		}
	})
}

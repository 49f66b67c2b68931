package providers

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func testRecords() []Record {
	return []Record{
		{
			ID:        "a",
			Serials:   []string{" c02xk1zzjgh5 "},
			MACs:      []string{"74:1d:3e:23:e0:fe", "74-1D-3E-23-E0-FE", "741d.3e23.e0ff"},
			Hostnames: []string{"MBP-42.corp.example"},
			Emails:    []string{"JDoe@Example.com"},
			Score:     90,
		},
		{
			ID:        "b",
			Serials:   []string{"To be filled by O.E.M."},
			MACs:      []string{"aa:bb:cc:dd:ee:01"},
			Hostnames: []string{"desk-1"},
			Emails:    []string{"jdoe@example.com"},
			Score:     40,
		},
		{
			ID:       "c-reenrolled",
			Serials:  []string{"C02XK1ZZJGH5"},
			Emails:   []string{"other@example.com"},
			LastSeen: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		},
		{ID: "d-no-identifiers", Serials: []string{"0000"}, MACs: []string{"ff:ff:ff:ff:ff:ff"}},
	}
}

func ids(recs []Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.ID)
	}
	return out
}

func TestIndexLookup(t *testing.T) {
	ix := NewIndex(testRecords())
	if ix.Len() != 4 {
		t.Fatalf("Len() = %d, want 4", ix.Len())
	}
	tests := []struct {
		name string
		q    Query
		want []string
	}{
		{"serial shared by two records", Query{KindSerial, []string{"C02XK1ZZJGH5"}}, []string{"a", "c-reenrolled"}},
		{"serial not normalised finds nothing", Query{KindSerial, []string{"c02xk1zzjgh5"}}, nil},
		{"placeholder serial is not indexed", Query{KindSerial, []string{"TO BE FILLED BY O.E.M."}}, nil},
		{"all-zero serial is not indexed", Query{KindSerial, []string{"0000"}}, nil},
		{"mac", Query{KindMAC, []string{"741d3e23e0fe"}}, []string{"a"}},
		{"second mac", Query{KindMAC, []string{"741d3e23e0ff"}}, []string{"a"}},
		{"broadcast mac not indexed", Query{KindMAC, []string{"ffffffffffff"}}, nil},
		{"two macs of one record dedupe", Query{KindMAC, []string{"741d3e23e0fe", "741d3e23e0ff"}}, []string{"a"}},
		{"macs of two records in value order", Query{KindMAC, []string{"aabbccddee01", "741d3e23e0fe"}}, []string{"b", "a"}},
		{"hostname without domain", Query{KindHostname, []string{"mbp-42"}}, []string{"a"}},
		{"email shared", Query{KindEmail, []string{"jdoe@example.com"}}, []string{"a", "b"}},
		{"email repeated value dedupes", Query{KindEmail, []string{"jdoe@example.com", "jdoe@example.com"}}, []string{"a", "b"}},
		{"kind isolation: serial value as hostname", Query{KindHostname, []string{"C02XK1ZZJGH5"}}, nil},
		{"kind isolation: email as serial", Query{KindSerial, []string{"jdoe@example.com"}}, nil},
		{"no values", Query{KindSerial, nil}, nil},
		{"miss", Query{KindMAC, []string{"010203040506"}}, nil},
		{"unknown kind", Query{Kind(7), []string{"C02XK1ZZJGH5"}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ix.Lookup(tc.q)
			if g := ids(got); !slices.Equal(g, tc.want) {
				t.Fatalf("Lookup(%v %v) = %v, want %v", tc.q.Kind, tc.q.Values, g, tc.want)
			}
			for _, r := range got {
				if !slices.ContainsFunc(tc.q.Values, func(v string) bool { return r.Has(tc.q.Kind, v) }) {
					t.Errorf("record %s returned but carries none of %v", r.ID, tc.q.Values)
				}
			}
		})
	}

	t.Run("records come back normalised with their data", func(t *testing.T) {
		got := ix.Lookup(Query{KindHostname, []string{"mbp-42"}})
		if len(got) != 1 {
			t.Fatalf("got %d records", len(got))
		}
		r := got[0]
		if !slices.Equal(r.Serials, []string{"C02XK1ZZJGH5"}) || !slices.Equal(r.MACs, []string{"741d3e23e0fe", "741d3e23e0ff"}) ||
			!slices.Equal(r.Hostnames, []string{"mbp-42"}) || !slices.Equal(r.Emails, []string{"jdoe@example.com"}) || r.Score != 90 {
			t.Fatalf("record = %+v", r)
		}
		c := ix.Lookup(Query{KindEmail, []string{"other@example.com"}})
		if len(c) != 1 || !c[0].LastSeen.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
			t.Fatalf("LastSeen lost: %+v", c)
		}
	})

	t.Run("empty index", func(t *testing.T) {
		e := NewIndex(nil)
		if e.Len() != 0 || e.Lookup(Query{KindSerial, []string{"X"}}) != nil {
			t.Fatal("empty index answered")
		}
	})
}

func TestIndexLookupResultsDoNotAliasIndex(t *testing.T) {
	ix := NewIndex(testRecords())
	q := Query{KindHostname, []string{"mbp-42"}}
	got := ix.Lookup(q)
	got[0].Hostnames[0] = "tampered"
	got[0].Serials[0] = "TAMPERED"
	again := ix.Lookup(q)
	if len(again) != 1 || again[0].Hostnames[0] != "mbp-42" || again[0].Serials[0] != "C02XK1ZZJGH5" {
		t.Fatalf("mutating a Lookup result changed the index: %+v", again)
	}
	if r := ix.Lookup(Query{KindSerial, []string{"C02XK1ZZJGH5"}}); len(r) != 2 || r[0].Serials[0] != "C02XK1ZZJGH5" {
		t.Fatalf("index corrupted: %+v", r)
	}
}

func TestIndexConcurrentLookups(t *testing.T) {
	ix := NewIndex(testRecords())
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				for _, k := range Kinds {
					_ = ix.Lookup(Query{k, []string{"C02XK1ZZJGH5", "741d3e23e0fe", "mbp-42", "jdoe@example.com"}})
				}
			}
		})
	}
	wg.Wait()
}

// fakeLister answers List from a script, one step per call; the last step
// repeats.
type fakeLister struct {
	mu         sync.Mutex
	steps      []listStep
	calls      int
	noDeadline bool // some List ctx had no deadline
	called     chan struct{}
}

type listStep struct {
	recs []Record
	err  error
}

func (f *fakeLister) List(ctx context.Context) ([]Record, error) {
	f.mu.Lock()
	i := min(f.calls, len(f.steps)-1)
	f.calls++
	if _, ok := ctx.Deadline(); !ok {
		f.noDeadline = true
	}
	step := f.steps[i]
	f.mu.Unlock()
	if f.called != nil {
		select {
		case f.called <- struct{}{}:
		default:
		}
	}
	// Fresh slices every call: the index normalises them in place.
	recs := make([]Record, len(step.recs))
	for i, r := range step.recs {
		r.Serials, r.MACs, r.Hostnames, r.Emails = slices.Clone(r.Serials), slices.Clone(r.MACs), slices.Clone(r.Hostnames), slices.Clone(r.Emails)
		recs[i] = r
	}
	return recs, step.err
}

func (f *fakeLister) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestSyncer(t *testing.T) {
	errVendor := errors.New("vendor down: 503")
	v1 := []Record{{ID: "one", Serials: []string{"s1"}, Score: 10}, {ID: "two", MACs: []string{"AA-BB-CC-DD-EE-02"}, Score: 20}}
	v2 := []Record{{ID: "three", Serials: []string{"s3"}}}
	l := &fakeLister{steps: []listStep{
		{err: errVendor}, // first crawl fails
		{recs: v1},       // then succeeds
		{err: errVendor}, // then fails again: keep v1
		{recs: v2},       // then replaces
	}}
	var logs bytes.Buffer
	s := NewSyncer("falcon", l, time.Hour, slog.New(slog.NewTextHandler(&logs, nil)))
	ctx := t.Context()
	if !s.Local() {
		t.Error("Local() = false")
	}
	lookup := func(q Query) ([]string, error) {
		recs, err := s.Lookup(ctx, q)
		return ids(recs), err
	}

	t.Run("before first sync", func(t *testing.T) {
		_, err := lookup(Query{KindSerial, []string{"S1"}})
		if !errors.Is(err, ErrNotSynced) || !strings.Contains(err.Error(), "falcon") {
			t.Fatalf("Lookup error = %v, want ErrNotSynced naming the provider", err)
		}
		if st := s.Status(); st.Ready || st.Records != 0 || st.LastError != "" || !st.LastSuccess.IsZero() {
			t.Fatalf("Status = %+v", st)
		}
	})

	t.Run("failed first crawl", func(t *testing.T) {
		s.SyncOnce(ctx)
		if _, err := lookup(Query{KindSerial, []string{"S1"}}); !errors.Is(err, ErrNotSynced) {
			t.Fatalf("Lookup error = %v, want ErrNotSynced", err)
		}
		st := s.Status()
		if st.Ready || !strings.Contains(st.LastError, "vendor down") || st.Records != 0 {
			t.Fatalf("Status = %+v", st)
		}
	})

	t.Run("successful crawl", func(t *testing.T) {
		before := time.Now()
		s.SyncOnce(ctx)
		st := s.Status()
		if !st.Ready || st.LastError != "" || st.Records != 2 || st.LastSuccess.Before(before) {
			t.Fatalf("Status = %+v", st)
		}
		if got, err := lookup(Query{KindSerial, []string{"S1"}}); err != nil || !slices.Equal(got, []string{"one"}) {
			t.Fatalf("Lookup = %v, %v", got, err)
		}
		if got, err := lookup(Query{KindMAC, []string{"aabbccddee02"}}); err != nil || !slices.Equal(got, []string{"two"}) {
			t.Fatalf("Lookup mac = %v, %v", got, err)
		}
		if got, err := lookup(Query{KindSerial, []string{"NOPE"}}); err != nil || got != nil {
			t.Fatalf("Lookup miss = %v, %v", got, err)
		}
	})

	t.Run("failed crawl keeps previous index", func(t *testing.T) {
		prev := s.Status()
		s.SyncOnce(ctx)
		st := s.Status()
		if !st.Ready || st.Records != 2 || !st.LastSuccess.Equal(prev.LastSuccess) || !strings.Contains(st.LastError, "vendor down") {
			t.Fatalf("Status = %+v (previous %+v)", st, prev)
		}
		if got, err := lookup(Query{KindSerial, []string{"S1"}}); err != nil || !slices.Equal(got, []string{"one"}) {
			t.Fatalf("previous index lost: %v, %v", got, err)
		}
		if !strings.Contains(logs.String(), "keeping previous data") {
			t.Errorf("failure not logged: %s", logs.String())
		}
	})

	t.Run("next success replaces and clears the error", func(t *testing.T) {
		s.SyncOnce(ctx)
		st := s.Status()
		if !st.Ready || st.Records != 1 || st.LastError != "" {
			t.Fatalf("Status = %+v", st)
		}
		if got, _ := lookup(Query{KindSerial, []string{"S1"}}); got != nil {
			t.Fatalf("old record still served: %v", got)
		}
		if got, _ := lookup(Query{KindSerial, []string{"S3"}}); !slices.Equal(got, []string{"three"}) {
			t.Fatalf("new record not served: %v", got)
		}
	})

	if l.Calls() != 4 || l.noDeadline {
		t.Errorf("List calls = %d, some ctx without deadline = %v", l.Calls(), l.noDeadline)
	}
}

func TestSyncerRun(t *testing.T) {
	t.Run("crawls at once and stops with ctx", func(t *testing.T) {
		l := &fakeLister{steps: []listStep{{recs: []Record{{ID: "x", Serials: []string{"S"}}}}}}
		s := NewSyncer("p", l, time.Hour, discardLogger())
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		s.Run(ctx) // returns after the immediate crawl
		if l.Calls() != 1 || !s.Status().Ready {
			t.Fatalf("calls = %d, status = %+v", l.Calls(), s.Status())
		}
	})

	t.Run("recrawls every interval", func(t *testing.T) {
		l := &fakeLister{steps: []listStep{{recs: nil}}, called: make(chan struct{}, 1)}
		s := NewSyncer("p", l, 5*time.Millisecond, discardLogger())
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { s.Run(ctx); close(done) }()
		deadline := time.After(5 * time.Second)
		for n := 0; n < 3; n++ {
			select {
			case <-l.called:
			case <-deadline:
				t.Fatalf("only %d crawls in 5s", l.Calls())
			}
		}
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
		if st := s.Status(); !st.Ready || st.Records != 0 {
			t.Fatalf("Status = %+v", st)
		}
	})
}

func TestSyncerConcurrentLookupDuringSync(t *testing.T) {
	l := &fakeLister{steps: []listStep{{recs: []Record{{ID: "x", Serials: []string{"S"}}}}}}
	s := NewSyncer("p", l, time.Hour, discardLogger())
	s.SyncOnce(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 50 {
			s.SyncOnce(t.Context())
		}
	})
	for range 4 {
		wg.Go(func() {
			for range 200 {
				recs, err := s.Lookup(t.Context(), Query{KindSerial, []string{"S"}})
				if err != nil || len(recs) != 1 {
					t.Errorf("Lookup = %v, %v", recs, err)
					return
				}
				_ = s.Status()
			}
		})
	}
	wg.Wait()
}

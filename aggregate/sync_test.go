package aggregate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/postured/postured/providers"
)

// fakeLister answers List from a script, one step per call; the last step
// repeats.
type fakeLister struct {
	mu         sync.Mutex
	steps      []listStep
	calls      int
	noDeadline bool // some List ctx had no deadline
}

type listStep struct {
	recs []providers.Record
	err  error
}

func (f *fakeLister) List(ctx context.Context) ([]providers.Record, error) {
	f.mu.Lock()
	i := min(f.calls, len(f.steps)-1)
	f.calls++
	if _, ok := ctx.Deadline(); !ok {
		f.noDeadline = true
	}
	step := f.steps[i]
	f.mu.Unlock()
	// Fresh slices every call: the index normalises them in place.
	recs := make([]providers.Record, len(step.recs))
	for i, r := range step.recs {
		recs[i] = r.Clone()
	}
	return recs, step.err
}

func (f *fakeLister) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// lockedBuffer is a log sink the syncing goroutine writes while the test
// reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newSyncer(t *testing.T, name string, l Lister, interval time.Duration, logger *slog.Logger) *Syncer {
	t.Helper()
	s, err := NewSyncer(SyncerConfig{Name: name, Lister: l, Interval: interval, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNewSyncerRejects(t *testing.T) {
	tests := []struct {
		name string
		cfg  SyncerConfig
		want string
	}{
		{"no lister", SyncerConfig{Name: "p", Interval: time.Minute}, "syncer p: no lister"},
		{"no interval", SyncerConfig{Name: "p", Lister: &fakeLister{}}, "syncer p: interval must be > 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewSyncer(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewSyncer = %v, %v; want error %q", s, err, tc.want)
			}
		})
	}
}

func TestSyncer(t *testing.T) {
	errVendor := errors.New("vendor down: 503")
	v1 := []providers.Record{{ID: "one", Serials: []string{"s1"}, Score: 10}, {ID: "two", MACs: []string{"AA-BB-CC-DD-EE-02"}, Score: 20}}
	v2 := []providers.Record{{ID: "three", Serials: []string{"s3"}}}
	l := &fakeLister{steps: []listStep{
		{err: errVendor},              // first crawl fails
		{recs: v1},                    // then succeeds
		{err: errVendor},              // then fails again: keep v1
		{err: providers.ErrUnchanged}, // nothing new: keep v1 and the error
		{recs: v2},                    // then replaces
	}}
	var logs bytes.Buffer
	s := newSyncer(t, "falcon", l, time.Hour, slog.New(slog.NewTextHandler(&logs, nil)))
	ctx := t.Context()
	if !s.Local() {
		t.Error("Local() = false")
	}
	lookup := func(q providers.Query) ([]string, error) {
		recs, err := s.Lookup(ctx, q)
		return recordIDs(recs), err
	}

	t.Run("before first sync", func(t *testing.T) {
		_, err := lookup(providers.Query{Kind: providers.KindSerial, Values: []string{"S1"}})
		if !errors.Is(err, ErrNotSynced) || !strings.Contains(err.Error(), "falcon") {
			t.Fatalf("Lookup error = %v, want ErrNotSynced naming the provider", err)
		}
		if st := s.Status(); st.Ready || st.Records != 0 || st.LastError != "" || !st.LastSuccess.IsZero() {
			t.Fatalf("Status = %+v", st)
		}
	})

	t.Run("failed first crawl", func(t *testing.T) {
		if err := s.SyncOnce(ctx); !errors.Is(err, errVendor) || !strings.Contains(err.Error(), "sync falcon") {
			t.Fatalf("SyncOnce = %v, want the vendor error naming the provider", err)
		}
		if _, err := lookup(providers.Query{Kind: providers.KindSerial, Values: []string{"S1"}}); !errors.Is(err, ErrNotSynced) {
			t.Fatalf("Lookup error = %v, want ErrNotSynced", err)
		}
		st := s.Status()
		if st.Ready || !strings.Contains(st.LastError, "vendor down") || st.Records != 0 {
			t.Fatalf("Status = %+v", st)
		}
	})

	t.Run("successful crawl", func(t *testing.T) {
		before := time.Now()
		if err := s.SyncOnce(ctx); err != nil {
			t.Fatal(err)
		}
		st := s.Status()
		if !st.Ready || st.LastError != "" || st.Records != 2 || st.LastSuccess.Before(before) {
			t.Fatalf("Status = %+v", st)
		}
		if got, err := lookup(providers.Query{Kind: providers.KindSerial, Values: []string{"S1"}}); err != nil || !slices.Equal(got, []string{"one"}) {
			t.Fatalf("Lookup = %v, %v", got, err)
		}
		if got, err := lookup(providers.Query{Kind: providers.KindMAC, Values: []string{"aabbccddee02"}}); err != nil || !slices.Equal(got, []string{"two"}) {
			t.Fatalf("Lookup mac = %v, %v", got, err)
		}
		if got, err := lookup(providers.Query{Kind: providers.KindSerial, Values: []string{"NOPE"}}); err != nil || got != nil {
			t.Fatalf("Lookup miss = %v, %v", got, err)
		}
		if !strings.Contains(logs.String(), "inventory synced") || !strings.Contains(logs.String(), "records=2") || !strings.Contains(logs.String(), "index_duration=") {
			t.Errorf("success not logged: %s", logs.String())
		}
	})

	for _, step := range []string{"failed crawl keeps previous index", "unchanged keeps index and error"} {
		t.Run(step, func(t *testing.T) {
			prev := s.Status()
			err := s.SyncOnce(ctx)
			if step == "failed crawl keeps previous index" && !errors.Is(err, errVendor) {
				t.Fatalf("SyncOnce = %v, want the vendor error", err)
			}
			if step == "unchanged keeps index and error" && err != nil {
				t.Fatalf("SyncOnce = %v, want nil for an unchanged source", err)
			}
			st := s.Status()
			if !st.Ready || st.Records != 2 || !st.LastSuccess.Equal(prev.LastSuccess) || !strings.Contains(st.LastError, "vendor down") {
				t.Fatalf("Status = %+v (previous %+v)", st, prev)
			}
			if got, err := lookup(providers.Query{Kind: providers.KindSerial, Values: []string{"S1"}}); err != nil || !slices.Equal(got, []string{"one"}) {
				t.Fatalf("previous index lost: %v, %v", got, err)
			}
		})
	}

	t.Run("next success replaces and clears the error", func(t *testing.T) {
		if err := s.SyncOnce(ctx); err != nil {
			t.Fatal(err)
		}
		st := s.Status()
		if !st.Ready || st.Records != 1 || st.LastError != "" {
			t.Fatalf("Status = %+v", st)
		}
		if got, _ := lookup(providers.Query{Kind: providers.KindSerial, Values: []string{"S1"}}); got != nil {
			t.Fatalf("old record still served: %v", got)
		}
		if got, _ := lookup(providers.Query{Kind: providers.KindSerial, Values: []string{"S3"}}); !slices.Equal(got, []string{"three"}) {
			t.Fatalf("new record not served: %v", got)
		}
	})

	if l.Calls() != 5 || l.noDeadline {
		t.Errorf("List calls = %d, some ctx without deadline = %v", l.Calls(), l.noDeadline)
	}
}

func TestSyncerRun(t *testing.T) {
	t.Run("crawls at once and stops with ctx", func(t *testing.T) {
		l := &fakeLister{steps: []listStep{{recs: []providers.Record{{ID: "x", Serials: []string{"S"}}}}}}
		s := newSyncer(t, "p", l, time.Hour, nil)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		s.Run(ctx) // returns after the immediate crawl
		if l.Calls() != 1 || !s.Status().Ready {
			t.Fatalf("calls = %d, status = %+v", l.Calls(), s.Status())
		}
	})

	// In a synctest bubble the ticker runs on the fake clock: each Sleep
	// of one interval lets exactly one more crawl happen.
	t.Run("recrawls every interval and logs failures", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := &fakeLister{steps: []listStep{
				{recs: []providers.Record{{ID: "x", Serials: []string{"S"}}}},
				{err: errors.New("vendor down")},
				{recs: nil},
			}}
			var logs lockedBuffer
			s := newSyncer(t, "p", l, time.Minute, slog.New(slog.NewTextHandler(&logs, nil)))
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan struct{})
			go func() { s.Run(ctx); close(done) }()

			synctest.Wait()
			if n, st := l.Calls(), s.Status(); n != 1 || !st.Ready || st.Records != 1 {
				t.Fatalf("after start: calls = %d, Status = %+v", n, st)
			}
			time.Sleep(time.Minute)
			synctest.Wait()
			if n, st := l.Calls(), s.Status(); n != 2 || st.Records != 1 || !strings.Contains(st.LastError, "vendor down") {
				t.Fatalf("after one interval: calls = %d, Status = %+v", n, st)
			}
			if !strings.Contains(logs.String(), "inventory sync failed, keeping previous data") || !strings.Contains(logs.String(), "previous_records=1") {
				t.Errorf("failure not logged with the kept data: %s", logs.String())
			}
			time.Sleep(time.Minute)
			synctest.Wait()
			if n, st := l.Calls(), s.Status(); n != 3 || !st.Ready || st.Records != 0 || st.LastError != "" {
				t.Fatalf("after two intervals: calls = %d, Status = %+v", n, st)
			}
			cancel()
			<-done
			if n := l.Calls(); n != 3 {
				t.Fatalf("crawled %d times, want no crawl after cancel", n)
			}
		})
	})
}

func TestSyncerConcurrentLookupDuringSync(t *testing.T) {
	// Every crawl has the same record under a new score, so a reader
	// always finds it, whichever index it gets.
	l := &countingLister{}
	s := newSyncer(t, "p", l, time.Hour, nil)
	if err := s.SyncOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 50 {
			if err := s.SyncOnce(t.Context()); err != nil {
				t.Errorf("SyncOnce: %v", err)
				return
			}
		}
	})
	for range 4 {
		wg.Go(func() {
			last := -1
			for range 200 {
				recs, err := s.Lookup(t.Context(), providers.Query{Kind: providers.KindSerial, Values: []string{"S"}})
				if err != nil || len(recs) != 1 || recs[0].ID != "x" {
					t.Errorf("Lookup = %v, %v", recs, err)
					return
				}
				// Crawls replace the index in order: a reader never goes back.
				if recs[0].Score < last {
					t.Errorf("score went back from %d to %d", last, recs[0].Score)
					return
				}
				last = recs[0].Score
				if st := s.Status(); !st.Ready || st.Records != 1 {
					t.Errorf("Status = %+v", st)
					return
				}
			}
		})
	}
	wg.Wait()
	if st, n := s.Status(), l.Calls(); n != 51 || st.Records != 1 {
		t.Fatalf("calls = %d, Status = %+v", n, st)
	}
	if recs, _ := s.Lookup(t.Context(), providers.Query{Kind: providers.KindSerial, Values: []string{"S"}}); len(recs) != 1 || recs[0].Score != 51 {
		t.Fatalf("last crawl not served: %+v", recs)
	}
}

// countingLister lists one record whose score is the number of the call.
type countingLister struct {
	mu    sync.Mutex
	calls int
}

func (c *countingLister) List(context.Context) ([]providers.Record, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	return []providers.Record{{ID: "x", Serials: []string{"S"}, Score: c.calls, Reason: fmt.Sprint("crawl ", c.calls)}}, nil
}

func (c *countingLister) Calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

// gatedLister lists one record scored by the crawl's number; from the
// second crawl on, List says it has started and waits to be released.
type gatedLister struct {
	calls    int // only List touches it, one crawl at a time
	started  chan struct{}
	released chan struct{}
}

func (g *gatedLister) List(ctx context.Context) ([]providers.Record, error) {
	g.calls++
	if g.calls > 1 {
		g.started <- struct{}{}
		select {
		case <-g.released:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return []providers.Record{{ID: "x", Serials: []string{"S"}, Score: 10 * g.calls}}, nil
}

// TestSyncerServesOldIndexDuringRebuild: while a crawl is in progress, the
// engine answers from the previous index, and the new one takes over when
// it is built.
func TestSyncerServesOldIndexDuringRebuild(t *testing.T) {
	l := &gatedLister{started: make(chan struct{}), released: make(chan struct{})}
	s := newSyncer(t, "inv", l, time.Hour, nil)
	if err := s.SyncOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, Config{Sources: []Source{src("inv", 1, s)}, Deadline: time.Second})
	done := make(chan error)
	go func() { done <- s.SyncOnce(t.Context()) }()
	<-l.started // the second crawl is under way
	if r := evalOne(t, e, Device{Serial: "S"}); r.Score != 10 {
		t.Fatalf("during the rebuild: score %d, want the old index's 10", r.Score)
	}
	if st := s.Status(); !st.Ready || st.Records != 1 {
		t.Fatalf("during the rebuild: status %+v", st)
	}
	close(l.released)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if r := evalOne(t, e, Device{Serial: "S"}); r.Score != 20 {
		t.Fatalf("after the rebuild: score %d, want the new index's 20", r.Score)
	}
}

// Swapped is told of every index put in service, and of nothing else: a
// failed or unchanged crawl has no garbage worth a forced collection.
func TestSyncerSwapped(t *testing.T) {
	recs := []providers.Record{{ID: "one", Serials: []string{"s1"}}}
	l := &fakeLister{steps: []listStep{{recs: recs}, {err: errors.New("vendor down")}, {err: providers.ErrUnchanged}, {recs: recs}}}
	swaps := 0
	s, err := NewSyncer(SyncerConfig{Name: "falcon", Lister: l, Interval: time.Hour, Swapped: func() { swaps++ }})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{1, 1, 1, 2} {
		_ = s.SyncOnce(t.Context())
		if swaps != want {
			t.Fatalf("after crawl %d: %d swaps reported, want %d", i+1, swaps, want)
		}
	}
}

package aggregate

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/postured/postured/providers"
)

// scriptedCoordinator answers Crawl from a script, one step per call.
type scriptedCoordinator struct {
	steps []coordStep
	calls int
}

type coordStep struct {
	crawl Crawl
	err   error
}

func (s *scriptedCoordinator) Crawl(context.Context, Lister) (Crawl, error) {
	st := s.steps[s.calls]
	s.calls++
	return st.crawl, st.err
}

// TestSyncerCoordinator: a Syncer with a Coordinator serves what the
// Coordinator obtained instead of listing itself, reports where it came
// from, and keeps its index on ErrUnchanged and on failure.
func TestSyncerCoordinator(t *testing.T) {
	lister := &fakeLister{steps: []listStep{{recs: []providers.Record{{ID: "own", Serials: []string{"OWN1"}}}}}}
	shared := []providers.Record{{ID: "shared", Serials: []string{"SHARED1"}}}
	coord := &scriptedCoordinator{steps: []coordStep{
		{crawl: Crawl{Records: shared, Shared: true, Source: "loaded from another replica"}},
		{crawl: Crawl{Shared: true, Source: "loaded from another replica"}, err: providers.ErrUnchanged},
		{crawl: Crawl{Source: "local (redis unavailable)"}, err: errors.New("vendor down")},
	}}
	s, err := NewSyncer(SyncerConfig{Name: "v", Lister: lister, Interval: time.Minute, Coordinator: coord})
	if err != nil {
		t.Fatal(err)
	}
	lookup := func() []providers.Record {
		t.Helper()
		recs, err := s.Lookup(t.Context(), providers.Query{Kind: providers.KindSerial, Values: []string{"SHARED1", "OWN1"}})
		if err != nil {
			t.Fatal(err)
		}
		return recs
	}
	steps := []struct {
		name       string
		wantErr    bool
		wantCrawl  string
		wantShared bool
	}{
		{"loaded", false, "loaded from another replica", true},
		{"unchanged", false, "loaded from another replica", true},
		{"failed alone", true, "local (redis unavailable)", false},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := s.SyncOnce(t.Context()); (err != nil) != st.wantErr {
				t.Fatalf("SyncOnce: %v, want error %v", err, st.wantErr)
			}
			if recs := lookup(); len(recs) != 1 || recs[0].ID != "shared" {
				t.Errorf("lookup = %+v, want the shared record only", recs)
			}
			if got := s.Status(); got.Crawl != st.wantCrawl || got.Shared != st.wantShared || !got.Ready || got.Records != 1 {
				t.Errorf("status = %+v, want crawl %q shared %v", got, st.wantCrawl, st.wantShared)
			}
		})
	}
	if n := lister.Calls(); n != 0 {
		t.Errorf("the Syncer listed %d times itself; the Coordinator decides", n)
	}
}

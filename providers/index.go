package providers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Index answers lookups from an in-memory set of records: the static
// inventory and sync-mode crawls both end up here. It is immutable once
// built, so readers need no lock; a refresh builds a new Index.
type Index struct {
	by      [len(Kinds)]map[string][]*Record
	records []Record
}

// NewIndex normalises recs and indexes them by every identifier.
func NewIndex(recs []Record) *Index {
	ix := &Index{records: recs}
	for k := range ix.by {
		ix.by[k] = make(map[string][]*Record)
	}
	for i := range ix.records {
		r := ix.records[i].Normalize()
		for _, k := range Kinds {
			for _, v := range r.Identifiers(k) {
				ix.by[k][v] = append(ix.by[k][v], r)
			}
		}
	}
	return ix
}

// Len is the number of records indexed.
func (ix *Index) Len() int { return len(ix.records) }

// Lookup returns every record carrying any of q.Values, each once.
func (ix *Index) Lookup(q Query) []Record {
	if int(q.Kind) >= len(ix.by) {
		return nil
	}
	var out []Record
	var seen map[*Record]bool
	for _, v := range q.Values {
		for _, r := range ix.by[q.Kind][v] {
			if seen == nil {
				seen = make(map[*Record]bool)
			}
			if !seen[r] {
				seen[r] = true
				out = append(out, r.Clone())
			}
		}
	}
	return out
}

// Status is what readiness and `explain` report about a provider's data.
type Status struct {
	// Ready is false until the first successful load or sync.
	Ready bool `json:"ready"`
	// LastSuccess is when the data was last loaded successfully.
	LastSuccess time.Time `json:"last_success,omitzero"`
	// LastError is the most recent load failure, if the last attempt failed.
	LastError string `json:"last_error,omitempty"`
	Records   int    `json:"records"`
}

// Lister crawls a vendor's whole inventory, following every page.
type Lister interface {
	List(ctx context.Context) ([]Record, error)
}

// ErrNotSynced is returned by a Syncer asked before its first crawl finished.
var ErrNotSynced = errors.New("inventory not synced yet")

// Syncer serves lookups from a periodic full crawl (mode: sync). A failed
// crawl keeps the previous index: a vendor outage must not drop every device
// out of its posture.
type Syncer struct {
	name     string
	list     Lister
	interval time.Duration
	logger   *slog.Logger

	idx    atomic.Pointer[Index]
	mu     sync.Mutex
	status Status
}

// NewSyncer wraps l; Run must be started for it to have data.
func NewSyncer(name string, l Lister, interval time.Duration, logger *slog.Logger) *Syncer {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Syncer{name: name, list: l, interval: interval, logger: logger}
}

// Lookup answers from the last successful crawl, with no vendor call.
func (s *Syncer) Lookup(_ context.Context, q Query) ([]Record, error) {
	ix := s.idx.Load()
	if ix == nil {
		return nil, fmt.Errorf("%s: %w", s.name, ErrNotSynced)
	}
	return ix.Lookup(q), nil
}

// Local tells the aggregator lookups are in-memory and need no cache.
func (s *Syncer) Local() bool { return true }

// Status reports the last crawl.
func (s *Syncer) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// Run crawls at once and then every interval until ctx ends.
func (s *Syncer) Run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		s.SyncOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// SyncOnce performs one crawl, bounded by the sync interval.
func (s *Syncer) SyncOnce(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, max(s.interval, time.Minute))
	defer cancel()
	start := time.Now()
	recs, err := s.list.List(cctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.status.LastError = err.Error()
		s.logger.Warn("inventory sync failed, keeping previous data", "error", err,
			"previous_records", s.status.Records, "last_success", s.status.LastSuccess)
		return
	}
	ix := NewIndex(recs)
	s.idx.Store(ix)
	s.status = Status{Ready: true, LastSuccess: time.Now(), Records: ix.Len()}
	s.logger.Info("inventory synced", "records", ix.Len(), "duration", time.Since(start))
}

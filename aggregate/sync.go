package aggregate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postured/postured/internal/logging"
	"github.com/postured/postured/providers"
)

// Status is what readiness and `explain` report about a provider's data.
type Status struct {
	// Ready is false until the first successful load or sync.
	Ready bool `json:"ready"`
	// LastSuccess is when the data was last loaded successfully.
	LastSuccess time.Time `json:"last_success,omitzero"`
	// LastError is the most recent load failure, if the last attempt failed.
	LastError string `json:"last_error,omitempty"`
	Records   int    `json:"records"`
	// Crawl, for a provider whose crawl is shared between replicas, says
	// where the data came from (Crawl.Source); Shared is false while this
	// replica crawls alone because sharing is unavailable.
	Crawl  string `json:"crawl,omitempty"`
	Shared bool   `json:"shared,omitempty"`
}

// ErrNotSynced is returned by a Syncer asked before its first crawl finished.
var ErrNotSynced = errors.New("inventory not synced yet")

// SyncerConfig configures a Syncer.
type SyncerConfig struct {
	// Name is the provider's name, for errors.
	Name   string
	Lister Lister
	// Interval is the time between crawls: sync_interval, or a static
	// inventory's reload_interval. One crawl may take max(Interval, 1m).
	Interval time.Duration
	// Coordinator, if set, shares each crawl with other replicas: List is
	// called through it.
	Coordinator Coordinator
	// Swapped, if set, is called after each new index has replaced the
	// old one (not after a failed or unchanged crawl). postured returns
	// the crawl's garbage to the OS there: a crawl of a large tenant is a
	// burst of short-lived memory the runtime would otherwise keep.
	Swapped func()
	Logger  *slog.Logger
}

// Syncer serves lookups from a periodic full crawl of a Lister: a vendor in
// mode: sync, or the static inventory file. A failed crawl keeps the
// previous index: a vendor outage or a broken edit of the file must not drop
// every device out of its posture.
type Syncer struct {
	name     string
	list     Lister
	coord    Coordinator
	interval time.Duration
	swapped  func()
	logger   *slog.Logger

	idx    atomic.Pointer[Index]
	mu     sync.Mutex
	status Status
}

// NewSyncer wraps cfg.Lister; Run or SyncOnce must be called for it to have
// data.
func NewSyncer(cfg SyncerConfig) (*Syncer, error) {
	if cfg.Lister == nil {
		return nil, fmt.Errorf("syncer %s: no lister", cfg.Name)
	}
	if cfg.Interval <= 0 {
		return nil, fmt.Errorf("syncer %s: interval must be > 0, got %s", cfg.Name, cfg.Interval)
	}
	return &Syncer{name: cfg.Name, list: cfg.Lister, coord: cfg.Coordinator, interval: cfg.Interval, swapped: cfg.Swapped,
		logger: logging.OrDiscard(cfg.Logger)}, nil
}

// Lookup answers from the last successful crawl, with no vendor call.
func (s *Syncer) Lookup(_ context.Context, q providers.Query) ([]providers.Record, error) {
	ix, err := s.Index()
	if err != nil {
		return nil, err
	}
	return ix.Lookup(q), nil
}

// Index is the last successful crawl's index; a crawl in progress builds
// the next one while this one serves.
func (s *Syncer) Index() (*Index, error) {
	ix := s.idx.Load()
	if ix == nil {
		return nil, fmt.Errorf("%s: %w", s.name, ErrNotSynced)
	}
	return ix, nil
}

// Local tells the Engine lookups are in-memory and need no cache.
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
		if err := s.SyncOnce(ctx); err != nil {
			st := s.Status()
			s.logger.Warn("inventory sync failed, keeping previous data", "error", err,
				"previous_records", st.Records, "last_success", st.LastSuccess)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// SyncOnce performs one crawl, bounded by max(interval, 1m). On failure
// the previous index stays in service and the error is kept in Status as
// well as returned. A Lister answering providers.ErrUnchanged leaves
// everything as it is: the same broken file is reported once, not every
// tick.
func (s *Syncer) SyncOnce(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, max(s.interval, time.Minute))
	defer cancel()
	start := time.Now()
	var c Crawl
	var err error
	if s.coord != nil {
		c, err = s.coord.Crawl(cctx, s.list)
	} else {
		c.Records, err = s.list.List(cctx)
	}
	if errors.Is(err, providers.ErrUnchanged) {
		return nil
	}
	if err := s.swap(c, err, start); err != nil {
		return err
	}
	if s.swapped != nil {
		s.swapped()
	}
	return nil
}

// swap puts the crawl c (or its error err) in service.
func (s *Syncer) swap(c Crawl, err error, start time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.Source != "" {
		s.status.Crawl, s.status.Shared = c.Source, c.Shared
	}
	if err != nil {
		s.status.LastError = err.Error()
		return fmt.Errorf("sync %s: %w", s.name, err)
	}
	listed := time.Now()
	ix := NewIndex(c.Records)
	s.idx.Store(ix)
	s.status = Status{Ready: true, LastSuccess: time.Now(), Records: ix.Len(), Crawl: s.status.Crawl, Shared: s.status.Shared}
	// The crawl's time is mostly the vendor's (pages, rate budget); the
	// index's is postured's own.
	s.logger.Info("inventory synced", "records", ix.Len(), "duration", time.Since(start), "index_duration", time.Since(listed), "crawl", c.Source)
	return nil
}

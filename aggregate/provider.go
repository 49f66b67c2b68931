package aggregate

import (
	"context"

	"github.com/postured/postured/providers"
)

// Provider is what the aggregator needs from a backend: a batched lookup.
// Vendor packages never import aggregate; their types satisfy these
// interfaces structurally, and internal/app checks that at compile time.
type Provider interface {
	Lookup(ctx context.Context, q providers.Query) ([]providers.Record, error)
}

// The optional capabilities below are discovered by type assertion on a
// Provider (or, for Lister, on what a registry opened). Each is one method,
// declared here, next to Provider, rather than in the package that happens
// to check it, so that what a provider may offer is documented in one
// place.
type (
	// Local is implemented by providers answering from memory (a Syncer):
	// the Engine does not cache them, since caching could only add
	// staleness.
	Local interface{ Local() bool }

	// Indexed is a Local provider whose records the Engine may match in
	// place, without a copy per lookup: a Syncer. The Index is immutable;
	// the error is why there is none yet.
	Indexed interface{ Index() (*Index, error) }

	// StatusReporter is a provider that can say how fresh its data is;
	// readiness (server) and `explain` report it.
	StatusReporter interface{ Status() Status }

	// Runner is a provider with background work (a Syncer's periodic
	// crawl); internal/app starts Run once and cancels ctx at shutdown.
	Runner interface{ Run(ctx context.Context) }

	// Lister reads a backend's whole inventory, following every page: a
	// vendor in mode: sync, or the static inventory file. A Syncer turns a
	// Lister into a Provider.
	Lister interface {
		List(ctx context.Context) ([]providers.Record, error)
	}

	// KindSupporter is a provider that says, without a vendor call,
	// whether it can look records up by a kind: the Supports twin of
	// Lookup's providers.ErrUnsupportedKind. What-if and shadow policies,
	// which never call vendors, need it to tell "cannot look up by MAC"
	// from "not in the cache".
	KindSupporter interface {
		Supports(k providers.Kind) bool
	}

	// Coordinator shares a Syncer's crawls between replicas: per interval
	// one replica calls l.List and publishes the records, the others load
	// them. It answers providers.ErrUnchanged when this replica already
	// holds the newest records. Implementations live outside aggregate
	// (internal/crawlshare, over Redis).
	Coordinator interface {
		Crawl(ctx context.Context, l Lister) (Crawl, error)
	}
)

// Crawl is one interval's records as a Coordinator obtained them.
type Crawl struct {
	Records []providers.Record
	// Shared is false when this replica crawled alone because the
	// replicas could not share the crawl.
	Shared bool
	// Source says where Records came from, for /readyz, e.g. "crawled
	// here" or "local (redis unavailable)". A failed Crawl sets it too.
	Source string
}

// Interface guards.
var (
	_ Provider       = (*Syncer)(nil)
	_ Local          = (*Syncer)(nil)
	_ Indexed        = (*Syncer)(nil)
	_ StatusReporter = (*Syncer)(nil)
	_ Runner         = (*Syncer)(nil)
)

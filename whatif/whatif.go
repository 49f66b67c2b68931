// Package whatif answers "what would this policy change do?" without
// asking a vendor: it scores devices postured has recently answered under
// another policy, from the lookup cache and the sync indexes only.
// `postured whatif` compares a proposed config with the running one over
// the devices of the last polling cycle; shadow policies do the same for
// every batch, in the background, and only count and log what they would
// have changed.
package whatif

import (
	"context"
	"errors"
	"fmt"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/providers"
)

// ErrNotCached is a lookup postured holds no answer for. What-if never asks
// the vendor, so the provider counts as failed for that device (its
// on_error policy applies), as it would if the vendor were down.
var ErrNotCached = errors.New("not in the cache: what-if never asks the vendor")

// Frozen returns src answering only from what postured already holds: a
// sync-mode provider from its index (and its on_miss vendor path from the
// cache), a query-mode provider from the cache. The engine the source goes
// into must share the live engine's cache store, so its keys are the live
// ones.
func Frozen(src aggregate.Source) aggregate.Source {
	if l, ok := src.Provider.(aggregate.Local); ok && l.Local() {
		if src.Miss != nil {
			src.Miss = cacheOnly{src.Miss}
		}
		return src
	}
	src.Provider = cacheOnly{src.Provider}
	return src
}

// Absent is a source for a provider the running config does not have:
// there is nothing to answer from, so every lookup fails and the
// provider's on_error policy decides.
func Absent(src aggregate.Source) aggregate.Source {
	src.Provider, src.Miss = absent{src.Name}, nil
	return src
}

// cacheOnly stands in for a vendor: every lookup the cache did not answer
// lands here and fails. Kinds the vendor cannot query at all fail as the
// vendor would, so the explanation says "cannot look up by mac" rather than
// "not cached".
type cacheOnly struct{ vendor aggregate.Provider }

func (c cacheOnly) Lookup(_ context.Context, q providers.Query) ([]providers.Record, error) {
	if ks, ok := c.vendor.(aggregate.KindSupporter); ok && !ks.Supports(q.Kind) {
		return nil, fmt.Errorf("lookup by %s: %w", q.Kind, providers.ErrUnsupportedKind)
	}
	return nil, ErrNotCached
}

type absent struct{ name string }

func (a absent) Lookup(context.Context, providers.Query) ([]providers.Record, error) {
	return nil, fmt.Errorf("provider %s is not in the running config: no data to score from", a.name)
}

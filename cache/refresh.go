package cache

import "context"

type refreshKey struct{}

// WithRefresh marks ctx for a recheck: a Loader asked for keys under it
// answers none from the store, fetches them all again (joining fetches
// already under way), and replaces what the store held for them with the
// new answers, so the batches that follow see them too. An entry the
// vendor no longer has is dropped (or replaced by a negative entry when
// negative caching is on). Stale entries still stand in if the fetch
// fails, and are kept then.
func WithRefresh(ctx context.Context) context.Context {
	return context.WithValue(ctx, refreshKey{}, true)
}

// Refreshing reports whether ctx is marked by WithRefresh.
func Refreshing(ctx context.Context) bool {
	v, _ := ctx.Value(refreshKey{}).(bool)
	return v
}

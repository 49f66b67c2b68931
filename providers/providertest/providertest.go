// Package providertest is the conformance suite every vendor provider runs
// from its own tests, against its own mock: token refresh, secret hygiene,
// cancellation, rate limits and retries, unsupported kinds, vendor calls per
// batch and lookups by every kind. Only tests import it.
//
// A vendor supplies a Harness; the suite sits between provider and mock
// (Options.Serve) to count, echo, hold or reject requests, so scenarios need
// no mock support beyond faults and token revocation. A new identifier
// shape is a few more Env.Known entries in a harness; a new behaviour is
// one more check in Run's list, run by every vendor.
package providertest

import (
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/postured/postured/internal/mockkit"
	"github.com/postured/postured/providers"
)

// Provider is the query-mode contract the suite checks.
type Provider interface {
	Lookup(ctx context.Context, q providers.Query) ([]providers.Record, error)
}

// Lister is the sync-mode crawl; providers that have it get it checked too.
type Lister interface {
	List(ctx context.Context) ([]providers.Record, error)
}

// Harness adapts one vendor to the suite. Setup is the only code a vendor
// writes; the suite builds every scenario from it.
type Harness struct {
	// Setup starts the vendor's mock through opts.Serve, holding a small
	// tenant plus opts.Bulk generated devices, and builds a provider
	// against it with opts applied. It registers its cleanups on t.
	Setup func(t *testing.T, opts Options) *Env
	// TokenPath is the path of the token endpoint the provider uses on the
	// mock; every other request is an API call.
	TokenPath string
	// Kinds are the kinds the vendor can look up in query mode; every
	// other kind must fail with providers.ErrUnsupportedKind.
	Kinds []providers.Kind
	// CallBound is the vendor's documented bound: the most HTTP requests,
	// token requests included, a cold lookup of n distinct values of kind
	// k may make when every value matches one device.
	CallBound func(k providers.Kind, n int) int
}

// Options is what the suite asks of one Setup.
type Options struct {
	// Serve starts an HTTP server for h and returns its base URL. The
	// harness serves its mock through it only, so that the suite sees,
	// counts and, per scenario, answers or holds every request.
	Serve func(h http.Handler) string
	// HTTP replaces the vendor's HTTP defaults (fast retries, a budget
	// that never binds).
	HTTP providers.HTTPConfig
	// Logger is what the provider must log into (debug level).
	Logger *slog.Logger
	// OnRetry must be told about every retry the provider makes, with the
	// wait before it; vendors expose it through a test hook.
	OnRetry func(status int, wait time.Duration)
	// Bulk asks for that many more devices, each with its own identifier
	// of every kind in Harness.Kinds, all listed in Env.Known.
	Bulk int
}

// Env is a running mock and a provider pointed at it.
type Env struct {
	Provider Provider
	// Faults are injected into the mock's API requests (not token
	// requests).
	Faults *mockkit.Faults
	// Revoke makes the mock reject every token issued so far with 401.
	Revoke func()
	// Secrets are the credentials the provider was configured with.
	Secrets []string
	// Known are identifiers the mock holds, each with the record id a
	// lookup of it must return; a value matching several records is
	// listed once per record.
	Known []Ident
}

// Ident is an identifier known to the mock and the record it must find.
type Ident struct {
	Kind providers.Kind
	// Value is the identifier as Cloudflare sends it; the suite
	// normalises it before querying.
	Value string
	// ID is the record id a lookup of Value must return.
	ID string
}

// Run runs every check against the vendor behind h, each as a subtest.
func Run(t *testing.T, h Harness) {
	t.Helper()
	checks := []struct {
		name string
		run  func(*testing.T, Harness)
	}{
		{"token refresh on 401", checkTokenRefresh},
		{"secrets never leak", checkSecrets},
		{"context cancellation", checkCancellation},
		{"rate limits and retries", checkRetries},
		{"unsupported kinds", checkUnsupported},
		{"calls per batch", checkCallsPerBatch},
		{"lookup by kind", checkLookupKinds},
		{"rejected value fails only itself", checkIsolation},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) { c.run(t, h) })
	}
}

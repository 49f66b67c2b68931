// Package jamf looks devices up in Jamf Pro: computers through the computer
// inventory API and, unless mobile_devices is off, iPhones, iPads and Apple
// TVs through the mobile device inventory, scoring each record by
// management and FileVault (computers) or passcode and jailbreak state
// (mobile devices).
//
// The computer inventory is served in different API versions by different
// Jamf Pro releases (v1 from 10.39, v3 from 11.23, v4 from 11.30), so the
// provider finds the newest the server has on first use and keeps it.
//
// In query mode one call carries one RSQL =in= list of as many values as
// fit a request (serial, primary MAC (hardware.macAddress /
// wifiMacAddress), name or email); serials and MACs the computers answered
// are not asked of the mobile devices. A filter the server refuses is
// split until only the refused values fail. The secondary MAC of a
// computer (hardware.altMacAddress) is not filterable in Jamf and matches
// in sync mode only. Mobile device ids are returned as "mobile-<id>" so
// they cannot collide with computer ids.
package jamf

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/postured/postured/internal/logging"
	"github.com/postured/postured/providers"
)

// computerInventoryVersions are the computer inventory API versions, newest
// first: v4 (Jamf Pro 11.30+, which deprecated v3), v3 (11.23+), v2 and v1
// (10.39+, deprecated in 2025). They differ, in what postured reads, only
// in v4 calling general.lastContactTime general.lastCheckIn; computer reads
// either.
// https://developer.jamf.com/jamf-pro/changelog/11300-additions
// https://developer.jamf.com/jamf-pro/changelog/11230-additions
// https://developer.jamf.com/jamf-pro/docs/deprecation-of-classic-api-computer-inventory-endpoints
var computerInventoryVersions = []string{"v4", "v3", "v2", "v1"}

func computersInventoryPath(version string) string { return "/api/" + version + "/computers-inventory" }

// mobileDevicesPath is the mobile device inventory.
// https://developer.jamf.com/jamf-pro/reference/get_v2-mobile-devices-detail
const mobileDevicesPath = "/api/v2/mobile-devices/detail"

// Only the sections the mapping reads: every section costs Jamf a join and
// unrequested ones come back null.
var (
	computerSections = []string{"GENERAL", "HARDWARE", "OPERATING_SYSTEM", "USER_AND_LOCATION"}
	mobileSections   = []string{"GENERAL", "HARDWARE", "USER_AND_LOCATION", "SECURITY"}
)

// maxPages bounds one crawl (a million records at the default page size),
// so a nonsensical totalCount cannot send the provider into millions of
// calls.
const maxPages = 2000

// uriOverhead is what an inventory call's request URI takes besides the
// filter and the base URL's own path: the inventory path, sections, sort
// and paging (at most 158 bytes, for a computer page), with room to spare.
const uriOverhead = 256

// Provider is the Jamf Pro provider.
type Provider struct {
	name     string
	base     string
	client   *providers.Client
	logger   *slog.Logger
	pageSize int
	mobile   bool
	conc     int
	scores   scoring
	// filterBudget is how many encoded bytes one call's filter may take.
	filterBudget int

	// inventory is the index into computerInventoryVersions of the version
	// in use; confirmed once that version has answered. discovering admits
	// one request at a time until then.
	inventory   atomic.Int32
	confirmed   atomic.Bool
	discovering chan struct{}
}

// New builds the provider from a defaulted, validated config. It does no
// network I/O.
func New(cfg *Config, deps providers.Deps) (*Provider, error) {
	return newProvider(cfg, deps, nil)
}

func newProvider(cfg *Config, deps providers.Deps, onRetry func(int, time.Duration)) (*Provider, error) {
	logger := logging.OrDiscard(deps.Logger)
	if cfg.MaxConcurrency > jamfMaxConcurrency {
		logger.Warn("max_concurrency is above the 5 concurrent connections Jamf asks API clients to stay within",
			"max_concurrency", cfg.MaxConcurrency)
	}
	base := strings.TrimRight(cfg.BaseURL, "/")
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("%s: base_url: %w", cfg.Name, err)
	}
	client, err := providers.NewClient(providers.ClientOptions{
		Provider:        cfg.Name,
		HTTP:            cfg.HTTPConfig,
		Token:           newTokenSource(cfg, base),
		OnRetry:         onRetry,
		ObserveResponse: deps.ObserveResponse,
		Logger:          logger,
	})
	if err != nil {
		return nil, err
	}
	return &Provider{
		name:         cfg.Name,
		base:         base,
		client:       client,
		logger:       logger,
		pageSize:     cfg.PageSize,
		mobile:       *cfg.MobileDevices,
		conc:         cfg.MaxConcurrency,
		scores:       scoring{encrypted: *cfg.ScoreEncrypted, unencrypted: *cfg.ScoreUnencrypted, unmanaged: *cfg.ScoreUnmanaged},
		filterBudget: maxRequestURI - uriOverhead - len(u.EscapedPath()),
		discovering:  make(chan struct{}, 1),
	}, nil
}

// Supports reports whether Lookup can query by k.
func (p *Provider) Supports(k providers.Kind) bool {
	_, ok := computerFilterField[k]
	return ok
}

// Lookup returns every computer (and mobile device) carrying one of
// q.Values as a q.Kind identifier, plus whatever else the filters matched.
// When Jamf refuses some values' filters it returns the other values'
// records with a *providers.PartialError naming the refused ones.
func (p *Provider) Lookup(ctx context.Context, q providers.Query) ([]providers.Record, error) {
	cf, ok := computerFilterField[q.Kind]
	if !ok {
		return nil, fmt.Errorf("%s: lookup by %s: %w", p.name, q.Kind, providers.ErrUnsupportedKind)
	}
	values := filterable(q.Values)
	if len(values) == 0 {
		return nil, nil
	}
	comps := inventory{p.computers, "lookup computers", cf}
	mobiles := inventory{p.mobileDevices, "lookup mobile devices", mobileFilterField[q.Kind]}
	var (
		crecs, mrecs []providers.Record
		cerr, merr   error
	)
	switch {
	case !p.mobile:
		crecs, cerr = p.lookupIn(ctx, comps, q.Kind, values)
	case q.Kind == providers.KindSerial || q.Kind == providers.KindMAC:
		// A serial or Wi-Fi MAC is one piece of hardware: what a computer
		// answered is no phone's, which halves a batch's calls.
		crecs, cerr = p.lookupIn(ctx, comps, q.Kind, values)
		if isPartial(cerr) {
			rest := unanswered(q.Kind, values, crecs, cerr)
			mrecs, merr = p.lookupIn(ctx, mobiles, q.Kind, rest)
		}
	default:
		// One name or email can be a Mac's and a phone's.
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error {
			crecs, cerr = p.lookupIn(gctx, comps, q.Kind, values)
			return fatal(cerr)
		})
		g.Go(func() error {
			mrecs, merr = p.lookupIn(gctx, mobiles, q.Kind, values)
			return fatal(merr)
		})
		if err := g.Wait(); err != nil {
			return nil, err
		}
	}
	err := joinPartial(cerr, merr)
	if fatal(err) != nil {
		return nil, err
	}
	return dedup(append(crecs, mrecs...)), err
}

// inventory is one of the two listings a lookup asks.
type inventory struct {
	fetch func(ctx context.Context, op, filter string) ([]providers.Record, error)
	op    string
	field string
}

// lookupIn asks inv for values, as few calls as fit the filter budget,
// each isolated so that a refused value fails only itself.
func (p *Provider) lookupIn(ctx context.Context, inv inventory, k providers.Kind, values []string) ([]providers.Record, error) {
	if len(values) == 0 {
		return nil, nil
	}
	var (
		mu       sync.Mutex
		recs     []providers.Record
		partials []error
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(p.conc)
	for _, vals := range batches(k, inv.field, values, p.filterBudget) {
		g.Go(func() error {
			r, err := isolate(gctx, vals, func(ctx context.Context, vals []string) ([]providers.Record, error) {
				return inv.fetch(ctx, inv.op, filterFor(k, inv.field, vals))
			})
			if err := fatal(err); err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			recs = append(recs, r...)
			partials = append(partials, err)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return recs, joinPartial(partials...)
}

// unanswered are the values no record in recs carries and err did not
// refuse: a value Jamf refused on one inventory would be refused on the
// other too.
func unanswered(k providers.Kind, values []string, recs []providers.Record, err error) []string {
	done := make(map[string]bool)
	for i := range recs {
		for _, v := range recs[i].Identifiers(k) {
			done[v] = true
		}
	}
	var pe *providers.PartialError
	if errors.As(err, &pe) {
		for _, v := range pe.Values {
			done[v] = true
		}
	}
	var out []string
	for _, v := range values {
		if !done[v] {
			out = append(out, v)
		}
	}
	return out
}

// isPartial reports whether err leaves some values answered: nil or a
// *providers.PartialError.
func isPartial(err error) bool { return fatal(err) == nil }

// fatal is err unless it is nil or a *providers.PartialError.
func fatal(err error) error {
	var pe *providers.PartialError
	if err == nil || errors.As(err, &pe) {
		return nil
	}
	return err
}

// joinPartial is providers.JoinPartial naming each refused value once: the
// same value is refused by both inventories.
func joinPartial(errs ...error) error {
	err := providers.JoinPartial(errs...)
	var pe *providers.PartialError
	if errors.As(err, &pe) {
		seen := make(map[string]bool, len(pe.Values))
		pe.Values = slices.DeleteFunc(pe.Values, func(v string) bool {
			dup := seen[v]
			seen[v] = true
			return dup
		})
	}
	return err
}

// lookupFunc looks values up with one statement.
type lookupFunc func(ctx context.Context, values []string) ([]providers.Record, error)

// isolate runs lookup over values and, when Jamf refuses the statement,
// splits it until only the refused values fail, as providers.Isolate does.
// Jamf also refuses some filters with a 500 and an empty errors list
// (Jamf-Concepts/jamf-cli#246), which is what an outage looks like too: a
// 500 is split as well, but when both halves fail with a 500 again, no
// single value is to blame and the 500 fails them all. A single value
// answered with a 500 is a failure, not a refusal.
func isolate(ctx context.Context, values []string, lookup lookupFunc) ([]providers.Record, error) {
	recs, err := lookup(ctx, values)
	switch {
	case err == nil:
		return recs, nil
	case refused(err), serverError(err) && len(values) > 1:
		return split(ctx, values, err, lookup)
	}
	return nil, err
}

// split looks up both halves of values, which the server refused together
// with err, and splits again whichever half is refused, down to single
// values, which fail with a *providers.PartialError.
func split(ctx context.Context, values []string, err error, lookup lookupFunc) ([]providers.Record, error) {
	if len(values) == 1 {
		return nil, &providers.PartialError{Values: values, Err: err}
	}
	halves := [2][]string{values[:len(values)/2], values[len(values)/2:]}
	var (
		recs [2][]providers.Record
		errs [2]error
	)
	for i, h := range halves {
		recs[i], errs[i] = lookup(ctx, h)
	}
	if serverError(errs[0]) && serverError(errs[1]) {
		return nil, errs[0]
	}
	var (
		out      []providers.Record
		partials []error
	)
	for i, h := range halves {
		r, e := recs[i], errs[i]
		if e != nil {
			if !refused(e) && !serverError(e) {
				return nil, e
			}
			if r, e = split(ctx, h, e, lookup); fatal(e) != nil {
				return nil, e
			}
		}
		out = append(out, r...)
		partials = append(partials, e)
	}
	return out, providers.JoinPartial(partials...)
}

// refused is providers.Rejected for the API call itself: a token
// endpoint's 400 says nothing about the filter.
func refused(err error) bool {
	var te *tokenError
	return providers.Rejected(err) && !errors.As(err, &te)
}

// serverError reports a 500 from the Jamf Pro API, as opposed to the
// 502-504 of something in front of it or a failure to get a token.
func serverError(err error) bool { return apiStatus(err) == http.StatusInternalServerError }

// apiStatus is the status of the API's answer err carries, 0 if none.
func apiStatus(err error) int {
	var (
		se *providers.StatusError
		te *tokenError
	)
	if !errors.As(err, &se) || errors.As(err, &te) {
		return 0
	}
	return se.Status
}

// List crawls every computer (and mobile device), every page.
func (p *Provider) List(ctx context.Context) ([]providers.Record, error) {
	var comps, mobiles []providers.Record
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		comps, err = p.computers(gctx, "list computers", "")
		return err
	})
	if p.mobile {
		g.Go(func() (err error) {
			mobiles, err = p.mobileDevices(gctx, "list mobile devices", "")
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return dedup(append(comps, mobiles...)), nil
}

func (p *Provider) computers(ctx context.Context, op, filter string) ([]providers.Record, error) {
	var items []computer
	err := p.withComputerInventory(ctx, func(path string) (err error) {
		items, err = fetchAll[computer](ctx, p, op, path, query(computerSections, "id:asc", filter))
		return err
	})
	if err != nil {
		return nil, err
	}
	recs := make([]providers.Record, 0, len(items))
	for i := range items {
		recs = append(recs, p.scores.computer(&items[i]))
	}
	return recs, nil
}

// withComputerInventory runs call against the computer inventory path of
// the newest API version the server serves. Until a version has answered,
// calls run one at a time, each trying the versions newest first, a 404
// moving on to the next older one: the first lookup finds the version at
// no cost on a current server, and at one 404 per newer version on an
// older one. Only an answer settles the version; a failure leaves the
// search to the next call.
func (p *Provider) withComputerInventory(ctx context.Context, call func(path string) error) error {
	if p.confirmed.Load() {
		return call(computersInventoryPath(computerInventoryVersions[p.inventory.Load()]))
	}
	select {
	case p.discovering <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%s: find the computer inventory API: %w", p.name, ctx.Err())
	}
	defer func() { <-p.discovering }()
	if p.confirmed.Load() {
		return call(computersInventoryPath(computerInventoryVersions[p.inventory.Load()]))
	}
	for i, v := range computerInventoryVersions {
		err := call(computersInventoryPath(v))
		if apiStatus(err) == http.StatusNotFound {
			p.logger.Debug("jamf computer inventory API version not served", "version", v)
			continue
		}
		if err == nil {
			p.inventory.Store(int32(i))
			p.confirmed.Store(true)
			p.logger.Info("jamf computer inventory API found", "version", v)
		}
		return err
	}
	return fmt.Errorf("%s: find the computer inventory API: the server answers 404 for %s of /api/{version}/computers-inventory; Jamf Pro 10.39 or later serves it (check base_url)",
		p.name, strings.Join(computerInventoryVersions, ", "))
}

func (p *Provider) mobileDevices(ctx context.Context, op, filter string) ([]providers.Record, error) {
	items, err := fetchAll[mobileDevice](ctx, p, op, mobileDevicesPath, query(mobileSections, "mobileDeviceId:asc", filter))
	if err != nil {
		var se *providers.StatusError
		if errors.As(err, &se) && se.Status == http.StatusForbidden {
			err = fmt.Errorf("%w (the API role needs Read Mobile Devices, or set mobile_devices: false)", err)
		}
		return nil, err
	}
	recs := make([]providers.Record, 0, len(items))
	for i := range items {
		recs = append(recs, p.scores.mobile(&items[i]))
	}
	return recs, nil
}

func query(sections []string, sort, filter string) url.Values {
	q := url.Values{"section": sections, "sort": {sort}}
	if filter != "" {
		q.Set("filter", filter)
	}
	return q
}

// fetchAll reads every page of a listing: the first page tells the total,
// the rest are fetched concurrently (sorted by id, so pages are stable).
func fetchAll[T any](ctx context.Context, p *Provider, op, path string, q url.Values) ([]T, error) {
	first, err := getPage[T](ctx, p, op, path, q, 0)
	if err != nil {
		return nil, err
	}
	n := len(first.Results)
	if n == 0 || n >= first.TotalCount {
		return first.Results, nil
	}
	if n < p.pageSize {
		// Offsets would be computed with a page size the server does not
		// honour, silently skipping records.
		return nil, fmt.Errorf("%s: %s: the server returned %d of %d records for page-size %d; lower page_size",
			p.name, op, n, first.TotalCount, p.pageSize)
	}
	pages := (first.TotalCount + p.pageSize - 1) / p.pageSize
	if pages > maxPages {
		return nil, fmt.Errorf("%s: %s: %d records need %d pages, more than the %d allowed; raise page_size",
			p.name, op, first.TotalCount, pages, maxPages)
	}
	rest := make([][]T, pages-1)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(p.conc)
	for i := range rest {
		g.Go(func() error {
			pg, err := getPage[T](gctx, p, op, path, q, i+1)
			rest[i] = pg.Results
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := first.Results
	for _, r := range rest {
		out = append(out, r...)
	}
	return out, nil
}

func getPage[T any](ctx context.Context, p *Provider, op, path string, q url.Values, n int) (page[T], error) {
	q = maps.Clone(q) // pages run concurrently; Set replaces, never mutates, the shared slices
	q.Set("page", strconv.Itoa(n))
	q.Set("page-size", strconv.Itoa(p.pageSize))
	var pg page[T]
	err := p.client.GetJSON(ctx, op, p.base+path+"?"+q.Encode(), &pg)
	return pg, err
}

// dedup drops repeated ids (a record can straddle pages while the
// inventory changes) and orders the result by id.
func dedup(recs []providers.Record) []providers.Record {
	slices.SortStableFunc(recs, func(a, b providers.Record) int { return cmp.Compare(a.ID, b.ID) })
	return slices.CompactFunc(recs, func(a, b providers.Record) bool { return a.ID == b.ID })
}

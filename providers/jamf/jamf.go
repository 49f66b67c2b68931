// Package jamf looks devices up in Jamf Pro: computers through the computer
// inventory API and, unless mobile_devices is off, iPhones, iPads and Apple
// TVs through the mobile device inventory, scoring each record by
// management and FileVault (computers) or passcode and jailbreak state
// (mobile devices).
//
// In query mode one call carries up to 20 OR-joined RSQL comparisons, for
// serial, primary MAC (hardware.macAddress / wifiMacAddress), name and
// email; the secondary MAC of a computer (hardware.altMacAddress) is not
// filterable in Jamf and matches in sync mode only. Mobile device ids are
// returned as "mobile-<id>" so they cannot collide with computer ids.
package jamf

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/postured/postured/internal/logging"
	"github.com/postured/postured/providers"
)

// API paths. The computer inventory is v3: v1 is deprecated and v4 (Jamf
// Pro 11.30+, which deprecated v3) renames general.lastContactTime to
// general.lastCheckIn, so moving to it means changing the record mapping
// too. https://developer.jamf.com/jamf-pro/reference/get_v3-computers-inventory
// https://developer.jamf.com/jamf-pro/reference/get_v2-mobile-devices-detail
const (
	computersInventoryVersion = "v3"
	computersInventoryPath    = "/api/" + computersInventoryVersion + "/computers-inventory"
	mobileDevicesPath         = "/api/v2/mobile-devices/detail"
)

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

// Provider is the Jamf Pro provider.
type Provider struct {
	name     string
	base     string
	client   *providers.Client
	pageSize int
	mobile   bool
	conc     int
	scores   scoring
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
	client, err := providers.NewClient(providers.ClientOptions{
		Provider: cfg.Name,
		HTTP:     cfg.HTTPConfig,
		Token:    newTokenSource(cfg, base),
		OnRetry:  onRetry,
		Logger:   logger,
	})
	if err != nil {
		return nil, err
	}
	return &Provider{
		name:     cfg.Name,
		base:     base,
		client:   client,
		pageSize: cfg.PageSize,
		mobile:   *cfg.MobileDevices,
		conc:     cfg.MaxConcurrency,
		scores:   scoring{encrypted: *cfg.ScoreEncrypted, unencrypted: *cfg.ScoreUnencrypted, unmanaged: *cfg.ScoreUnmanaged},
	}, nil
}

// Lookup returns every computer (and mobile device) carrying one of
// q.Values as a q.Kind identifier, plus whatever else the filters matched.
func (p *Provider) Lookup(ctx context.Context, q providers.Query) ([]providers.Record, error) {
	cf, ok := computerFilterField[q.Kind]
	if !ok {
		return nil, fmt.Errorf("%s: lookup by %s: %w", p.name, q.Kind, providers.ErrUnsupportedKind)
	}
	var (
		mu  sync.Mutex
		out []providers.Record
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(p.conc)
	run := func(fetch func(context.Context, string, string) ([]providers.Record, error), op, filter string) {
		g.Go(func() error {
			recs, err := fetch(gctx, op, filter)
			mu.Lock()
			out = append(out, recs...)
			mu.Unlock()
			return err
		})
	}
	for _, f := range filters(q.Kind, cf, q.Values) {
		run(p.computers, "lookup computers", f)
	}
	if p.mobile {
		for _, f := range filters(q.Kind, mobileFilterField[q.Kind], q.Values) {
			run(p.mobileDevices, "lookup mobile devices", f)
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return dedup(out), nil
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
	items, err := fetchAll[computer](ctx, p, op, computersInventoryPath, query(computerSections, "id:asc", filter))
	if err != nil {
		return nil, err
	}
	recs := make([]providers.Record, 0, len(items))
	for i := range items {
		recs = append(recs, p.scores.computer(&items[i]))
	}
	return recs, nil
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

// Package crowdstrike looks hosts up in CrowdStrike Falcon (Hosts API, FQL
// filters) and scores them by their Zero Trust Assessment.
package crowdstrike

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/postured/postured/internal/conf"
	"github.com/postured/postured/internal/logging"
	"github.com/postured/postured/providers"
)

// Provider looks devices up in one Falcon tenant.
type Provider struct {
	name      string
	base      string
	clientID  string
	secret    conf.Secret
	memberCID string

	client    *providers.Client
	tokenHTTP *http.Client
	logger    *slog.Logger
	pacer     pacer

	conc              int
	pageSize          int
	unassessedScore   int
	containedScore    int
	hostnameExactOnly bool
}

// New builds a Provider from a defaulted, validated config. It does no I/O.
func New(cfg *Config, deps providers.Deps) (*Provider, error) {
	return newProvider(cfg, deps, nil)
}

// newProvider is New with a hook told about every retry (for tests).
func newProvider(cfg *Config, deps providers.Deps, onRetry func(int, time.Duration)) (*Provider, error) {
	base, err := cfg.apiBase()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Name, err)
	}
	logger := logging.OrDiscard(deps.Logger)
	p := &Provider{
		name:              cfg.Name,
		base:              base,
		clientID:          strings.TrimSpace(cfg.ClientID),
		secret:            cfg.ClientSecret,
		memberCID:         strings.TrimSpace(cfg.MemberCID),
		tokenHTTP:         providers.TokenHTTPClient(cfg.HTTPConfig),
		logger:            logger,
		conc:              cfg.MaxConcurrency,
		pageSize:          cfg.PageSize,
		unassessedScore:   defaultUnassessedScore,
		containedScore:    defaultContainedScore,
		hostnameExactOnly: cfg.HostnameExactOnly,
	}
	if cfg.UnassessedScore != nil {
		p.unassessedScore = *cfg.UnassessedScore
	}
	if cfg.ContainedScore != nil {
		p.containedScore = *cfg.ContainedScore
	}
	if p.pageSize <= 0 || p.pageSize > maxQueryLimit {
		p.pageSize = maxQueryLimit
	}
	p.client, err = providers.NewClient(providers.ClientOptions{
		Provider:   cfg.Name,
		HTTP:       cfg.HTTPConfig,
		Token:      providers.NewTokenSource(p.fetchToken, tokenRefreshEarly),
		RetryAfter: RetryAfter,
		OnRetry:    onRetry,
		Logger:     logger,
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Lookup returns every Falcon host carrying one of q.Values as an
// identifier of kind q.Kind, scored.
//
// Serials, MACs and emails go into bracket lists (exact match, case
// included) in the spellings Falcon stores them in; hostnames first as exact
// short names, then, for names without a hit, as FQDN prefixes
// (hostname:*'mbp-42.*'). Email is a weak key: Falcon's email field is
// rarely populated and last_login_user is usually DOMAIN\user, which is not
// queried.
func (p *Provider) Lookup(ctx context.Context, q providers.Query) ([]providers.Record, error) {
	values := p.sendable(q.Values)
	if len(values) == 0 {
		return nil, nil
	}
	var queries []query
	switch q.Kind {
	case providers.KindSerial:
		queries = packBrackets(values, serialForms, "serial_number")
	case providers.KindMAC:
		queries = packBrackets(values, macForms, "mac_address", "connection_mac_address")
	case providers.KindHostname:
		queries = packBrackets(values, hostnameForms, "hostname")
	case providers.KindEmail:
		queries = packBrackets(values, identity, "email")
	default:
		return nil, fmt.Errorf("%s: lookup by %s: %w", p.name, q.Kind, providers.ErrUnsupportedKind)
	}
	aids, err := p.queryAll(ctx, queries)
	if err != nil {
		return nil, err
	}
	recs, err := p.records(ctx, aids)
	if err != nil {
		return nil, err
	}
	if q.Kind != providers.KindHostname || p.hostnameExactOnly {
		return recs, nil
	}
	var missing []string
	for _, v := range values {
		if !slices.ContainsFunc(recs, func(r providers.Record) bool { return r.Has(providers.KindHostname, v) }) {
			missing = append(missing, v)
		}
	}
	if len(missing) == 0 {
		return recs, nil
	}
	more, err := p.queryAll(ctx, hostnamePrefixQueries(missing))
	if err != nil {
		return nil, err
	}
	more = slices.DeleteFunc(more, func(id string) bool { return slices.Contains(aids, id) })
	extra, err := p.records(ctx, more)
	if err != nil {
		return nil, err
	}
	return append(recs, extra...), nil
}

// sendable drops values that cannot be put into FQL safely, and repeats.
func (p *Provider) sendable(in []string) []string {
	out := make([]string, 0, len(in))
	for _, v := range in {
		if !fqlSafe(v) {
			p.logger.Debug("identifier not queried: characters FQL cannot carry", "length", len(v))
			continue
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// List crawls every host of the tenant (scroll paging), for sync mode.
func (p *Provider) List(ctx context.Context) ([]providers.Record, error) {
	aids, err := p.scrollAll(ctx)
	if err != nil {
		return nil, err
	}
	return p.records(ctx, aids)
}

// queryAll runs the statements concurrently, each paged to the end, and
// returns the AIDs found, each once, in statement order.
func (p *Provider) queryAll(ctx context.Context, queries []query) ([]string, error) {
	results := make([][]string, len(queries))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(p.conc)
	for i, q := range queries {
		g.Go(func() error {
			ids, err := p.queryIDs(gctx, q.filter)
			results[i] = ids
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var out []string
	seen := make(map[string]bool)
	for _, ids := range results {
		for _, id := range ids {
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	return out, nil
}

// queryIDs pages one FQL statement through QueryDevicesByFilter.
func (p *Provider) queryIDs(ctx context.Context, filter string) ([]string, error) {
	var ids []string
	offset := 0
	for {
		limit := min(p.pageSize, maxOffsetWindow-offset)
		if limit <= 0 {
			return nil, fmt.Errorf("%s: query devices: more than %d hosts match one filter", p.name, maxOffsetWindow)
		}
		params := url.Values{"filter": {filter}, "limit": {strconv.Itoa(limit)}, "offset": {strconv.Itoa(offset)}}
		var env envelope[string]
		err := p.call(ctx, "query devices", providers.Request{Method: http.MethodGet, URL: p.base + queryDevicesPath + "?" + params.Encode()}, false, &env)
		if err != nil {
			return nil, err
		}
		p.logPartial("query devices", env.Errors)
		var pg queryPaging
		if len(env.Meta.Pagination) > 0 {
			if err := p.client.DecodeJSON("query devices", env.Meta.Pagination, &pg); err != nil {
				return nil, err
			}
		}
		ids = append(ids, env.Resources...)
		offset += len(env.Resources)
		if len(env.Resources) == 0 || offset >= pg.Total {
			return ids, nil
		}
	}
}

// scrollAll pages every AID of the tenant through
// QueryDevicesByFilterScroll; its offset token idles out after 2 minutes, so
// pages are fetched back to back.
func (p *Provider) scrollAll(ctx context.Context) ([]string, error) {
	var ids []string
	token := ""
	for page := 0; ; page++ {
		params := url.Values{"limit": {strconv.Itoa(p.pageSize)}}
		if token != "" {
			params.Set("offset", token)
		}
		var env envelope[string]
		err := p.call(ctx, "scroll devices", providers.Request{Method: http.MethodGet, URL: p.base + scrollDevicesPath + "?" + params.Encode()}, false, &env)
		if err != nil {
			return nil, err
		}
		p.logPartial("scroll devices", env.Errors)
		var pg scrollPaging
		if len(env.Meta.Pagination) > 0 {
			if err := p.client.DecodeJSON("scroll devices", env.Meta.Pagination, &pg); err != nil {
				return nil, err
			}
		}
		ids = append(ids, env.Resources...)
		if pg.Offset == "" || len(env.Resources) == 0 {
			return ids, nil
		}
		if pg.Offset == token || page > pg.Total/p.pageSize+1 {
			return nil, fmt.Errorf("%s: scroll devices: paging does not advance", p.name)
		}
		token = pg.Offset
	}
}

// records fetches details and assessments of the AIDs (concurrently, in
// chunks) and turns them into scored records. AIDs whose details Falcon
// no longer has are left out.
func (p *Provider) records(ctx context.Context, aids []string) ([]providers.Record, error) {
	if len(aids) == 0 {
		return nil, nil
	}
	var (
		mu     sync.Mutex
		hosts  = make(map[string]host, len(aids))
		scores = make(map[string]assessment, len(aids))
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(p.conc)
	for chunk := range slices.Chunk(aids, maxDetailIDs) {
		g.Go(func() error {
			body, err := json.Marshal(struct {
				IDs []string `json:"ids"`
			}{chunk})
			if err != nil {
				return fmt.Errorf("%s: device details: %w", p.name, err)
			}
			var env envelope[host]
			err = p.call(gctx, "device details", providers.Request{Method: http.MethodPost, URL: p.base + deviceDetailsPath, Body: body,
				Header: http.Header{"Content-Type": {"application/json"}}}, true, &env)
			if err != nil {
				return err
			}
			p.logPartial("device details", env.Errors)
			mu.Lock()
			for _, h := range env.Resources {
				hosts[h.DeviceID] = h
			}
			mu.Unlock()
			return nil
		})
	}
	for chunk := range slices.Chunk(aids, maxZTAIDs) {
		g.Go(func() error {
			params := url.Values{"ids": chunk}
			var env envelope[assessment]
			err := p.call(gctx, "zta assessments", providers.Request{Method: http.MethodGet, URL: p.base + assessmentsPath + "?" + params.Encode()}, true, &env)
			if err != nil {
				return err
			}
			mu.Lock()
			for _, a := range env.Resources {
				scores[a.AID] = a
			}
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := make([]providers.Record, 0, len(hosts))
	for _, id := range aids {
		h, ok := hosts[id]
		if !ok {
			continue
		}
		a, assessed := scores[id]
		out = append(out, p.record(h, a, assessed))
	}
	return out, nil
}

// record maps a Falcon host and its assessment to a scored record.
func (p *Provider) record(h host, a assessment, assessed bool) providers.Record {
	rec := providers.Record{
		ID:        h.DeviceID,
		Serials:   []string{h.SerialNumber},
		MACs:      []string{h.MACAddress, h.ConnectionMACAddress},
		Hostnames: []string{h.Hostname},
		Emails:    []string{h.Email, h.LastLoginUser},
	}
	if t, err := time.Parse(time.RFC3339, h.LastSeen); err == nil {
		rec.LastSeen = t
	}
	rec.Score, rec.Reason = p.score(h, a, assessed)
	rec.Normalize()
	return rec
}

// score applies the scoring table: containment first (a contained host is
// cut off whatever its assessment), then the ZTA overall score, then the
// unassessed default.
func (p *Provider) score(h host, a assessment, assessed bool) (int, string) {
	switch status := strings.ToLower(h.Status); status {
	case "contained", "containment_pending":
		return p.containedScore, "status=" + status
	}
	if !assessed || a.Assessment.Overall == nil {
		return p.unassessedScore, "zta=unassessed"
	}
	return providers.Clamp(*a.Assessment.Overall), fmt.Sprintf("zta.overall=%d", *a.Assessment.Overall)
}

func (p *Provider) logPartial(op string, errs []apiError) {
	if len(errs) > 0 {
		p.logger.Debug("falcon answered with errors alongside results", "op", op, "errors", len(errs), "first", errs[0].Message)
	}
}

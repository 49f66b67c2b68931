// Package crowdstrike looks hosts up in CrowdStrike Falcon (Hosts API, FQL
// filters) and scores them by their Zero Trust Assessment.
package crowdstrike

import (
	"cmp"
	"context"
	"errors"
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
	gate      gate

	conc            int
	pageSize        int
	unassessedScore int
	containedScore  int
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
		name:            cfg.Name,
		base:            base,
		clientID:        strings.TrimSpace(cfg.ClientID),
		secret:          cfg.ClientSecret,
		memberCID:       strings.TrimSpace(cfg.MemberCID),
		tokenHTTP:       providers.TokenHTTPClient(cfg.HTTPConfig),
		logger:          logger,
		gate:            gate{maxWait: time.Duration(cfg.RetryWaitMax)},
		conc:            cfg.MaxConcurrency,
		pageSize:        cfg.PageSize,
		unassessedScore: defaultUnassessedScore,
		containedScore:  defaultContainedScore,
	}
	if cfg.UnassessedScore != nil {
		p.unassessedScore = *cfg.UnassessedScore
	}
	if cfg.ContainedScore != nil {
		p.containedScore = *cfg.ContainedScore
	}
	if p.pageSize <= 0 || p.pageSize > maxCombinedLimit {
		p.pageSize = defaultPageSize
	}
	p.client, err = providers.NewClient(providers.ClientOptions{
		Provider: cfg.Name,
		HTTP:     cfg.HTTPConfig,
		Token:    providers.NewTokenSource(p.fetchToken, tokenRefreshEarly),
		// Every 429 any goroutine sees, retried or not, closes the gate
		// for all of them.
		RetryAfter: func(resp *http.Response) (time.Duration, bool) {
			d, ok := RetryAfter(resp)
			if ok && resp.StatusCode == http.StatusTooManyRequests {
				p.gate.hold(time.Now().Add(d))
			}
			return d, ok
		},
		OnRetry:         onRetry,
		ObserveResponse: deps.ObserveResponse,
		Logger:          logger,
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Supports reports whether Lookup can query by k.
func (p *Provider) Supports(k providers.Kind) bool {
	_, ok := planFor(k)
	return ok
}

// Lookup returns every Falcon host carrying one of q.Values as an
// identifier of kind q.Kind, scored: the statements planFor describes (for
// serials, exact bracket lists first and single terms for the values they
// did not find), each through the combined endpoint (host records in one
// call, no details round trip), then the Zero Trust Assessments of the
// hosts that really carry a value, 100 a call. Every host Falcon returns is checked against
// the normalised values, so partial and case-folded matches never reach
// the caller. A statement Falcon refuses (400, 414: a value it will not
// take) is split down to the values it refuses; they come back in a
// *providers.PartialError with the records of every other value. Email is
// a weak key: Falcon's email field is rarely filled and last_login_user is
// usually DOMAIN\user, which is not queried.
func (p *Provider) Lookup(ctx context.Context, q providers.Query) ([]providers.Record, error) {
	pl, ok := planFor(q.Kind)
	if !ok {
		return nil, fmt.Errorf("%s: lookup by %s: %w", p.name, q.Kind, providers.ErrUnsupportedKind)
	}
	values := p.sendable(q.Values)
	if len(values) == 0 {
		return nil, nil
	}
	hosts, refused := p.find(ctx, q.Kind, pl, values)
	if refused != nil && !isPartial(refused) {
		return nil, refused
	}
	want := make(map[string]bool, len(values))
	for _, v := range values {
		want[v] = true
	}
	hosts = slices.DeleteFunc(hosts, func(h host) bool {
		r := hostRecord(h)
		return !slices.ContainsFunc(r.Identifiers(q.Kind), func(v string) bool { return want[v] })
	})
	recs, err := p.records(ctx, hosts)
	if err != nil {
		return nil, err
	}
	return recs, refused
}

func isPartial(err error) bool {
	var pe *providers.PartialError
	return errors.As(err, &pe)
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

// List crawls every host of the tenant through the combined endpoint, for
// sync mode, and scores it. The overall scores come from the by-score
// listing, a thousand hosts a call, alongside the host crawl, rather than
// from each host's assessment at a hundred a call: a tenth of the calls,
// which at the default 20 requests a second is most of a large tenant's
// crawl time.
func (p *Provider) List(ctx context.Context) ([]providers.Record, error) {
	var (
		hosts  []host
		listed map[string]int
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		hosts, err = p.combined(gctx, "list devices", "")
		return err
	})
	g.Go(func() (err error) {
		listed, err = p.listScores(gctx)
		return err
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	hosts = uniqueHosts(hosts)
	found := make(map[string]assessment, len(hosts))
	var unlisted []string
	for _, h := range hosts {
		score, ok := listed[h.DeviceID]
		if !ok {
			unlisted = append(unlisted, h.DeviceID)
			continue
		}
		a := assessment{AID: h.DeviceID}
		a.Assessment.Overall = &score
		found[h.DeviceID] = a
	}
	// Paging by score is no snapshot: a host whose score changes mid-crawl
	// can move across the after cursor and never be listed, and then looks
	// exactly like an unassessed host, which is absent too. Scoring it as
	// unassessed would replace its real score with the default (a wrong
	// allow when that is the higher), so every host the listing lacks is
	// asked for by id, and only the entities endpoint makes it unassessed.
	if err := p.assessments(ctx, unlisted, found); err != nil {
		return nil, err
	}
	return p.build(hosts, found), nil
}

// listScores pages every overall score of the tenant, by AID, through
// getAssessmentsByScoreV1; score:>=0 matches them all (scores run 1 to
// 100). Its after token may idle out as combined's does, so pages are
// fetched back to back.
func (p *Provider) listScores(ctx context.Context) (map[string]int, error) {
	const op = "list zta scores"
	scores := make(map[string]int)
	dups := 0
	params := url.Values{"filter": {"score:>=0"}, "limit": {strconv.Itoa(maxScoresLimit)}}
	err := pages(ctx, p, op, scoresPath, params, "after", maxScoresLimit, func(page []listedScore) {
		for _, s := range page {
			if s.Score == nil {
				continue // not listed, then: asked for by id
			}
			if _, dup := scores[s.AID]; dup {
				dups++
			}
			scores[s.AID] = *s.Score
		}
	})
	if err != nil {
		return nil, err
	}
	if dups > 0 {
		// A score that changed between two pages can list its host twice;
		// either score was the host's within the crawl.
		p.logger.Debug("falcon listed hosts more than once; the last score read counts", "op", op, "duplicates", dups)
	}
	return scores, nil
}

// find asks Falcon for the hosts carrying values: through pl's exact stage
// first when it has one and the values take more than one single-term
// statement (fewer cannot be asked in fewer calls), then through its rest
// stage for every value no host carries exactly. A value too long to share
// a bracket statement skips the exact stage: alone in a statement either
// way, it is asked as the single term that finds it in any case. A value
// the exact stage refuses is asked again by the rest, which settles it.
func (p *Provider) find(ctx context.Context, kind providers.Kind, pl plan, values []string) ([]host, error) {
	if pl.exact == nil || len(pl.rest.pack(values)) < 2 {
		return p.ask(ctx, pl.rest, values)
	}
	exact := slices.DeleteFunc(slices.Clone(values), func(v string) bool { return pl.exact.tooLong([]string{v}) })
	hosts, err := p.ask(ctx, *pl.exact, exact)
	if err != nil && !isPartial(err) {
		return nil, err
	}
	if err != nil {
		p.logger.Debug("falcon refused values in a bracket list; asking them singly", "kind", kind, "error", err)
	}
	found := make(map[string]bool, len(hosts))
	for _, h := range hosts {
		r := hostRecord(h)
		for _, v := range r.Identifiers(kind) {
			found[v] = true
		}
	}
	rest := slices.DeleteFunc(slices.Clone(values), func(v string) bool { return found[v] })
	more, err := p.ask(ctx, pl.rest, rest)
	if err != nil && !isPartial(err) {
		return nil, err
	}
	return append(hosts, more...), err
}

// ask runs the statements of st for values concurrently and returns every
// host they match. A statement Falcon refuses is split
// (providers.Isolate): the error is then a *providers.PartialError naming
// the refused values, with the hosts of all others returned. Any other
// error fails the lookup.
func (p *Provider) ask(ctx context.Context, st stage, values []string) ([]host, error) {
	var (
		mu      sync.Mutex
		hosts   []host
		refused []error
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(p.conc)
	for _, vals := range st.pack(values) {
		g.Go(func() error {
			// Isolate only splits and retries: the hosts are collected
			// here, as the records are built once the assessments are in.
			_, err := providers.Isolate(gctx, vals, func(ctx context.Context, vals []string) ([]providers.Record, error) {
				found, err := p.combined(ctx, "query devices", st.filter(vals))
				if err != nil {
					return nil, err
				}
				mu.Lock()
				hosts = append(hosts, found...)
				mu.Unlock()
				return nil, nil
			})
			if isPartial(err) {
				mu.Lock()
				refused = append(refused, err)
				mu.Unlock()
				return nil
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return hosts, providers.JoinPartial(refused...)
}

// combined pages the hosts matching filter (every host when empty) through
// CombinedDevicesByFilter.
func (p *Provider) combined(ctx context.Context, op, filter string) ([]host, error) {
	var hosts []host
	params := url.Values{"limit": {strconv.Itoa(p.pageSize)}, "fields": {hostFields}}
	if filter != "" {
		params.Set("filter", filter)
	}
	err := pages(ctx, p, op, combinedDevicesPath, params, "offset", p.pageSize, func(page []host) { hosts = append(hosts, page...) })
	if err != nil {
		return nil, err
	}
	return hosts, nil
}

// pages walks a token-paged listing at path, handing each page's
// resources to each; tokenParam names the next page's token, in the
// request and in the pagination. Tokens idle out (combined's after 2
// minutes), so pages are fetched back to back. Paging that does not
// advance (the same token twice, more pages than total/limit+1) fails.
func pages[T any](ctx context.Context, p *Provider, op, path string, params url.Values, tokenParam string, limit int, each func([]T)) error {
	token := ""
	for page := 0; ; page++ {
		if token != "" {
			params.Set(tokenParam, token)
		}
		var env envelope[T]
		err := p.call(ctx, op, providers.Request{Method: http.MethodGet, URL: p.base + path + "?" + params.Encode()}, false, &env)
		if err != nil {
			return err
		}
		p.logPartial(op, env.Errors)
		var pg tokenPaging
		if len(env.Meta.Pagination) > 0 {
			if err := p.client.DecodeJSON(op, env.Meta.Pagination, &pg); err != nil {
				return err
			}
		}
		each(env.Resources)
		next := pg.Offset
		if tokenParam == "after" {
			next = pg.After
		}
		if next == "" || len(env.Resources) == 0 {
			return nil
		}
		if next == token || page > pg.Total/cmp.Or(pg.Limit, limit)+1 {
			return fmt.Errorf("%s: %s: paging does not advance", p.name, op)
		}
		token = next
	}
}

// records fetches the assessments of the hosts (concurrently, 100 a call)
// and turns each host, once, into a scored record.
func (p *Provider) records(ctx context.Context, hosts []host) ([]providers.Record, error) {
	hosts = uniqueHosts(hosts)
	found := make(map[string]assessment, len(hosts))
	aids := make([]string, len(hosts))
	for i, h := range hosts {
		aids[i] = h.DeviceID
	}
	if err := p.assessments(ctx, aids, found); err != nil {
		return nil, err
	}
	return p.build(hosts, found), nil
}

// uniqueHosts drops the repeats of a host, keeping its first record.
func uniqueHosts(hosts []host) []host {
	seen := make(map[string]bool, len(hosts))
	return slices.DeleteFunc(hosts, func(h host) bool {
		dup := seen[h.DeviceID]
		seen[h.DeviceID] = true
		return dup
	})
}

// assessments fetches the assessments of aids (concurrently, 100 a call)
// into found. An aid Falcon has none for is left out: unassessed.
func (p *Provider) assessments(ctx context.Context, aids []string, found map[string]assessment) error {
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(p.conc)
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
				found[a.AID] = a
			}
			mu.Unlock()
			return nil
		})
	}
	return g.Wait()
}

// build turns each host into a scored record, with its assessment if
// found has one.
func (p *Provider) build(hosts []host, found map[string]assessment) []providers.Record {
	if len(hosts) == 0 {
		return nil
	}
	out := make([]providers.Record, len(hosts))
	for i, h := range hosts {
		a, assessed := found[h.DeviceID]
		out[i] = p.record(h, a, assessed)
	}
	return out
}

// record maps a Falcon host and its assessment to a scored record.
func (p *Provider) record(h host, a assessment, assessed bool) providers.Record {
	rec := hostRecord(h)
	rec.Score, rec.Reason = p.score(h, a, assessed)
	rec.Contained = contained(h.Status)
	return rec
}

// contained reports whether a Falcon host status means the host is, or is
// about to be, network-contained.
func contained(status string) bool {
	switch strings.ToLower(status) {
	case "contained", "containment_pending", "lift_containment_pending":
		return true
	}
	return false
}

// hostRecord is the host's identity: id, normalised identifiers, last seen.
func hostRecord(h host) providers.Record {
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
	rec.Normalize()
	return rec
}

// score applies the scoring table: containment first (a contained host is
// cut off whatever its assessment, and stays so while a lift is pending),
// then the ZTA overall score, then the unassessed default.
func (p *Provider) score(h host, a assessment, assessed bool) (int, string) {
	// The reason always names the status, so a change to it reads as
	// "status normal -> contained" in a device's history.
	status := strings.ToLower(h.Status)
	switch {
	case contained(status):
		return p.containedScore, "status=" + status
	case status == "":
		status = "normal"
	}
	if !assessed || a.Assessment.Overall == nil {
		return p.unassessedScore, "status=" + status + " zta=unassessed"
	}
	return providers.Clamp(*a.Assessment.Overall), fmt.Sprintf("status=%s zta.overall=%d", status, *a.Assessment.Overall)
}

func (p *Provider) logPartial(op string, errs []apiError) {
	if len(errs) > 0 {
		p.logger.Debug("falcon answered with errors alongside results", "op", op, "errors", len(errs), "first", errs[0].Message)
	}
}

// Package intune looks up device compliance in Microsoft Intune through
// Microsoft Graph v1.0 (deviceManagement/managedDevices).
//
// Query mode filters on what Graph can filter: serialNumber, deviceName and
// userPrincipalName, one clause per request packed 20 to a JSON $batch.
// Graph cannot filter managed devices by MAC address, so MAC matching needs
// mode: sync, which crawls the whole inventory with List.
package intune

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/postured/postured/internal/logging"
	"github.com/postured/postured/providers"
)

const (
	// apiVersion is the Graph version every call goes to.
	// https://learn.microsoft.com/graph/versioning-and-support
	apiVersion = "v1.0"
	// maxBatchRequests is how many requests one JSON $batch may carry.
	// https://learn.microsoft.com/graph/json-batching#batch-size-limitations
	maxBatchRequests = 20
	// listPageSize is the largest managedDevices page Intune serves (and
	// its default). https://learn.microsoft.com/graph/paging;
	// microsoftgraph/powershell-intune-samples#2.
	listPageSize = 1000
	// managedDevicesPath is the collection, relative to the version.
	// https://learn.microsoft.com/graph/api/intune-devices-manageddevice-list
	managedDevicesPath = "/deviceManagement/managedDevices"
	// maxClausePages bounds the pages one lookup clause may take: past
	// 10000 devices sharing one user or name prefix (a device enrollment
	// manager account, a two-letter hostname) the key cannot single out a
	// device anyway, and one key must not crawl the tenant.
	maxClausePages = 10
)

// selectFields are the only properties postured reads; Graph returns only
// what $select names (id included only when asked for). ethernetMacAddress
// is a non-default property that list calls usually answer with null; it
// is used when present.
// https://learn.microsoft.com/graph/api/resources/intune-devices-manageddevice
var selectFields = strings.Join([]string{
	"id", "deviceName", "serialNumber", "wiFiMacAddress", "ethernetMacAddress",
	"userPrincipalName", "emailAddress", "complianceState", "lastSyncDateTime",
}, ",")

// Provider looks devices up in Intune.
type Provider struct {
	name    string
	client  *providers.Client
	base    *url.URL // Graph host (and any path prefix), no version
	apiRoot string   // base + "/" + apiVersion
	scorer  scorer
	http    providers.HTTPConfig
	budget  *budget
	logger  *slog.Logger
	// onRetry, when set (tests), sees every retry and its wait, including
	// the retries of throttled $batch items.
	onRetry func(status int, wait time.Duration)
}

// New builds a provider from a defaulted, validated config. It does no I/O.
func New(cfg *Config, deps providers.Deps) (*Provider, error) {
	logger := logging.OrDiscard(deps.Logger)
	base, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("%s: base_url: %w", cfg.Name, err)
	}
	p := &Provider{
		name:    cfg.Name,
		base:    base,
		apiRoot: base.String() + "/" + apiVersion,
		scorer:  newScorer(cfg),
		http:    cfg.HTTPConfig,
		budget:  newBudget(appRequestLimit, throttleWindow),
		logger:  logger,
	}
	fetch := providers.ClientCredentials(cfg.TokenURL, cfg.ClientID, cfg.ClientSecret, []string{cfg.Scope}, nil, cfg.HTTPConfig)
	p.client, err = providers.NewClient(providers.ClientOptions{
		Provider:        cfg.Name,
		HTTP:            cfg.HTTPConfig,
		Token:           providers.NewTokenSource(fetch, tokenEarly),
		RetryAfter:      retryAfter,
		OnRetry:         p.retried,
		ObserveResponse: deps.ObserveResponse,
		Logger:          logger,
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// retried is told of every retry and its wait. Graph throttles the app,
// not a request: after a 429 every request of the provider waits.
func (p *Provider) retried(status int, wait time.Duration) {
	if status == http.StatusTooManyRequests {
		p.budget.pause(p.budget.now().Add(wait))
	}
	if p.onRetry != nil {
		p.onRetry(status, wait)
	}
}

// retryAfter reads Graph's wait signal: Retry-After in seconds, sometimes
// fractional, which the standard parser reads. Intune also throttles
// without one (Microsoft Q&A 5784629); a retry before the 20 s window has
// moved on is throttled again, so that 429 means the whole window.
func retryAfter(resp *http.Response) (time.Duration, bool) {
	if d, ok := providers.StandardRetryAfter(resp); ok {
		return d, true
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		return throttleWindow, true
	}
	return 0, false
}

// send makes one Graph request within the budget, where a GET costs one
// request and a $batch one per item, and decodes its 2xx JSON answer into
// out. A 429 without Retry-After, which the client hands back rather than
// wait the window out, is re-sent once the window has passed, bounded by
// ctx and retry_max; every 429 pauses the provider's other requests too.
func (p *Provider) send(ctx context.Context, op string, req providers.Request, cost int, out any) error {
	for attempt := 0; ; attempt++ {
		if err := p.budget.take(ctx, cost); err != nil {
			return p.wrap(op, err)
		}
		resp, err := p.client.Do(ctx, op, req)
		if err == nil {
			return p.client.DecodeJSON(op, resp.Body, out)
		}
		var rl *providers.RateLimitedError
		if resp == nil || resp.Status != http.StatusTooManyRequests || !errors.As(err, &rl) {
			return err
		}
		_, said := providers.StandardRetryAfter(&http.Response{Header: resp.Header})
		if said || attempt >= p.http.RetryMax {
			p.budget.pause(p.budget.now().Add(rl.RetryAfter))
			return err
		}
		p.retried(http.StatusTooManyRequests, rl.RetryAfter)
	}
}

// clause is how one identifier kind is asked of Graph.
type clause struct {
	// filter builds the $filter for one normalised value.
	filter func(v string) string
	// satisfied reports whether Graph's answer honours the filter for v;
	// an answer that does not means Graph ignored the filter.
	satisfied func(d *device, v string) bool
	prop      string
}

// clauses per kind. Graph filters managedDevices on serialNumber,
// deviceName and userPrincipalName; "or"/"in" are unreliable there
// (microsoft/Intune-PowerShell-SDK#109), hence one value per clause.
var clauses = map[providers.Kind]clause{
	providers.KindSerial: {
		prop:   "serialNumber",
		filter: func(v string) string { return "serialNumber eq " + odataString(v) },
		satisfied: func(d *device, v string) bool {
			return strings.EqualFold(strings.TrimSpace(d.SerialNumber), v)
		},
	},
	// Device names may be fully qualified (mbp-42.corp.example) while the
	// query is the short name, so ask by prefix: it finds "mbp-42" and
	// "mbp-42.corp.example" in one clause. Longer names sharing the
	// prefix ("mbp-420") come back too, and, as managedDevices is reported
	// to take startswith for contains (microsoft-graph-docs#11809, #21956),
	// names containing it ("lab-mbp-42"): Lookup drops both. Only a name
	// without the value anywhere in it shows an ignored filter.
	providers.KindHostname: {
		prop:   "deviceName",
		filter: func(v string) string { return "startswith(deviceName," + odataString(v) + ")" },
		satisfied: func(d *device, v string) bool {
			return strings.Contains(strings.ToLower(d.DeviceName), v)
		},
	},
	providers.KindEmail: {
		prop:   "userPrincipalName",
		filter: func(v string) string { return "userPrincipalName eq " + odataString(v) },
		satisfied: func(d *device, v string) bool {
			return strings.EqualFold(strings.TrimSpace(d.UserPrincipalName), v)
		},
	},
}

// errFilterIgnored means Graph answered a filtered query with devices that
// do not match the filter, as it does for filters it silently ignores.
var errFilterIgnored = errors.New("graph ignored the $filter and returned unrelated devices")

// Supports reports whether Lookup can query by k.
func (p *Provider) Supports(k providers.Kind) bool {
	_, ok := clauses[k]
	return ok
}

// Lookup returns the managed devices carrying any of q.Values as a q.Kind
// identifier: one $filter clause per value, 20 clauses per $batch, batches
// in parallel, every page of every clause. Values Graph refuses fail alone:
// the records of the others come back with a *providers.PartialError
// naming them.
func (p *Provider) Lookup(ctx context.Context, q providers.Query) ([]providers.Record, error) {
	op := "lookup " + q.Kind.String()
	c, ok := clauses[q.Kind]
	if !ok {
		return nil, p.wrap(op, fmt.Errorf("graph cannot filter managed devices by %s, use mode: sync to match on it: %w", q.Kind, providers.ErrUnsupportedKind))
	}
	values := slices.Compact(slices.Sorted(slices.Values(q.Values)))
	values = slices.DeleteFunc(values, func(v string) bool { return v == "" })
	if len(values) == 0 {
		return nil, nil
	}
	chunks := slices.Collect(slices.Chunk(values, maxBatchRequests))
	found := make([][]providers.Record, len(chunks))
	partial := make([]error, len(chunks))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(p.http.MaxConcurrency)
	for i, chunk := range chunks {
		g.Go(func() error {
			recs, err := p.lookupChunk(gctx, op, c, chunk)
			var pe *providers.PartialError
			if err != nil && !errors.As(err, &pe) {
				return err
			}
			found[i], partial[i] = recs, err
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	want := make(map[string]bool, len(values))
	for _, v := range values {
		want[v] = true
	}
	var out []providers.Record
	seen := map[string]bool{}
	for _, recs := range found {
		for _, rec := range recs {
			// Keep only devices carrying a requested value (a prefix query
			// also finds longer names, and names containing it), once
			// each (two prefixes or two emails can find one device).
			if seen[rec.ID] || !slices.ContainsFunc(rec.Identifiers(q.Kind), func(v string) bool { return want[v] }) {
				continue
			}
			seen[rec.ID] = true
			out = append(out, rec)
		}
	}
	return out, providers.JoinPartial(partial...)
}

// lookupChunk looks one chunk up in one $batch. When Graph refuses the
// whole $batch, providers.Isolate splits it down to the values it refuses;
// items Graph refuses on their own fail just their values.
func (p *Provider) lookupChunk(ctx context.Context, op string, c clause, values []string) ([]providers.Record, error) {
	var refused []string
	var refusal error
	recs, err := providers.Isolate(ctx, values, func(ctx context.Context, vals []string) ([]providers.Record, error) {
		res, err := p.batch(ctx, op, c, vals)
		if err != nil {
			return nil, err
		}
		refused = append(refused, res.refused...)
		if refusal == nil {
			refusal = res.refusal
		}
		recs := make([]providers.Record, 0, len(res.devs))
		for i := range res.devs {
			rec, err := p.record(&res.devs[i])
			if err != nil {
				return nil, p.wrap(op, err)
			}
			recs = append(recs, rec)
		}
		return recs, nil
	})
	if len(refused) > 0 {
		err = providers.JoinPartial(err, &providers.PartialError{Values: refused, Err: refusal})
	}
	return recs, err
}

// List crawls every managed device, 1000 a page, for sync mode. It is the
// only way to match Intune devices by MAC address.
func (p *Provider) List(ctx context.Context) ([]providers.Record, error) {
	const op = "list managed devices"
	first := fmt.Sprintf("%s%s?$select=%s&$top=%d", p.apiRoot, managedDevicesPath, selectFields, listPageSize)
	devs, err := p.pages(ctx, op, first, nil, 0)
	if err != nil {
		return nil, err
	}
	out := make([]providers.Record, 0, len(devs))
	for i := range devs {
		rec, err := p.record(&devs[i])
		if err != nil {
			return nil, p.wrap(op, err)
		}
		out = append(out, rec)
	}
	return out, nil
}

// pages GETs link and every @odata.nextLink after it, at most limit pages
// (0: no limit; past it the rest is dropped with a warning). check, if set,
// vets every page's devices (see errFilterIgnored).
func (p *Provider) pages(ctx context.Context, op, link string, check func(*page) error, limit int) ([]device, error) {
	var out []device
	seen := map[string]bool{}
	for n := 0; link != ""; n++ {
		if limit > 0 && n == limit {
			p.logger.LogAttrs(ctx, slog.LevelWarn, "too many devices for one lookup key, keeping the first pages",
				slog.String("op", op), slog.Int("devices", len(out)))
			break
		}
		if seen[link] {
			return nil, p.wrap(op, errors.New("graph returned a nextLink loop"))
		}
		seen[link] = true
		var pg page
		if err := p.send(ctx, op, providers.Request{Method: http.MethodGet, URL: link}, 1, &pg); err != nil {
			return nil, err
		}
		if check != nil {
			if err := check(&pg); err != nil {
				return nil, p.wrap(op, err)
			}
		}
		out = append(out, pg.Value...)
		next, err := p.nextLink(pg.NextLink)
		if err != nil {
			return nil, p.wrap(op, err)
		}
		link = next
	}
	return out, nil
}

// nextLink vets an @odata.nextLink before following it verbatim: it must
// point at the configured Graph host, or the bearer token would go with it
// to wherever it points.
func (p *Provider) nextLink(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() {
		return "", errors.New("graph returned an unusable @odata.nextLink")
	}
	if !strings.EqualFold(u.Scheme, p.base.Scheme) || !strings.EqualFold(u.Host, p.base.Host) {
		return "", fmt.Errorf("graph returned an @odata.nextLink to another host (%s), refusing to follow it", u.Host)
	}
	return raw, nil
}

// record maps a managed device to a normalised, scored record.
func (p *Provider) record(d *device) (providers.Record, error) {
	if d.ID == "" {
		return providers.Record{}, errors.New("graph returned a managed device without an id")
	}
	last, err := parseGraphTime(d.LastSyncDateTime)
	if err != nil {
		return providers.Record{}, fmt.Errorf("device %s: lastSyncDateTime: %w", d.ID, err)
	}
	score, reason := p.scorer.score(d.ComplianceState)
	rec := providers.Record{
		ID:        d.ID,
		Serials:   []string{d.SerialNumber},
		MACs:      []string{d.WiFiMacAddress, d.EthernetMacAddress},
		Hostnames: []string{d.DeviceName},
		Emails:    append([]string{d.UserPrincipalName}, splitEmails(d.EmailAddress)...),
		LastSeen:  last,
		Score:     score,
		Reason:    reason,
	}
	rec.Normalize()
	return rec, nil
}

// splitEmails splits emailAddress, "Email(s) for the user", on the
// separators a list of addresses may use.
func splitEmails(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == ',' || r == ' ' })
}

// parseGraphTime reads a DateTimeOffset (RFC 3339 with up to 7 fractional
// digits). Graph's "never" sentinels, 0001-01-01 and 9999-12-31, mean
// unknown: a zero time.
func parseGraphTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	if t.Year() <= 1 || t.Year() >= 9999 {
		return time.Time{}, nil
	}
	return t, nil
}

// odataString quotes v as an OData string literal, doubling any single
// quote inside.
func odataString(v string) string {
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}

// queryEscape escapes a $filter value for a query string: %20 for spaces,
// which every OData parser reads (a '+' is not always taken for a space),
// and percent-escapes for everything but the unreserved characters and
// those RFC 3986 allows in a query that OData filters are written with
// (quotes, parentheses, commas, colons and the '@' of addresses), so that
// the filter goes out as people write it.
func queryEscape(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~'(),:@", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

func (p *Provider) wrap(op string, err error) error {
	return fmt.Errorf("%s: %s: %w", p.name, op, err)
}

package intune

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/postured/postured/providers"
)

// device is the $select-ed part of a Graph managedDevice.
type device struct {
	ID                 string `json:"id"`
	DeviceName         string `json:"deviceName"`
	SerialNumber       string `json:"serialNumber"`
	WiFiMacAddress     string `json:"wiFiMacAddress"`
	EthernetMacAddress string `json:"ethernetMacAddress"`
	UserPrincipalName  string `json:"userPrincipalName"`
	EmailAddress       string `json:"emailAddress"`
	ComplianceState    string `json:"complianceState"`
	LastSyncDateTime   string `json:"lastSyncDateTime"`
}

// page is one page of a managedDevices collection.
type page struct {
	NextLink string   `json:"@odata.nextLink"`
	Value    []device `json:"value"`
}

type batchRequest struct {
	Requests []batchItem `json:"requests"`
}

type batchItem struct {
	ID     string `json:"id"`
	Method string `json:"method"`
	URL    string `json:"url"`
}

type batchResponse struct {
	Responses []batchAnswer `json:"responses"`
}

type batchAnswer struct {
	ID      string            `json:"id"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body"`
}

// graphError is Graph's error body.
type graphError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// batchResult is what one $batch found: the devices of the values Graph
// answered, and the values whose request Graph refused (400 and kin, see
// providers.Rejected) with the first refusal.
type batchResult struct {
	devs    []device
	refused []string
	refusal error
}

// batch asks Graph for every value of one chunk (at most 20) in one $batch,
// follows each clause's pages, and re-sends the items Graph throttled or
// failed transiently, up to retry_max times: after the wait Graph asks for,
// or the rest of the throttle window when a 429 does not say. An item Graph
// refuses fails only its value; any other failure fails the chunk.
func (p *Provider) batch(ctx context.Context, op string, c clause, values []string) (batchResult, error) {
	pending := make(map[string]string, len(values)) // batch item id -> value
	for i, v := range values {
		pending[strconv.Itoa(i+1)] = v
	}
	var res batchResult
	for attempt := 0; ; attempt++ {
		req := batchRequest{Requests: make([]batchItem, 0, len(pending))}
		for i := 1; i <= len(values); i++ {
			id := strconv.Itoa(i)
			if v, ok := pending[id]; ok {
				req.Requests = append(req.Requests, batchItem{ID: id, Method: http.MethodGet, URL: itemURL(c, v)})
			}
		}
		body, err := json.Marshal(req)
		if err != nil {
			return batchResult{}, p.wrap(op, fmt.Errorf("encode request: %w", err))
		}
		var resp batchResponse
		post := providers.Request{Method: http.MethodPost, URL: p.apiRoot + "/$batch", Body: body,
			Header: http.Header{"Content-Type": {"application/json"}}}
		if err := p.send(ctx, op, post, len(req.Requests), &resp); err != nil {
			return batchResult{}, err
		}
		retry := map[string]string{}
		var wait time.Duration
		var lastErr error
		retryStatus := 0
		throttled := false
		unsaid := false // a 429 without Retry-After
		answered := map[string]bool{}
		for _, a := range resp.Responses {
			v, ok := pending[a.ID]
			if !ok || answered[a.ID] {
				return batchResult{}, p.wrap(op, fmt.Errorf("$batch answered unknown or repeated item id %q", a.ID))
			}
			answered[a.ID] = true
			switch {
			case a.Status >= 200 && a.Status < 300:
				devs, err := p.clausePages(ctx, op, c, v, a.Body)
				if err != nil {
					return batchResult{}, err
				}
				res.devs = append(res.devs, devs...)
			case retryableItem(a.Status):
				retry[a.ID] = v
				lastErr = itemError(a)
				retryStatus = max(retryStatus, a.Status)
				throttled = throttled || a.Status == http.StatusTooManyRequests
				if d, ok := itemRetryAfter(a.Headers); ok {
					wait = max(wait, d)
				} else if a.Status == http.StatusTooManyRequests {
					unsaid = true
				}
			case providers.Rejected(itemError(a)):
				res.refused = append(res.refused, v)
				if res.refusal == nil {
					res.refusal = p.wrap(op, fmt.Errorf("$batch item: %w", itemError(a)))
				}
			default:
				return batchResult{}, p.wrap(op, fmt.Errorf("$batch item: %w", itemError(a)))
			}
		}
		if len(answered) != len(pending) {
			return batchResult{}, p.wrap(op, fmt.Errorf("$batch answered %d of %d items", len(answered), len(pending)))
		}
		if len(retry) == 0 {
			return res, nil
		}
		if throttled {
			retryStatus = http.StatusTooManyRequests
		}
		if unsaid {
			// Graph throttled without saying for how long; a retry before
			// the window has moved on is throttled again.
			wait = max(wait, throttleWindow)
		}
		if attempt >= p.http.RetryMax {
			if throttled && wait > 0 {
				// Still throttled: say so, as the client does for requests,
				// and hold the provider's other requests meanwhile.
				p.budget.pause(p.budget.now().Add(wait))
				return batchResult{}, p.wrap(op, &providers.RateLimitedError{RetryAfter: wait})
			}
			return batchResult{}, p.wrap(op, fmt.Errorf("$batch item still failing after %d attempts: %w", attempt+1, lastErr))
		}
		if wait == 0 {
			wait = backoff(p.http, attempt)
		}
		if wait > time.Duration(p.http.RetryWaitMax) && !unsaid {
			// Graph asks for longer than one lookup may wait: hand it back,
			// and hold the provider's other requests meanwhile.
			p.budget.pause(p.budget.now().Add(wait))
			return batchResult{}, p.wrap(op, &providers.RateLimitedError{RetryAfter: wait})
		}
		p.retried(retryStatus, wait)
		p.logger.LogAttrs(ctx, slog.LevelDebug, "retrying failed $batch items",
			slog.String("op", op), slog.Int("items", len(retry)), slog.Int("status", retryStatus), slog.Duration("wait", wait))
		if !throttled {
			// A 429 paused the budget (retried), which the next send waits
			// out; other failures wait here.
			if err := providers.Sleep(ctx, wait); err != nil {
				return batchResult{}, p.wrap(op, err)
			}
		}
		pending = retry
	}
}

// itemURL is one clause's request, relative to the API version as $batch
// wants it.
func itemURL(c clause, v string) string {
	return managedDevicesPath + "?$filter=" + queryEscape(c.filter(v)) + "&$select=" + selectFields
}

// clausePages decodes a clause's first page (a $batch item body), checks
// Graph honoured the filter, and follows the clause's nextLinks.
func (p *Provider) clausePages(ctx context.Context, op string, c clause, v string, body json.RawMessage) ([]device, error) {
	check := func(pg *page) error {
		for i := range pg.Value {
			if !c.satisfied(&pg.Value[i], v) {
				return fmt.Errorf("%w (filter on %s); use mode: sync for this provider", errFilterIgnored, c.prop)
			}
		}
		return nil
	}
	var first page
	if err := p.client.DecodeJSON(op, body, &first); err != nil {
		return nil, err
	}
	if err := check(&first); err != nil {
		return nil, p.wrap(op, err)
	}
	next, err := p.nextLink(first.NextLink)
	if err != nil {
		return nil, p.wrap(op, err)
	}
	if next == "" {
		return first.Value, nil
	}
	rest, err := p.pages(ctx, op, next, check, maxClausePages-1)
	if err != nil {
		return nil, err
	}
	return append(first.Value, rest...), nil
}

// retryableItem: throttled or transiently failed items are re-sent, like
// the HTTP client retries whole requests (429 and 5xx but 501).
func retryableItem(status int) bool {
	return status == http.StatusTooManyRequests || (status >= 500 && status != http.StatusNotImplemented)
}

// itemRetryAfter reads Retry-After from a $batch item's headers, whose
// names Graph does not case-normalise.
func itemRetryAfter(h map[string]string) (time.Duration, bool) {
	for k, v := range h {
		if strings.EqualFold(k, "Retry-After") {
			return providers.StandardRetryAfter(&http.Response{Header: http.Header{"Retry-After": {v}}})
		}
	}
	return 0, false
}

// itemError describes a failed $batch item by status and Graph error code.
func itemError(a batchAnswer) error {
	var ge graphError
	if json.Unmarshal(a.Body, &ge) == nil && ge.Error.Code != "" {
		return &providers.StatusError{Status: a.Status, Body: providers.Snippet([]byte(ge.Error.Code + ": " + ge.Error.Message))}
	}
	return &providers.StatusError{Status: a.Status}
}

// backoff is the exponential wait before re-sending failed items when Graph
// gave no Retry-After.
func backoff(h providers.HTTPConfig, attempt int) time.Duration {
	d := time.Duration(h.RetryWaitMin) << min(attempt, 16)
	return min(d, time.Duration(h.RetryWaitMax))
}

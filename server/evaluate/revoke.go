package evaluate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/postured/postured/server/evaluate/policy"
)

// maxRevocationsInFlight bounds concurrent revoke_user calls; a denial
// beyond it is not revoked (counted as dropped) rather than queued.
const maxRevocationsInFlight = 16

// revoker calls Cloudflare's revoke_user API after a deny
// (https://developers.cloudflare.com/api/resources/zero_trust/subresources/access/subresources/organizations/methods/revoke_users/,
// as the reference worker's time_of_day_plus_revocation.js does),
// asynchronously so the login answer is not delayed.
type revoker struct {
	endpoint string
	token    string
	timeout  time.Duration
	only     map[string]bool // rule labels that revoke; nil: every deny
	client   *http.Client
	logger   *slog.Logger
	metrics  *metrics

	wg  sync.WaitGroup
	sem chan struct{}
}

func newRevoker(cfg RevokeConfig, client *http.Client, logger *slog.Logger, m *metrics) *revoker {
	r := &revoker{
		endpoint: strings.TrimRight(cfg.BaseURL, "/") + "/accounts/" + url.PathEscape(cfg.AccountID) +
			"/access/organizations/revoke_user",
		token:   cfg.APIToken.Reveal(),
		timeout: time.Duration(cfg.Timeout),
		client:  client,
		logger:  logger,
		metrics: m,
		sem:     make(chan struct{}, maxRevocationsInFlight),
	}
	if len(cfg.Rules) > 0 {
		r.only = map[string]bool{}
		for _, n := range cfg.Rules {
			r.only[n] = true
		}
	}
	return r
}

// afterDeny starts the revocation of d's user, if d's rule revokes.
func (r *revoker) afterDeny(d policy.Decision) {
	if r.only != nil && !r.only[d.RuleLabel()] {
		return
	}
	if d.Email == "" {
		r.metrics.revocations.WithLabelValues("skipped").Inc()
		r.logger.Warn("external evaluation: cannot revoke sessions: the identity has no email",
			"rule", d.RuleLabel(), "device_id", d.DeviceID)
		return
	}
	select {
	case r.sem <- struct{}{}:
	default:
		r.metrics.revocations.WithLabelValues("dropped").Inc()
		r.logger.Warn("external evaluation: too many revocations in flight; not revoking", "email", d.Email)
		return
	}
	r.wg.Add(1)
	go func() {
		defer func() { <-r.sem; r.wg.Done() }()
		// Not the request's context: it ends as soon as the answer is sent.
		ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
		defer cancel()
		if err := r.revoke(ctx, d.Email); err != nil {
			r.metrics.revocations.WithLabelValues("error").Inc()
			r.logger.Error("external evaluation: revoke_user failed", "email", d.Email, "rule", d.RuleLabel(),
				"error", r.redact(err.Error()))
			return
		}
		r.metrics.revocations.WithLabelValues("ok").Inc()
		r.logger.Info("external evaluation: revoked Access sessions", "email", d.Email, "rule", d.RuleLabel())
	}()
}

// revoke POSTs {"email": email} with the API token.
func (r *revoker) revoke(ctx context.Context, email string) error {
	body, err := json.Marshal(map[string]string{"email": email})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+r.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return fmt.Errorf("call: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var answer struct {
		Success *bool `json:"success"`
		Errors  []struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	_ = json.Unmarshal(raw, &answer)
	if resp.StatusCode/100 != 2 || (answer.Success != nil && !*answer.Success) {
		msgs := make([]string, 0, len(answer.Errors))
		for _, e := range answer.Errors {
			msgs = append(msgs, fmt.Sprintf("%d %s", e.Code, e.Message))
		}
		return fmt.Errorf("cloudflare answered %d %v", resp.StatusCode, msgs)
	}
	return nil
}

// redact removes the API token from a message, should an error ever
// carry it.
func (r *revoker) redact(s string) string {
	if r.token == "" {
		return s
	}
	return strings.ReplaceAll(s, r.token, "<redacted>")
}

// wait blocks until every revocation in flight has finished (each is
// bounded by the timeout).
func (r *revoker) wait() { r.wg.Wait() }

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

// pruneAbove is the size of the recent-revocations map past which expired
// entries are swept before adding one (emails come from verified tokens,
// so the map holds at most the users denied within a window).
const pruneAbove = 1024

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
	// window is how long a revoked (or being revoked) email is not revoked
	// again: a user retrying a denied login would otherwise cost a call
	// per attempt, and each call ends every session they have.
	window time.Duration
	now    func() time.Time

	wg  sync.WaitGroup
	sem chan struct{}

	mu     sync.Mutex
	recent map[string]time.Time // lower-cased email -> when its revocation started
}

func newRevoker(cfg RevokeConfig, client *http.Client, logger *slog.Logger, m *metrics, now func() time.Time) *revoker {
	r := &revoker{
		endpoint: strings.TrimRight(cfg.BaseURL, "/") + "/accounts/" + url.PathEscape(cfg.AccountID) +
			"/access/organizations/revoke_user",
		token:   cfg.APIToken.Reveal(),
		timeout: time.Duration(cfg.Timeout),
		client:  client,
		logger:  logger,
		metrics: m,
		window:  time.Duration(cfg.DedupWindow),
		now:     now,
		sem:     make(chan struct{}, maxRevocationsInFlight),
		recent:  map[string]time.Time{},
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
	if !r.claim(d.Email) {
		r.metrics.revocations.WithLabelValues("deduplicated").Inc()
		r.logger.Debug("external evaluation: sessions revoked recently; not revoking again", "email", d.Email, "window", r.window)
		return
	}
	select {
	case r.sem <- struct{}{}:
	default:
		r.forget(d.Email)
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
			r.forget(d.Email) // the next denial tries again
			r.metrics.revocations.WithLabelValues("error").Inc()
			r.logger.Error("external evaluation: revoke_user failed", "email", d.Email, "rule", d.RuleLabel(),
				"error", r.redact(err.Error()))
			return
		}
		r.metrics.revocations.WithLabelValues("ok").Inc()
		r.logger.Info("external evaluation: revoked Access sessions", "email", d.Email, "rule", d.RuleLabel())
	}()
}

// claim records that email's sessions are being revoked now, unless they
// were within the window; it reports whether the caller should revoke.
func (r *revoker) claim(email string) bool {
	key := strings.ToLower(email)
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if at, ok := r.recent[key]; ok && now.Sub(at) < r.window {
		return false
	}
	if len(r.recent) >= pruneAbove {
		for k, at := range r.recent {
			if now.Sub(at) >= r.window {
				delete(r.recent, k)
			}
		}
	}
	r.recent[key] = now
	return true
}

// forget drops email from the window after a revocation that did not
// happen.
func (r *revoker) forget(email string) {
	r.mu.Lock()
	delete(r.recent, strings.ToLower(email))
	r.mu.Unlock()
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

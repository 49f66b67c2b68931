// Package evaluate implements Cloudflare Access External Evaluation: POST
// /evaluate verifies the identity token Access signs for every login,
// decides allow or deny with the configured rules (package policy), and
// answers with a JWT signed by postured's own key ring (package keyring),
// which GET /keys publishes for Access to verify it.
//
// The wire protocol is section B of docs/cloudflare-protocols.md: an
// unverifiable request is refused with 403 and nothing is signed; a deny is a
// signed token with "success": false; the nonce is echoed verbatim.
package evaluate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/internal/logging"
	"github.com/postured/postured/server/access"
	"github.com/postured/postured/server/evaluate/keyring"
	"github.com/postured/postured/server/evaluate/policy"
)

// Timings of the handler.
const (
	// reloadInterval is how often the key ring is re-read from its store
	// (on the next request after it elapsed), so a rotation done by
	// `postured keys rotate` is picked up well within a sane overlap.
	reloadInterval = 30 * time.Second
	// reloadTimeout bounds one key ring reload.
	reloadTimeout = 5 * time.Second
)

// KeySet verifies a compact JWS against the team's Access keys, choosing
// the key by kid and refetching the team's certs on an unknown kid. It is
// satisfied by *access.KeySet and by go-oidc's *oidc.RemoteKeySet.
type KeySet interface {
	VerifySignature(ctx context.Context, jwt string) ([]byte, error)
}

// Options builds a Handler.
type Options struct {
	// Config is the external_evaluation section (New applies Defaults).
	Config Config
	// Keys verifies incoming tokens against the team's Access keys
	// (*access.KeySet, the one the posture endpoint uses). Required:
	// External Evaluation never runs without verification.
	Keys KeySet
	// TeamDomain is access.team_domain: with Config.Issuer unset, an
	// incoming token that carries an iss must carry the team's.
	TeamDomain string
	// Posture gives device scores for score and provider_scores
	// conditions. Nil: those conditions are false.
	Posture policy.PostureSource
	// Logger receives decisions at info and raw JWTs at debug only.
	Logger *slog.Logger
	// Registry receives the metrics. Nil: a private registry.
	Registry prometheus.Registerer
	// Now is the clock (tests inject a fake one). Default: time.Now.
	Now func() time.Time
}

// Handler serves POST /evaluate and GET /keys.
type Handler struct {
	cfg      Config
	policy   *policy.Policy
	teamKeys KeySet
	ring     *keyring.Loaded
	logger   *slog.Logger
	metrics  *metrics
	now      func() time.Time
	revoker  *revoker
	// issuer is the iss a token must carry; issuerRequired says whether a
	// token without iss is refused (only when configured explicitly: Access
	// does not document iss on this token).
	issuer         string
	issuerRequired bool

	nextReload atomic.Int64 // unix nanoseconds
}

// New validates the configuration, makes sure a signing key exists
// (generating and storing one at first start), loads the ring and builds
// the handler. ctx bounds the startup I/O only.
func New(ctx context.Context, o Options) (*Handler, error) {
	cfg := o.Config
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("external_evaluation: %w", err)
	}
	if o.Keys == nil {
		return nil, errors.New("external_evaluation: the team's Access key set is required (access.insecure_skip_verify cannot be combined with external_evaluation)")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.Logger = logging.OrDiscard(o.Logger)
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	pol, err := policy.New(cfg.Policy, o.Posture)
	if err != nil {
		return nil, fmt.Errorf("external_evaluation: %w", err)
	}
	m, err := newMetrics(o.Registry)
	if err != nil {
		return nil, fmt.Errorf("external_evaluation: metrics: %w", err)
	}
	h := &Handler{cfg: cfg, policy: pol, teamKeys: o.Keys, logger: o.Logger, metrics: m, now: o.Now}
	switch {
	case cfg.Issuer != "":
		h.issuer, _ = access.TeamIssuer(cfg.Issuer) // validated above
		h.issuerRequired = true
	case o.TeamDomain != "":
		if h.issuer, err = access.TeamIssuer(o.TeamDomain); err != nil {
			return nil, fmt.Errorf("external_evaluation: %w", err)
		}
	}
	for _, r := range cfg.Policy.Rules {
		m.decisions.WithLabelValues(r.Action, r.Name)
	}
	m.decisions.WithLabelValues(policy.ActionDeny, policy.DefaultRule)
	m.decisions.WithLabelValues("error", policy.NoRule)
	if cfg.Revoke.Enabled {
		hc := &http.Client{Timeout: time.Duration(cfg.Revoke.Timeout)}
		h.revoker = newRevoker(cfg.Revoke, hc, o.Logger, m, o.Now)
	}
	if h.ring, err = keyring.Load(ctx, cfg.Keyring, h.now()); err != nil {
		if errors.Is(err, keyring.ErrNoSigningKey) {
			return nil, fmt.Errorf("external_evaluation: %w", err)
		}
		return nil, fmt.Errorf("external_evaluation: signing key: %w", err)
	}
	h.nextReload.Store(h.now().Add(reloadInterval).UnixNano())
	signer, _ := h.ring.Publish(h.now())
	h.logger.Info("external evaluation ready", "kid", signer.ID, "keys", len(h.ring.Ring().Keys),
		"rules", len(cfg.Policy.Rules), "key_store", cfg.Keyring.KeyStore)
	return h, nil
}

// Register adds POST /evaluate, GET /keys and GET /keys/ to r.
func (h *Handler) Register(r gin.IRouter) {
	r.POST("/evaluate", gin.WrapF(h.serveEvaluate))
	r.GET("/keys", gin.WrapF(h.serveKeys))
	r.GET("/keys/", gin.WrapF(h.serveKeys))
}

// Close waits for revocations in flight and closes the key store. Call it
// after the HTTP server has stopped.
func (h *Handler) Close() error {
	if h.revoker != nil {
		h.revoker.wait()
	}
	return h.ring.Close()
}

// reload reads the key ring from its store now. On error the previous ring
// stays in use.
func (h *Handler) reload(ctx context.Context) error {
	err := h.ring.Reload(ctx)
	result := "ok"
	if err != nil {
		result = "error"
	}
	h.metrics.keyReloads.WithLabelValues(result).Inc()
	return err
}

// KeyRingStatus is the key ring's line in /readyz. It stays ready while the
// store has lost the ring (the server signs with the keys it holds, and
// taking every replica out would stop all evaluations), but says so.
func (h *Handler) KeyRingStatus() aggregate.Status {
	st := aggregate.Status{Ready: true, Records: len(h.ring.Ring().Keys)}
	if h.ring.Missing() {
		st.LastError = "signing key ring missing from its store: run `postured keys init -c FILE`"
	}
	return st
}

// maybeReload reloads the ring if reloadInterval has passed since the last
// attempt. One request does it; the others go on with the current ring.
func (h *Handler) maybeReload(ctx context.Context) {
	now := h.now()
	next := h.nextReload.Load()
	if now.UnixNano() < next || !h.nextReload.CompareAndSwap(next, now.Add(reloadInterval).UnixNano()) {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reloadTimeout)
	defer cancel()
	if err := h.reload(ctx); errors.Is(err, keyring.ErrNoSigningKey) {
		h.logger.Error("external evaluation: signing key ring missing from its store", "error", err)
	} else if err != nil {
		h.logger.Warn("external evaluation: key ring reload failed; keeping the previous ring", "error", err)
	}
}

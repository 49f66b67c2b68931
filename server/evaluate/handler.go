package evaluate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"
	_ "time/tzdata" // time zones for rules in distroless and scratch images

	"github.com/postured/postured/server/access"
)

// Limits of the endpoints.
const (
	// MaxBodyBytes bounds a /evaluate request. An Access identity token is a
	// few KB, but identity providers that send hundreds of groups make it
	// grow; refusing a real login for its size would lock the user out.
	MaxBodyBytes = 256 << 10
	// DefaultReloadInterval is how often the key ring is re-read from its
	// store, so a rotation done by `postured keys rotate` is picked up.
	DefaultReloadInterval = 30 * time.Second
	// verifyTimeout bounds the incoming token check, a certs fetch included.
	verifyTimeout = 10 * time.Second
	// reloadTimeout bounds one key ring reload.
	reloadTimeout = 5 * time.Second
)

// Options builds a Handler.
type Options struct {
	// Config is the external_evaluation section (New applies Defaults).
	Config Config
	// Keys verifies incoming tokens against the team's Access keys
	// (*access.KeySet, the one the posture endpoint uses). Required:
	// External Evaluation never runs without verification.
	Keys KeySet
	// Posture gives device scores for score and provider_scores
	// conditions. Nil: those conditions are false.
	Posture PostureSource
	// Store holds the signing key ring. Nil: OpenKeyStore(Config), closed
	// by Close.
	Store KeyStore
	// Logger receives decisions at info and raw JWTs at debug only.
	Logger *slog.Logger
	// Registry receives the metrics. Nil: a private registry.
	Registry prometheus.Registerer
	// Now is the clock (tests inject a fake one). Default: time.Now.
	Now func() time.Time
	// HTTPClient calls Cloudflare's API for revocation. Default: a client
	// with Config.Revoke.Timeout.
	HTTPClient *http.Client
	// ReloadInterval is how often the key ring is re-read (on the next
	// request after it elapsed). Default: 30s.
	ReloadInterval time.Duration
}

// Handler serves POST /evaluate and GET /keys.
type Handler struct {
	cfg       Config
	policy    *Policy
	keys      KeySet
	store     KeyStore
	ownsStore bool
	logger    *slog.Logger
	metrics   *metrics
	now       func() time.Time
	revoker   *revoker
	issuer    string
	grace     time.Duration
	interval  time.Duration

	state      atomic.Pointer[keyState]
	reloadMu   sync.Mutex // one reload at a time
	nextReload atomic.Int64
}

// keyState is the ring as last loaded, ready to serve.
type keyState struct {
	ring   Ring
	loaded map[string]*loadedKey
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
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.ReloadInterval <= 0 {
		o.ReloadInterval = DefaultReloadInterval
	}
	policy, err := NewPolicy(cfg.Rules, o.Posture, time.Duration(cfg.PostureDeadline))
	if err != nil {
		return nil, fmt.Errorf("external_evaluation: %w", err)
	}
	m, err := newMetrics(o.Registry)
	if err != nil {
		return nil, fmt.Errorf("external_evaluation: metrics: %w", err)
	}
	h := &Handler{
		cfg: cfg, policy: policy, keys: o.Keys, store: o.Store, logger: o.Logger, metrics: m, now: o.Now,
		grace: time.Duration(cfg.RotationGrace), interval: o.ReloadInterval,
	}
	if cfg.Issuer != "" {
		h.issuer, _ = access.TeamIssuer(cfg.Issuer) // validated above
	}
	if h.store == nil {
		if h.store, err = OpenKeyStore(cfg); err != nil {
			return nil, err
		}
		h.ownsStore = true
	}
	for _, r := range cfg.Rules {
		m.decisions.WithLabelValues(r.Action, r.Name)
	}
	m.decisions.WithLabelValues(actionDeny, defaultRule)
	m.decisions.WithLabelValues("error", noRule)
	if cfg.Revoke.Enabled {
		hc := o.HTTPClient
		if hc == nil {
			hc = &http.Client{Timeout: time.Duration(cfg.Revoke.Timeout)}
		}
		h.revoker = newRevoker(cfg.Revoke, hc, o.Logger, m)
	}
	ring, err := EnsureKey(ctx, h.store, h.now())
	if err != nil {
		h.closeStore()
		return nil, fmt.Errorf("external_evaluation: signing key: %w", err)
	}
	if err := h.install(ring); err != nil {
		h.closeStore()
		return nil, fmt.Errorf("external_evaluation: signing key: %w", err)
	}
	h.nextReload.Store(h.now().Add(h.interval).UnixNano())
	if signer, ok := ring.Signer(h.now()); ok {
		h.logger.Info("external evaluation ready", "kid", signer.ID, "keys", len(ring.Keys), "rules", len(cfg.Rules),
			"key_store", cfg.KeyStore)
	}
	return h, nil
}

// Register adds POST /evaluate, GET /keys and GET /keys/ to r.
func (h *Handler) Register(r gin.IRouter) {
	r.POST("/evaluate", gin.WrapF(h.ServeEvaluate))
	r.GET("/keys", gin.WrapF(h.ServeKeys))
	r.GET("/keys/", gin.WrapF(h.ServeKeys))
}

// Close waits for revocations in flight and closes a store New opened.
// Call it after the HTTP server has stopped.
func (h *Handler) Close() error {
	if h.revoker != nil {
		h.revoker.wait()
	}
	return h.closeStore()
}

func (h *Handler) closeStore() error {
	if h.ownsStore {
		return h.store.Close()
	}
	return nil
}

// ---- key ring ----

// Reload reads the key ring from the store now. On error the previous
// ring stays in use.
func (h *Handler) Reload(ctx context.Context) error {
	h.reloadMu.Lock()
	defer h.reloadMu.Unlock()
	ring, err := h.store.Load(ctx)
	if err == nil && len(ring.Keys) == 0 {
		err = errors.New("the key store holds no signing key")
	}
	if err == nil {
		err = h.install(ring)
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	h.metrics.keyReloads.WithLabelValues(result).Inc()
	return err
}

// install makes ring the one served, reusing already loaded keys.
func (h *Handler) install(ring Ring) error {
	prev := h.state.Load()
	st := &keyState{ring: ring, loaded: make(map[string]*loadedKey, len(ring.Keys))}
	for _, k := range ring.Keys {
		if prev != nil {
			if lk, ok := prev.loaded[k.ID]; ok {
				lk2 := *lk
				lk2.SigningKey = k // schedule may have changed
				st.loaded[k.ID] = &lk2
				continue
			}
		}
		lk, err := loadKey(k)
		if err != nil {
			return err
		}
		st.loaded[k.ID] = lk
	}
	h.state.Store(st)
	return nil
}

// maybeReload reloads the ring if ReloadInterval has passed since the last
// attempt. One request does it; the others go on with the current ring.
func (h *Handler) maybeReload(ctx context.Context) {
	now := h.now()
	next := h.nextReload.Load()
	if now.UnixNano() < next || !h.nextReload.CompareAndSwap(next, now.Add(h.interval).UnixNano()) {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reloadTimeout)
	defer cancel()
	if err := h.Reload(ctx); err != nil {
		h.logger.Warn("external evaluation: key ring reload failed; keeping the previous ring", "error", err)
	}
}

// current returns the key state and the signer at now.
func (h *Handler) current(now time.Time) (*keyState, *loadedKey, error) {
	st := h.state.Load()
	signer, ok := st.ring.Signer(now)
	if !ok {
		return nil, nil, errors.New("no signing key")
	}
	return st, st.loaded[signer.ID], nil
}

// ---- GET /keys ----

type certEntry struct {
	Kid  string `json:"kid"`
	Cert string `json:"cert"`
}

type keysDocument struct {
	Keys        []jose.JSONWebKey `json:"keys"`
	PublicCert  certEntry         `json:"public_cert"`
	PublicCerts []certEntry       `json:"public_certs"`
}

// ServeKeys answers the JWKS of every published key (current, next and
// retiring), plus public_cert (the signer) and public_certs as PEM, in the
// shape of Access's own certs endpoint.
func (h *Handler) ServeKeys(w http.ResponseWriter, r *http.Request) {
	h.maybeReload(r.Context())
	now := h.now()
	st, signer, err := h.current(now)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "no signing key is available")
		return
	}
	doc := keysDocument{Keys: []jose.JSONWebKey{}, PublicCerts: []certEntry{},
		PublicCert: certEntry{Kid: signer.ID, Cert: signer.certPEM}}
	for _, k := range st.ring.Published(now, h.grace) {
		lk := st.loaded[k.ID]
		doc.Keys = append(doc.Keys, lk.jwk)
		doc.PublicCerts = append(doc.PublicCerts, certEntry{Kid: lk.ID, Cert: lk.certPEM})
	}
	b, err := json.Marshal(doc)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encode keys")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// ---- POST /evaluate ----

// requestError is a refusal: status and a message safe to send.
type requestError struct {
	status int
	msg    string
	cause  error // logged, not sent
}

func (e *requestError) Error() string { return e.msg }

func refuse(msg string, cause error) *requestError {
	return &requestError{status: http.StatusForbidden, msg: msg, cause: cause}
}

// ServeEvaluate verifies the Access token in the body, decides with the
// rules and answers a signed {"success", "iat", "exp", "nonce"} token. A
// request whose token cannot be verified (or carries no nonce) gets 403
// JSON and nothing is signed.
func (h *Handler) ServeEvaluate(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	h.maybeReload(ctx)
	claims, err := h.readRequest(w, r)
	if err != nil {
		h.refused(ctx, w, err)
		return
	}
	now := h.now()
	d := h.policy.Decide(ctx, claims.identity, now)
	_, signer, err := h.current(now)
	if err != nil {
		h.refused(ctx, w, &requestError{status: http.StatusInternalServerError, msg: "no signing key is available", cause: err})
		return
	}
	token, err := sign(signer, d.Allow, now, claims.nonce)
	if err != nil {
		h.refused(ctx, w, &requestError{status: http.StatusInternalServerError, msg: "could not sign the response", cause: err})
		return
	}
	h.metrics.decisions.WithLabelValues(d.Result(), d.RuleLabel()).Inc()
	h.logDecision(ctx, d, signer.ID)
	if h.logger.Enabled(ctx, slog.LevelDebug) {
		h.logger.DebugContext(ctx, "external evaluation: outgoing JWT", "jwt", token)
	}
	if !d.Allow && h.revoker != nil {
		h.revoker.afterDeny(d)
	}
	b, _ := json.Marshal(map[string]string{"token": token})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

func (h *Handler) logDecision(ctx context.Context, d Decision, kid string) {
	rule := d.Rule
	if rule == "" {
		rule = "default deny"
	}
	attrs := []slog.Attr{
		slog.String("result", d.Result()), slog.String("rule", rule),
		slog.String("email", d.Email), slog.String("device_id", d.DeviceID),
	}
	if d.Score != nil {
		attrs = append(attrs, slog.Int("score", *d.Score))
	}
	attrs = append(attrs, slog.String("kid", kid))
	h.logger.LogAttrs(ctx, slog.LevelInfo, "external evaluation", attrs...)
}

func (h *Handler) refused(ctx context.Context, w http.ResponseWriter, err error) {
	var re *requestError
	if !errors.As(err, &re) {
		re = &requestError{status: http.StatusForbidden, msg: "request refused", cause: err}
	}
	h.metrics.decisions.WithLabelValues("error", noRule).Inc()
	attrs := []slog.Attr{slog.Int("status", re.status), slog.String("reason", re.msg)}
	if re.cause != nil {
		attrs = append(attrs, slog.String("error", re.cause.Error()))
	}
	h.logger.LogAttrs(ctx, slog.LevelWarn, "external evaluation refused", attrs...)
	writeError(w, re.status, re.msg)
}

// writeError answers {"success":false,"error":msg}, the reference
// worker's error shape without its stack.
func writeError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(map[string]any{"success": false, "error": msg})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

package evaluate

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/go-jose/go-jose/v4"

	"github.com/postured/postured/server/evaluate/policy"
)

type certEntry struct {
	Kid  string `json:"kid"`
	Cert string `json:"cert"`
}

type keysDocument struct {
	Keys        []jose.JSONWebKey `json:"keys"`
	PublicCert  certEntry         `json:"public_cert"`
	PublicCerts []certEntry       `json:"public_certs"`
}

// serveKeys answers the JWKS of every published key (current, next and
// retiring), plus public_cert (the signer) and public_certs as PEM, in the
// shape of Access's own certs endpoint.
func (h *Handler) serveKeys(w http.ResponseWriter, r *http.Request) {
	h.maybeReload(r.Context())
	signer, published := h.ring.Publish(h.now())
	doc := keysDocument{Keys: []jose.JSONWebKey{}, PublicCerts: []certEntry{},
		PublicCert: certEntry{Kid: signer.ID, Cert: signer.CertPEM}}
	for _, k := range published {
		doc.Keys = append(doc.Keys, k.JWK)
		doc.PublicCerts = append(doc.PublicCerts, certEntry{Kid: k.ID, Cert: k.CertPEM})
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

// serveEvaluate verifies the Access token in the body, decides with the
// rules and answers a signed {"success", "iat", "exp", "nonce"} token. A
// request whose token cannot be verified (or carries no nonce) gets 403
// JSON and nothing is signed.
func (h *Handler) serveEvaluate(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	h.maybeReload(ctx)
	claims, err := h.readRequest(w, r)
	if err != nil {
		h.refused(ctx, w, err)
		return
	}
	now := h.now()
	d := h.policy.Decide(ctx, claims.identity, now)
	token, kid, err := h.sign(d.Allow, now, claims.nonce)
	if err != nil {
		h.refused(ctx, w, &requestError{status: http.StatusInternalServerError, msg: "could not sign the response", cause: err})
		return
	}
	h.metrics.decisions.WithLabelValues(d.Result(), d.RuleLabel()).Inc()
	h.logDecision(ctx, d, kid)
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

func (h *Handler) logDecision(ctx context.Context, d policy.Decision, kid string) {
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
	h.metrics.decisions.WithLabelValues("error", policy.NoRule).Inc()
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

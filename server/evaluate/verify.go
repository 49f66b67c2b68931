package evaluate

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/postured/postured/server/access"
	"github.com/postured/postured/server/evaluate/policy"
)

// Limits of /evaluate.
const (
	// maxBodyBytes bounds a request. An Access identity token is a few KB,
	// but identity providers that send hundreds of groups make it grow;
	// refusing a real login for its size would lock the user out.
	maxBodyBytes = 256 << 10
	// verifyTimeout bounds the incoming token check, a certs fetch included.
	verifyTimeout = 10 * time.Second
	// tokenLifetime is the validity of a response token: exp = iat + 60, as
	// the reference worker signs it (cloudflare-protocols.md B.4).
	tokenLifetime = 60 * time.Second
)

// incoming is what a verified request carries.
type incoming struct {
	nonce    json.RawMessage
	identity policy.Identity
}

// readRequest reads the body and verifies its token: RS256 by a team key
// (kid), exp, and iss/aud when configured; then requires a nonce.
func (h *Handler) readRequest(w http.ResponseWriter, r *http.Request) (*incoming, error) {
	if r.ContentLength > maxBodyBytes {
		return nil, &requestError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("request body larger than %d bytes", maxBodyBytes)}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &requestError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("request body larger than %d bytes", maxBodyBytes)}
		}
		return nil, &requestError{status: http.StatusBadRequest, msg: "could not read the request body", cause: err}
	}
	var req map[string]json.RawMessage
	if err := json.Unmarshal(body, &req); err != nil || req == nil {
		return nil, refuse(`request body must be a JSON object {"token": "<JWT>"}`, err)
	}
	rawTok, ok := req["token"]
	if !ok {
		return nil, refuse(`request body has no "token" field`, nil)
	}
	var tok string
	if err := json.Unmarshal(rawTok, &tok); err != nil {
		return nil, refuse(`"token" must be a string`, nil)
	}
	if h.logger.Enabled(r.Context(), slog.LevelDebug) {
		h.logger.DebugContext(r.Context(), "external evaluation: incoming JWT", "jwt", tok)
	}
	tok, err = normalizeToken(tok)
	if err != nil {
		return nil, refuse(err.Error(), nil)
	}
	ctx, cancel := context.WithTimeout(r.Context(), verifyTimeout)
	defer cancel()
	payload, err := h.verifySignature(ctx, tok)
	if err != nil {
		return nil, err
	}
	return h.checkClaims(payload)
}

// normalizeToken checks the compact form and drops base64 padding, which
// go-jose refuses but the reference worker tolerates (edge case 11). The
// signature is computed over the unpadded form (RFC 7515), so a token
// whose signer padded before signing still fails verification.
func normalizeToken(tok string) (string, error) {
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", errors.New("token is empty")
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", fmt.Errorf("token must have 3 parts, has %d", len(parts))
	}
	for i, p := range parts {
		parts[i] = strings.TrimRight(p, "=")
		if parts[i] == "" {
			return "", errors.New("token has an empty part")
		}
	}
	return strings.Join(parts, "."), nil
}

// verifySignature enforces RS256 and verifies the signature with the
// team's key set (kid selection and refetch on an unknown kid are the key
// set's). It is go-oidc's IDTokenVerifier.verifyJWT without the claim
// decoding that follows it there: that decoding reads nonce as a string and
// would refuse a token whose nonce is another JSON type, which this
// protocol must echo verbatim (edge case 13).
func (h *Handler) verifySignature(ctx context.Context, tok string) ([]byte, error) {
	hdr, err := base64.RawURLEncoding.DecodeString(tok[:strings.IndexByte(tok, '.')])
	if err != nil {
		return nil, refuse("token header is not base64url", err)
	}
	var head struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(hdr, &head); err != nil {
		return nil, refuse("token header is not JSON", err)
	}
	if head.Alg != string(jose.RS256) {
		return nil, refuse(fmt.Sprintf("token must be signed with RS256, not %q", head.Alg), nil)
	}
	jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil, refuse("token is malformed", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, refuse("token must carry exactly one signature", nil)
	}
	payload, err := h.teamKeys.VerifySignature(ctx, tok)
	if err != nil {
		return nil, refuse("token signature does not verify against the team's Access keys", err)
	}
	return payload, nil
}

// checkClaims checks exp (and iss, aud when configured) like the reference
// worker: exp < now is expired, exp == now is valid, no leeway.
func (h *Handler) checkClaims(payload []byte) (*incoming, error) {
	var c map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&c); err != nil || c == nil {
		return nil, refuse("token payload is not a JSON object", err)
	}
	rawExp, ok := c["exp"]
	if !ok || isNull(rawExp) {
		return nil, refuse("token has no exp", nil)
	}
	var exp json.Number
	if err := json.Unmarshal(rawExp, &exp); err != nil {
		return nil, refuse("token exp is not a number", nil)
	}
	// A NumericDate past year 9999 (or negative, or beyond float64) is no
	// real token's: refused rather than taken as "never expires".
	if _, err := access.NumericDate(exp); err != nil {
		return nil, refuse("token exp is out of range", fmt.Errorf("exp %s: %w", exp, err))
	}
	expF, _ := exp.Float64()
	if now := h.now().Unix(); expF < float64(now) {
		return nil, refuse("token expired", fmt.Errorf("exp %s < now %d", exp, now))
	}
	if err := h.checkIssuer(c["iss"]); err != nil {
		return nil, err
	}
	if len(h.cfg.Audience) > 0 && !audienceMatches(c["aud"], h.cfg.Audience) {
		return nil, refuse("token audience does not match external_evaluation.audience", nil)
	}
	nonce, ok := c["nonce"]
	if !ok || isNull(nonce) {
		// Access rejects a response without its nonce; never make one up.
		return nil, refuse("token has no nonce", nil)
	}
	return &incoming{nonce: nonce, identity: policy.IdentityFromClaim(c["identity"])}, nil
}

// checkIssuer requires iss to be the expected issuer: always when
// external_evaluation.issuer is set, and when present otherwise (the team's
// by default; Access does not document whether it sends iss here).
func (h *Handler) checkIssuer(raw json.RawMessage) error {
	if h.issuer == "" || (!h.issuerRequired && (raw == nil || isNull(raw))) {
		return nil
	}
	var iss string
	if err := json.Unmarshal(raw, &iss); err != nil || strings.TrimRight(iss, "/") != h.issuer {
		return refuse("token issuer does not match", fmt.Errorf("iss %s, want %q", raw, h.issuer))
	}
	return nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// audienceMatches reads aud as a string or an array of strings.
func audienceMatches(raw json.RawMessage, want []string) bool {
	var auds []string
	var one string
	if json.Unmarshal(raw, &one) == nil {
		auds = []string{one}
	} else if json.Unmarshal(raw, &auds) != nil {
		return false
	}
	return slices.ContainsFunc(auds, func(a string) bool { return slices.Contains(want, a) })
}

// responseClaims is the signed answer, fields in the reference worker's
// order: success, iat, exp, nonce.
type responseClaims struct {
	Success bool            `json:"success"`
	Iat     int64           `json:"iat"`
	Exp     int64           `json:"exp"`
	Nonce   json.RawMessage `json:"nonce"`
}

// sign builds the response token with the key that signs at now: header
// {"alg":"RS256","kid":...}, exp = iat + 60, the nonce as it came.
func (h *Handler) sign(success bool, now time.Time, nonce json.RawMessage) (token, kid string, err error) {
	iat := now.Unix()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep the nonce's bytes as they came
	if err := enc.Encode(responseClaims{Success: success, Iat: iat, Exp: iat + int64(tokenLifetime/time.Second), Nonce: nonce}); err != nil {
		return "", "", fmt.Errorf("encode claims: %w", err)
	}
	return h.ring.Sign(now, bytes.TrimRight(buf.Bytes(), "\n"))
}

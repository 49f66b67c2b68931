package intunemock

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/postured/postured/internal/mockkit"
)

// serveToken is the Entra ID v2.0 token endpoint for the client credentials
// grant (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow).
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request, tenant string) {
	s.Calls.Inc("token")
	switch fault, ra := s.TokenFaults.Next(false); fault {
	case mockkit.RateLimited:
		w.Header().Set("Retry-After", s.retryAfter(ra))
		s.entraError(w, http.StatusTooManyRequests, "temporarily_unavailable", 50196, "The server temporarily throttled the request.")
		return
	case mockkit.ServerError:
		s.entraError(w, http.StatusInternalServerError, "server_error", 50000, "There was an error issuing a token or an issue with our sign-in service.")
		return
	case mockkit.Malformed:
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write([]byte(`{"token_type":"Bearer","expires_in":`))
		return
	}
	if r.Method != http.MethodPost {
		s.entraError(w, http.StatusMethodNotAllowed, "invalid_request", 900561, fmt.Sprintf("The endpoint only accepts POST requests. Received a %s request.", r.Method))
		return
	}
	if !strings.EqualFold(tenant, s.opts.TenantID) && !strings.EqualFold(tenant, s.opts.TenantDomain) {
		s.entraError(w, http.StatusBadRequest, "invalid_request", 90002, fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.", tenant))
		return
	}
	if err := r.ParseForm(); err != nil {
		s.entraError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
		return
	}
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok {
		id, secret = u, p
	}
	grant, scope := r.PostForm.Get("grant_type"), r.PostForm.Get("scope")
	switch {
	case grant == "":
		s.entraError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
	case grant != "client_credentials":
		s.entraError(w, http.StatusBadRequest, "unsupported_grant_type", 70003, fmt.Sprintf("The app requested an unsupported grant type '%s'.", grant))
	case id == "":
		s.entraError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
	case s.secrets[id] == "":
		s.entraError(w, http.StatusBadRequest, "unauthorized_client", 700016, fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", id, tenant))
	case scope == "":
		s.entraError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'.")
	case resourceScope(scope) == "":
		s.entraError(w, http.StatusBadRequest, "invalid_scope", 1002012, fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", scope))
	case resourceScope(scope) != Scope:
		s.entraError(w, http.StatusBadRequest, "invalid_scope", 70011, fmt.Sprintf("The provided value for the input parameter 'scope' is not valid. The scope %s is not valid.", scope))
	case secret == "":
		s.entraError(w, http.StatusUnauthorized, "invalid_client", 7000216, "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.")
	case secret != s.secrets[id]:
		s.entraError(w, http.StatusUnauthorized, "invalid_client", 7000215, fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", id))
	default:
		tok, ttl := s.tokens.Issue()
		s.mu.Lock()
		s.tokenApp[tok] = id
		s.mu.Unlock()
		secs := int(ttl / time.Second)
		w.Header().Set("Cache-Control", "no-store, no-cache")
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write(marshal(map[string]any{
			"token_type": "Bearer", "expires_in": secs, "ext_expires_in": secs, "access_token": tok,
		}))
	}
}

// oidcScopes are the OpenID Connect scopes Entra ignores in a client
// credentials request. MSAL (microsoft-authentication-library-for-go
// v1.10.1, accesstokens.go AppendDefaultScopes), and so azidentity and
// msgraph-sdk-go, appends them to every token request; its oauth.go quotes
// Entra's AADSTS1002012 for a request that has nothing else.
var oidcScopes = map[string]bool{"openid": true, "offline_access": true, "profile": true}

// resourceScope is a space-separated scope list without the OpenID Connect
// scopes, "" when nothing else was asked for.
func resourceScope(scope string) string {
	var rest []string
	for _, sc := range strings.Fields(scope) {
		if !oidcScopes[sc] {
			rest = append(rest, sc)
		}
	}
	return strings.Join(rest, " ")
}

// entraError renders an Entra ID OAuth error (RFC 6749 §5.2 plus Entra's
// error_codes, trace and correlation ids).
func (s *Server) entraError(w http.ResponseWriter, status int, code string, aadsts int, msg string) {
	now := time.Now().UTC()
	trace, corr := newGUID(), newGUID()
	desc := fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s", aadsts, msg, trace, corr, now.Format("2006-01-02 15:04:05Z"))
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("x-ms-request-id", trace)
	w.WriteHeader(status)
	_, _ = w.Write(marshal(map[string]any{
		"error":             code,
		"error_description": desc,
		"error_codes":       []int{aadsts},
		"timestamp":         now.Format("2006-01-02 15:04:05Z"),
		"trace_id":          trace,
		"correlation_id":    corr,
		"error_uri":         fmt.Sprintf("https://login.microsoftonline.com/error?code=%d", aadsts),
	}))
}

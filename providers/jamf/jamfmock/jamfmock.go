// Package jamfmock is a faithful mock of the parts of the Jamf Pro API that
// postured uses: OAuth client-credentials and legacy basic-auth tokens, the
// server version, the computer inventory (v1-v4, as the configured release
// serves them) and mobile device detail listings with RSQL filters,
// sections, sorting and paging, single-record reads, Tomcat's request size
// limit, and Jamf's error bodies, all pretty-printed the way Jamf's Jackson
// output looks.
// It serves the real paths as if mounted at a Jamf Pro base URL; Jamf
// responses carry no absolute URLs, so the mount prefix does not matter.
package jamfmock

import (
	"crypto/subtle"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postured/postured/internal/mockkit"
)

// Options configures a Server.
type Options struct {
	Computers     []Computer
	MobileDevices []MobileDevice

	// ClientID and ClientSecret are the API client accepted by the OAuth
	// token endpoints; Username and Password the account accepted by the
	// legacy basic-auth token endpoint. Empty disables that way in.
	ClientID     string
	ClientSecret string
	Username     string
	Password     string
	// TokenTTL is the token lifetime; default 20 minutes.
	TokenTTL time.Duration

	// DefaultPageSize is the page-size when none is given (Jamf: 100);
	// MaxPageSize silently caps larger page sizes (default 2000; Jamf
	// documents no maximum, so this is a chosen behaviour to test clients
	// against).
	DefaultPageSize int
	MaxPageSize     int

	// Release is the server played: its version and computer inventory
	// API versions. Default: ReleaseV4.
	Release Release
	// OAuthV1 is how /api/v1/oauth/token answers. Default Served; the
	// Missing* answers play a Jamf Pro older than the versioned token path,
	// where only /api/oauth/token works.
	OAuthV1 MissingRoute
	// MaxHeaderBytes bounds the request line and headers together, as
	// Tomcat's maxHttpHeaderSize does in front of Jamf Pro (default 8192,
	// Tomcat's default: https://tomcat.apache.org/tomcat-9.0-doc/config/http.html);
	// a larger request gets Tomcat's 400. Negative: no limit.
	MaxHeaderBytes int
	// ConcurrencyLimit, when > 0, answers 503 to requests beyond that many
	// in flight (Jamf asks clients for at most 5).
	ConcurrencyLimit int
	// SyntaxError500 answers unparseable filters the way Jamf does for some
	// of them (e.g. unencoded parentheses): 500 with an empty errors array.
	SyntaxError500 bool
	// NoMobilePrivilege makes the mobile device endpoints answer 403, as for
	// an API role without Read Mobile Devices.
	NoMobilePrivilege bool
}

// Server is the mock; it implements http.Handler.
type Server struct {
	// Faults injects failures into the inventory endpoints.
	Faults *mockkit.Faults
	// Calls counts requests per endpoint: "oauthToken", "authToken",
	// "keepAlive", "invalidateToken", "jamfProVersion",
	// "computersInventory", "computer", "mobileDevicesDetail",
	// "mobileDevice"; "notFound" for paths the release does not serve,
	// "missingRoute" for requests to the token path an
	// older release lacks, "headerTooLarge" for requests over
	// MaxHeaderBytes and "rejected" for requests refused by the concurrency
	// limit.
	Calls *mockkit.Counter

	opts     Options
	tokens   *mockkit.Tokens
	mux      *http.ServeMux
	inflight atomic.Int64
	// index narrows inventory filters; drift resets it.
	index inventoryIndex

	mu      sync.Mutex
	revoked map[string]bool // invalidated tokens answer 401 with no errors
}

// New builds a Server over opts.
func New(opts Options) *Server {
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = 20 * time.Minute
	}
	if opts.DefaultPageSize <= 0 {
		opts.DefaultPageSize = 100
	}
	if opts.MaxPageSize <= 0 {
		opts.MaxPageSize = 2000
	}
	if opts.Release.Version == "" && opts.Release.ComputerInventory == nil {
		opts.Release = ReleaseV4
	}
	if opts.MaxHeaderBytes == 0 {
		opts.MaxHeaderBytes = 8192
	}
	s := &Server{
		Faults:  &mockkit.Faults{},
		Calls:   &mockkit.Counter{},
		opts:    opts,
		tokens:  mockkit.NewTokens(opts.TokenTTL),
		mux:     http.NewServeMux(),
		revoked: make(map[string]bool),
	}
	s.mux.HandleFunc("POST /api/oauth/token", s.oauthToken)
	s.mux.HandleFunc("POST /api/v1/oauth/token", s.oauthToken)
	s.mux.HandleFunc("POST /api/v1/auth/token", s.authToken)
	s.mux.HandleFunc("POST /api/v1/auth/keep-alive", s.keepAlive)
	s.mux.HandleFunc("POST /api/v1/auth/invalidate-token", s.invalidateToken)
	s.mux.HandleFunc("GET /api/v1/jamf-pro-version", s.jamfProVersion)
	s.mux.HandleFunc("GET /api/{version}/computers-inventory", s.computersInventory)
	s.mux.HandleFunc("GET /api/{version}/computers-inventory/{id}", s.computer)
	s.mux.HandleFunc("GET /api/{version}/computers-inventory-detail/{id}", s.computer)
	s.mux.HandleFunc("GET /api/v2/mobile-devices/detail", s.mobileDevicesDetail)
	s.mux.HandleFunc("GET /api/v2/mobile-devices/{id}/detail", s.mobileDevice)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { s.notFound(w) })
	return s
}

// ExpireTokens makes every token issued so far expired, as when a token's
// lifetime runs out in the middle of a crawl.
func (s *Server) ExpireTokens() { s.tokens.ExpireAll() }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if limit := s.opts.MaxHeaderBytes; limit > 0 && headerBytes(r) > limit {
		s.Calls.Inc("headerTooLarge")
		headerTooLarge(w)
		return
	}
	if limit := s.opts.ConcurrencyLimit; limit > 0 {
		n := s.inflight.Add(1)
		defer s.inflight.Add(-1)
		if n > int64(limit) {
			s.Calls.Inc("rejected")
			writeError(w, http.StatusServiceUnavailable)
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

// oauthToken is the client-credentials grant. Jamf answers plain (not
// pretty-printed) OAuth JSON here.
func (s *Server) oauthToken(w http.ResponseWriter, r *http.Request) {
	if s.opts.OAuthV1 != Served && r.URL.Path == "/api/v1/oauth/token" {
		s.Calls.Inc("missingRoute")
		s.opts.OAuthV1.answer(w)
		return
	}
	s.Calls.Inc("oauthToken")
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "client_credentials" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok && id == "" {
		id, secret = u, p
	}
	if s.opts.ClientID == "" || !equal(id, s.opts.ClientID) || !equal(secret, s.opts.ClientSecret) {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	tok, ttl := s.tokens.Issue()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": tok,
		"scope":        "api-role:1",
		"token_type":   "Bearer",
		"expires_in":   int(math.Ceil(ttl.Seconds())),
	})
}

func oauthError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code})
}

// authToken is the legacy basic-auth token endpoint.
func (s *Server) authToken(w http.ResponseWriter, r *http.Request) {
	s.Calls.Inc("authToken")
	u, p, ok := r.BasicAuth()
	if !ok || s.opts.Username == "" || !equal(u, s.opts.Username) || !equal(p, s.opts.Password) {
		writeError(w, http.StatusUnauthorized)
		return
	}
	s.writeBearer(w)
}

func (s *Server) writeBearer(w http.ResponseWriter) {
	tok, ttl := s.tokens.Issue()
	writeJSON(w, http.StatusOK, object{{"token", tok}, {"expires", FormatTime(time.Now().Add(ttl))}})
}

// keepAlive issues a new token and invalidates the one presented.
func (s *Server) keepAlive(w http.ResponseWriter, r *http.Request) {
	s.Calls.Inc("keepAlive")
	tok, ok := s.authorize(w, r)
	if !ok {
		return
	}
	s.revoke(tok)
	s.writeBearer(w)
}

func (s *Server) invalidateToken(w http.ResponseWriter, r *http.Request) {
	s.Calls.Inc("invalidateToken")
	tok, ok := s.authorize(w, r)
	if !ok {
		return
	}
	s.revoke(tok)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) revoke(tok string) {
	s.tokens.Revoke(tok)
	s.mu.Lock()
	s.revoked[tok] = true
	s.mu.Unlock()
}

// authorize checks the bearer token; it answers the 401 itself.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	tok := ""
	if len(h) > 7 && (h[:7] == "Bearer " || h[:7] == "bearer ") {
		tok = h[7:]
	}
	s.mu.Lock()
	revoked := s.revoked[tok]
	s.mu.Unlock()
	if revoked {
		writeError(w, http.StatusUnauthorized)
		return "", false
	}
	if valid, _ := s.tokens.Check(tok); !valid {
		writeError(w, http.StatusUnauthorized, apiError{Code: code("INVALID_TOKEN"), Description: "Unauthorized", ID: "0"})
		return "", false
	}
	return tok, true
}

// fault applies an injected fault, reporting whether it answered.
func (s *Server) fault(w http.ResponseWriter, laterPage bool) bool {
	f, retryAfter := s.Faults.Next(laterPage)
	switch f {
	case mockkit.RateLimited:
		// Jamf Pro has no documented rate limit; when a proxy or Jamf Cloud
		// throttles, it is a plain 429 with Retry-After in seconds.
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retryAfter.Seconds()))))
		writeError(w, http.StatusTooManyRequests)
	case mockkit.ServerError:
		writeError(w, http.StatusInternalServerError)
	case mockkit.Malformed:
		w.Header().Set("Content-Type", contentType)
		_, _ = w.Write([]byte("{\n  \"totalCount\" : 1,\n  \"results\" : [ {\n    \"id\" : \"1\",\n"))
	default:
		return false
	}
	return true
}

// notFound answers a path the server does not have.
func (s *Server) notFound(w http.ResponseWriter) {
	s.Calls.Inc("notFound")
	writeError(w, http.StatusNotFound)
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

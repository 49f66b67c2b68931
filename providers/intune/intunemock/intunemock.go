// Package intunemock is a faithful mock of the parts of Microsoft Entra ID
// and Microsoft Graph that postured's Intune provider uses: the client
// credentials token endpoint, deviceManagement/managedDevices (list with
// $filter, $select, $top and $skiptoken paging; get by id) and JSON $batch,
// with Graph's error shapes, bearer checks, throttling and known quirks.
// It serves the real paths as if mounted at the Graph (and login) host.
package intunemock

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/postured/postured/internal/mockkit"
)

// Defaults the mock accepts when Options leave them empty.
const (
	DefaultTenantID     = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	DefaultTenantDomain = "contoso.onmicrosoft.com"
	DefaultClientID     = "4a1aa1d5-c567-49d0-ad0b-cd957a47f842"
	DefaultClientSecret = "mock~Intune.Secret_0123456789abcdefghij" // #nosec G101 -- the mock tenant's published demo secret, valid nowhere else
	// Scope is the only scope the token endpoint grants.
	Scope = "https://graph.microsoft.com/.default"
	// MaxPageSize is Intune's default and maximum managedDevices page.
	MaxPageSize = 1000
	// MaxBatchRequests is Graph's JSON batching limit.
	MaxBatchRequests = 20
)

// Options configures a Server. Zero values take Graph's behaviour.
type Options struct {
	Devices []ManagedDevice
	// TenantID and TenantDomain are the tenant names the token endpoint
	// knows; ClientID/ClientSecret the one app registration.
	TenantID     string
	TenantDomain string
	ClientID     string
	ClientSecret string
	// TokenTTL is the access token lifetime (default 3599s).
	TokenTTL time.Duration
	// PageSize is the server's page size: the default, and the most a
	// $top gets (default and at most 1000, Intune's limit).
	PageSize int
	// ExternalURL, when set, is the absolute URL the mock is reachable at
	// (scheme, host and any mount prefix), used for @odata.nextLink.
	// Otherwise it is derived from each request.
	ExternalURL string
	// Or, UnsupportedFilter, NotFilterable and CaseSensitive shape $filter:
	// see OrMode and UnsupportedMode. NotFilterable lists properties whose
	// filters this tenant treats as unsupported. Comparisons are
	// case-insensitive unless CaseSensitive is set.
	Or                OrMode
	UnsupportedFilter UnsupportedMode
	NotFilterable     []string
	CaseSensitive     bool
	// BatchInOrder answers $batch items in request order; by default they
	// are shuffled (deterministically), as Graph may.
	BatchInOrder bool
	// ThrottleLimit requests per app (each $batch item counts on its own)
	// and TenantThrottleLimit requests of all apps together are served per
	// sliding ThrottleWindow; more get 429. Defaults are Intune's: 2000 per
	// app and 4000 per tenant per 20 s
	// (https://learn.microsoft.com/graph/throttling-limits#intune-service-limits;
	// each batch item counts: https://learn.microsoft.com/graph/json-batching).
	// A negative ThrottleLimit disables throttling, a negative
	// TenantThrottleLimit the tenant-wide limit only.
	ThrottleLimit       int
	TenantThrottleLimit int
	ThrottleWindow      time.Duration
	// Apps are more app registrations of the tenant, besides ClientID:
	// each has its own ThrottleLimit and all share TenantThrottleLimit.
	Apps []App
	// NoRetryAfter answers throttled requests (and $batch items) with 429
	// but no Retry-After, as Intune does at times (Microsoft Q&A 5784629,
	// "The api doesn't return retry-after header"); Graph's guidance is
	// then to back off on one's own
	// (https://learn.microsoft.com/graph/throttling#best-practices-to-handle-throttling).
	NoRetryAfter bool
	// Now is the throttle's clock (default time.Now), for tests that share
	// a fake clock with the client.
	Now func() time.Time
	// StartsWithContains evaluates startswith(...) like contains(...), as
	// managedDevices is reported to do: startswith(deviceName,'C-') lists
	// every device whose name contains "C-" (microsoft-graph-docs#11809,
	// and #21956, still open, for v1.0 and beta).
	StartsWithContains bool
	// MaxFilterLiteral, when positive, refuses with 400 a $filter whose
	// string literal is longer, as Graph refuses a startswith literal of
	// more than 120 characters with a 400 that names neither
	// (microsoft-graph-explorer-v4#2103). In a $batch only that item fails.
	MaxFilterLiteral int
	// DenyPermission answers 403 as for an app without
	// DeviceManagementManagedDevices.Read.All.
	DenyPermission bool
	// EmptyFirstPage makes every listing start with an empty page that
	// still carries a nextLink, which Graph is allowed to do.
	EmptyFirstPage bool
	// FractionalRetryAfter sends Retry-After with millisecond fractions
	// ("19.859"), a quirk some Graph answers have been reported with. By
	// default it is whole seconds, rounded up: see retryAfter.
	FractionalRetryAfter bool
}

// App is one app registration's client credentials.
type App struct {
	ClientID     string
	ClientSecret string
}

// Server is the mock; it implements http.Handler.
type Server struct {
	// Faults are injected into Graph requests (a $batch counts as one),
	// ItemFaults into individual $batch items and TokenFaults into token
	// requests.
	Faults      *mockkit.Faults
	ItemFaults  *mockkit.Faults
	TokenFaults *mockkit.Faults
	// Calls counts requests per endpoint: "token", "managedDevices",
	// "managedDevice" (get by id), "$batch" and "batchItem".
	Calls *mockkit.Counter

	opts     Options
	devices  []ManagedDevice
	byID     map[string]int
	tokens   *mockkit.Tokens
	throttle *throttle
	rules    filterRules
	index    map[string]*strIndex
	// secrets are the client secrets by client id of every app.
	secrets map[string]string

	mu sync.Mutex
	// tokenApp is the client id each token was issued to.
	tokenApp map[string]string
}

// New builds a Server over a copy of opts.Devices.
func New(opts Options) *Server {
	if opts.TenantID == "" {
		opts.TenantID = DefaultTenantID
	}
	if opts.TenantDomain == "" {
		opts.TenantDomain = DefaultTenantDomain
	}
	if opts.ClientID == "" {
		opts.ClientID = DefaultClientID
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = DefaultClientSecret
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = 3599 * time.Second
	}
	if opts.PageSize <= 0 || opts.PageSize > MaxPageSize {
		opts.PageSize = MaxPageSize
	}
	if opts.ThrottleLimit == 0 {
		opts.ThrottleLimit = 2000
	}
	if opts.TenantThrottleLimit == 0 {
		opts.TenantThrottleLimit = 4000
	}
	if opts.ThrottleWindow <= 0 {
		opts.ThrottleWindow = 20 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{
		Faults:      &mockkit.Faults{},
		ItemFaults:  &mockkit.Faults{},
		TokenFaults: &mockkit.Faults{},
		Calls:       &mockkit.Counter{},
		opts:        opts,
		devices:     append([]ManagedDevice(nil), opts.Devices...),
		byID:        make(map[string]int, len(opts.Devices)),
		tokens:      mockkit.NewTokens(opts.TokenTTL),
		rules: filterRules{or: opts.Or, unsupported: opts.UnsupportedFilter, notFilterable: map[string]bool{},
			startsWithContains: opts.StartsWithContains, maxLiteral: opts.MaxFilterLiteral},
		secrets:  map[string]string{opts.ClientID: opts.ClientSecret},
		tokenApp: map[string]string{},
	}
	for _, a := range opts.Apps {
		s.secrets[a.ClientID] = a.ClientSecret
	}
	if opts.ThrottleLimit > 0 {
		s.throttle = newThrottle(opts.ThrottleLimit, opts.TenantThrottleLimit, opts.ThrottleWindow)
	}
	for _, p := range opts.NotFilterable {
		s.rules.notFilterable[strings.ToLower(p)] = true
	}
	s.reindex()
	return s
}

// reindex rebuilds the lookups over s.devices after they change.
func (s *Server) reindex() {
	for i, d := range s.devices {
		s.byID[strings.ToLower(d.ID)] = i
	}
	s.index = make(map[string]*strIndex, len(indexedProps))
	for _, name := range indexedProps {
		s.index[name] = buildIndex(s.devices, lookupProp(name))
	}
}

// ExpireTokens makes every token issued so far expired, as when a token's
// lifetime runs out mid-run.
func (s *Server) ExpireTokens() { s.tokens.ExpireAll() }

// SetTokenTTL changes the lifetime of tokens issued from now on.
func (s *Server) SetTokenTTL(ttl time.Duration) { s.tokens.SetTTL(ttl) }

// ServeHTTP routes Entra and Graph paths.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(segs) == 4 && segs[1] == "oauth2" && segs[2] == "v2.0" && segs[3] == "token" {
		s.serveToken(w, r, segs[0])
		return
	}
	if len(segs) == 0 || (segs[0] != "v1.0" && segs[0] != "beta") {
		http.NotFound(w, r)
		return
	}
	if !s.authorize(w, r) {
		return
	}
	if len(segs) == 2 && segs[1] == "$batch" {
		s.serveBatch(w, r, segs[0])
		return
	}
	s.serveGraph(w, r, false)
}

// serveGraph answers one Graph resource request, directly or as a $batch
// item (inBatch: already authorised, item faults instead of request faults).
func (s *Server) serveGraph(w http.ResponseWriter, r *http.Request, inBatch bool) {
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	version := segs[0]
	var endpoint, id string
	switch {
	case len(segs) == 3 && segs[1] == "deviceManagement" && segs[2] == "managedDevices":
		endpoint = "managedDevices"
	case len(segs) == 4 && segs[1] == "deviceManagement" && segs[2] == "managedDevices":
		endpoint, id = "managedDevice", segs[3]
	case len(segs) == 3 && segs[1] == "deviceManagement" && strings.HasPrefix(segs[2], "managedDevices(") && strings.HasSuffix(segs[2], ")"):
		endpoint = "managedDevice"
		id = strings.Trim(strings.TrimSuffix(strings.TrimPrefix(segs[2], "managedDevices("), ")"), "'")
	default:
		last := segs[len(segs)-1]
		s.graphError(w, r, http.StatusBadRequest, "BadRequest", fmt.Sprintf("Resource not found for the segment '%s'.", last))
		return
	}
	if inBatch {
		s.Calls.Inc(mockkit.BatchItem)
	} else {
		s.Calls.Inc(endpoint)
	}
	if r.Method != http.MethodGet {
		s.graphError(w, r, http.StatusMethodNotAllowed, "BadRequest", "Specified HTTP method is not allowed for the request target.")
		return
	}
	if !s.admit(w, r) {
		return
	}
	faults := s.Faults
	if inBatch {
		faults = s.ItemFaults
	}
	fault, ra := faults.Next(r.URL.Query().Has("$skiptoken"))
	if s.renderFault(w, r, fault, ra, `{"@odata.context":"`) {
		return
	}
	if s.opts.DenyPermission {
		s.forbidden(w, r)
		return
	}
	if endpoint == "managedDevices" {
		s.serveList(w, r, version)
		return
	}
	s.serveGet(w, r, version, id)
}

// appOf is the client id the request's bearer token was issued to.
func (s *Server) appOf(r *http.Request) string {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenApp[strings.TrimSpace(tok)]
}

// authorize checks the bearer token the way Graph does.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || strings.TrimSpace(tok) == "" {
		s.unauthorized(w, r, "Access token is empty.")
		return false
	}
	valid, expired := s.tokens.Check(strings.TrimSpace(tok))
	switch {
	case expired:
		s.unauthorized(w, r, "Lifetime validation failed, the token is expired.")
		return false
	case !valid:
		s.unauthorized(w, r, "CompactToken parsing failed with error code: 80049217")
		return false
	}
	return true
}

func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"`)
	s.graphError(w, r, http.StatusUnauthorized, "InvalidAuthenticationToken", msg)
}

// forbidden renders Intune's 403, whose message is a JSON document in a
// string (mondoohq/cnspec#1708).
func (s *Server) forbidden(w http.ResponseWriter, r *http.Request) {
	inner := map[string]any{
		"_version": 3,
		"Message": "Application is not authorized to perform this operation. Application must have one of the following scopes: " +
			"DeviceManagementManagedDevices.Read.All, DeviceManagementManagedDevices.ReadWrite.All - Operation ID (for customer support): " +
			"00000000-0000-0000-0000-000000000000 - Activity ID: " + newGUID() + " - Url: https://fef.msua09.manage.microsoft.com/DeviceFE/StatelessDeviceFEService/deviceManagement/managedDevices?api-version=2024-07-03",
		"CustomApiErrorPhrase": "",
		"RetryAfter":           nil,
		"ErrorSourceService":   "",
		"HttpHeaders":          "{}",
	}
	b, _ := json.MarshalIndent(inner, "", "  ")
	s.graphError(w, r, http.StatusForbidden, "Forbidden", strings.ReplaceAll(string(b), "\n", "\r\n"))
}

// admit spends one unit of the calling app's throttling budget (and of the
// tenant's), answering 429 when either is exhausted.
func (s *Server) admit(w http.ResponseWriter, r *http.Request) bool {
	if s.throttle == nil {
		return true
	}
	ok, wait := s.throttle.take(s.appOf(r), s.opts.Now())
	if !ok {
		s.tooManyRequests(w, r, wait)
	}
	return ok
}

// renderFault writes an injected fault in Graph's shapes; malformedPrefix
// starts the truncated body of a Malformed answer. It reports whether it
// wrote anything.
func (s *Server) renderFault(w http.ResponseWriter, r *http.Request, f mockkit.Fault, retryAfter time.Duration, malformedPrefix string) bool {
	switch f {
	case mockkit.RateLimited:
		s.tooManyRequests(w, r, retryAfter)
	case mockkit.ServerError:
		msg := `{"_version":3,"Message":"An internal server error has occurred - Operation ID (for customer support): 00000000-0000-0000-0000-000000000000 - Activity ID: ` +
			newGUID() + ` - Url: https://fef.msua09.manage.microsoft.com/DeviceFE/StatelessDeviceFEService/deviceManagement/managedDevices","CustomApiErrorPhrase":"","RetryAfter":null,"ErrorSourceService":"","HttpHeaders":"{}"}`
		s.graphError(w, r, http.StatusInternalServerError, "InternalServerError", msg)
	case mockkit.Malformed:
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(malformedPrefix))
	default:
		return false
	}
	return true
}

// tooManyRequests renders Graph's throttling answer
// (https://learn.microsoft.com/graph/throttling); Retry-After is absent with
// Options.NoRetryAfter.
func (s *Server) tooManyRequests(w http.ResponseWriter, r *http.Request, wait time.Duration) {
	if !s.opts.NoRetryAfter {
		w.Header().Set("Retry-After", s.retryAfter(wait))
	}
	rid := s.requestID(w, r)
	body := map[string]any{"error": map[string]any{
		"code": "TooManyRequests",
		"innerError": map[string]any{
			"code": "429", "date": time.Now().UTC().Format("2006-01-02T15:04:05"),
			"message": "Please retry after", "request-id": rid, "status": "429",
		},
		"message": "Please retry again later.",
	}}
	writeJSON(w, http.StatusTooManyRequests, body)
}

// retryAfter renders a wait as a Retry-After value. HTTP defines it as
// whole seconds (RFC 9110 section 10.2.3) and that is what Graph sends, so
// the default rounds up: msgraph-sdk-go's retry handler (kiota-http-go
// v1.5.4 retry_handler.go, getRetryDelay) truncates a fraction, so "19.859"
// made it retry before the window reopened. Options.FractionalRetryAfter
// keeps millisecond fractions for clients that must cope with them.
func (s *Server) retryAfter(wait time.Duration) string {
	if wait <= 0 {
		wait = time.Second
	}
	if s.opts.FractionalRetryAfter {
		return formatSeconds(float64(wait.Round(time.Millisecond)) / float64(time.Second))
	}
	return strconv.FormatInt(int64((wait+time.Second-1)/time.Second), 10)
}

func formatSeconds(secs float64) string {
	s := fmt.Sprintf("%.3f", secs)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "" || s == "0" {
		return "0.001"
	}
	return s
}

const contentType = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"

// graphError renders {"error":{"code","message","innerError":{...}}} and
// the request-id header.
func (s *Server) graphError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	rid := s.requestID(w, r)
	inner := map[string]any{
		"date":       time.Now().UTC().Format("2006-01-02T15:04:05"),
		"request-id": rid,
	}
	if c := r.Header.Get("client-request-id"); c != "" {
		inner["client-request-id"] = c
	} else {
		inner["client-request-id"] = rid
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": code, "message": msg, "innerError": inner}})
}

// requestID sets request-id (and echoes client-request-id) on w.
func (s *Server) requestID(w http.ResponseWriter, r *http.Request) string {
	rid := newGUID()
	w.Header().Set("request-id", rid)
	if c := r.Header.Get("client-request-id"); c != "" {
		w.Header().Set("client-request-id", c)
	}
	return rid
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b := marshal(v)
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func newGUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// baseURL is the absolute URL the request's API version lives at, e.g.
// https://graph.microsoft.com/v1.0 or http://127.0.0.1:1234/intune/v1.0
// when mounted under a prefix.
func (s *Server) baseURL(r *http.Request, version string) string {
	if s.opts.ExternalURL != "" {
		return strings.TrimRight(s.opts.ExternalURL, "/") + "/" + version
	}
	if b, ok := r.Context().Value(batchBaseKey{}).(string); ok {
		return b // a $batch item: absolute URLs point where the batch was sent
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	prefix := ""
	if u, err := url.ParseRequestURI(r.RequestURI); err == nil {
		prefix = strings.TrimSuffix(u.Path, r.URL.Path)
	}
	return scheme + "://" + r.Host + prefix + "/" + version
}

// Package crowdstrikemock is a faithful mock of the CrowdStrike Falcon API
// surface postured uses: OAuth2 client credentials (201, X-Cs-Region), the
// Hosts API (FQL queries with Falcon's case rules, offset and scroll paging,
// combined listing, entity details by GET and POST, online state), the Zero
// Trust Assessment API (with its 404-plus-partial-resources answer for
// unassessed hosts), the {"meta","resources","errors"} envelope on every
// answer, a per-CID sliding rate-limit window with X-RateLimit-* headers and
// fault injection rendered in Falcon's own shapes. Mount it at a Falcon base
// URL.
package crowdstrikemock

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/postured/postured/internal/mockkit"
)

// Limits of the real API the mock enforces (CrowdStrike swagger as generated
// into falconpy src/falconpy/_endpoint/_hosts.py and gofalcon).
const (
	maxQueryLimit    = 5000  // QueryDevicesByFilter limit
	maxScrollLimit   = 10000 // QueryDevicesByFilterScroll / combined limit
	maxOffsetWindow  = 10000 // "Setting your offset to 10K or higher will produce a 400 error"
	maxGetIDs        = 100   // GetDeviceDetailsV2 ids
	maxPostIDs       = 5000  // PostDeviceDetailsV2 ids
	maxZTAQueryLimit = 1000  // getAssessmentsByScoreV1 limit
	defaultLimit     = 100
)

// MissingMode is how an entities endpoint answers for ids it does not know.
type MissingMode int

const (
	// MissingOmit answers 200 and leaves the unknown ids out.
	MissingOmit MissingMode = iota
	// MissingNotFound answers 404 with the found records in resources and
	// one errors entry per unknown id (resources [] when none was found).
	MissingNotFound
)

// Options configure a Server. Zero values take the defaults noted.
type Options struct {
	// Devices are the tenant's hosts; Assessments their ZTA results (hosts
	// without one are "unassessed").
	Devices     []Host
	Assessments []Assessment
	// ClientID and ClientSecret are the only credentials accepted.
	// Default: "falcon-client" / "falcon-secret".
	ClientID     string
	ClientSecret string
	// MemberCIDs are the MSSP child CIDs a token may be locked to with
	// member_cid; any other member_cid is refused with 403.
	MemberCIDs []string
	// Region is reported in X-Cs-Region. Default: us-1.
	Region string
	// RedirectRegion, when set, makes the token endpoint behave like the
	// wrong cloud: 308 to ExternalURL (or the request's own base) with
	// X-Cs-Region set to it.
	RedirectRegion string
	// ExternalURL is the base URL clients reach the mock at, for the
	// Location of redirects. Default: derived from the request.
	ExternalURL string
	// TokenTTL is the access token lifetime (expires_in). Default: 1799s.
	TokenTTL time.Duration
	// RateLimit is the per-minute request budget of the CID, a sliding
	// window shared by every API client and endpoint of the customer
	// ("6,000 requests per minute per customer account ... regardless of
	// which API endpoint or API client is used", gofalcon#364). Default:
	// 6000.
	RateLimit int
	// TokenRateLimit and UnauthRateLimit are per source IP and minute, for
	// /oauth2/token and for calls with a missing or bad token. Defaults: 300
	// and 15.
	TokenRateLimit  int
	UnauthRateLimit int
	// RetryAfterMillis emits X-RateLimit-RetryAfter in epoch milliseconds
	// (what the swagger text claims) instead of epoch seconds (what every
	// SDK parses).
	RetryAfterMillis bool
	// SubstringTerms makes a single quoted FQL value match anywhere in the
	// property rather than at its start. Single values are case-insensitive
	// and partial either way; which partial match each Falcon property does
	// is not documented (see fql.go). Default: prefix.
	SubstringTerms bool
	// ZTAOmitMissing makes the ZTA entities endpoint answer 200 and leave
	// unassessed or unknown ids out. Default: 404 with the found assessments
	// in resources and one errors entry per missing id (resources [] when
	// none was found); the sources disagree, so clients must handle both.
	ZTAOmitMissing bool
	// ZTAListingSkips are AIDs the by-score listing leaves out although
	// they are assessed (the entities endpoint still answers for them). It
	// simulates a host whose score changed mid-crawl and so moved across
	// the listing's after cursor: paging by score is no snapshot.
	ZTAListingSkips []string
	// HostsMissing is how the host details endpoint answers for unknown ids.
	// Default: MissingOmit.
	HostsMissing MissingMode
	// NoZTAScope makes every ZTA call answer 403, as for an API client
	// without the "Zero Trust Assessment: Read" scope.
	NoZTAScope bool
	// MaxURLBytes answers 414 to longer request URIs. Default: 16384.
	MaxURLBytes int
	// ScrollTTL is how long an idle scroll offset token lives. Default: 2m.
	ScrollTTL time.Duration
	// Now is the mock's clock for online state and scroll token expiry.
	// Default: time.Now.
	Now func() time.Time
}

// maxLoggedRequests bounds the request log: mockvendors serves for days,
// and a log of every request (filters of kilobytes) would grow without
// end. Tests read far fewer between resets.
const maxLoggedRequests = 4096

// LoggedRequest is one request the mock served, for tests asserting call
// patterns (no N+1, chunk sizes, token reuse).
type LoggedRequest struct {
	Endpoint string
	Method   string
	Status   int
	// Filter is the FQL filter, if any.
	Filter string
	// IDs is how many ids the request carried (entities endpoints).
	IDs int
	// Limit and Offset are the paging parameters as sent.
	Limit  string
	Offset string
}

// Server is the mock; it implements http.Handler.
type Server struct {
	// Faults injects failures into API calls (not token calls).
	Faults *mockkit.Faults
	// Calls counts requests per endpoint: "token", "revoke", "queryDevices",
	// "scrollDevices", "combinedDevices", "deviceEntities",
	// "onlineState", "ztaAssessments", "ztaQueries".
	Calls *mockkit.Counter

	opts   Options
	tokens *mockkit.Tokens
	hosts  []Host
	byID   map[string]int
	zta    map[string]*Assessment
	cid    string

	mu       sync.Mutex
	apiWin   window
	tokenWin map[string]*window
	unauth   map[string]*window
	scrolls  map[string]*scrollState
	log      []LoggedRequest

	// index narrows host filters and listing orders the by-score
	// listing; drift resets both.
	index   hostIndex
	listing scoreListing
}

// New builds a Server over opts.
func New(opts Options) *Server {
	if opts.ClientID == "" {
		opts.ClientID = "falcon-client"
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = "falcon-secret"
	}
	if opts.Region == "" {
		opts.Region = "us-1"
	}
	if opts.TokenTTL == 0 {
		opts.TokenTTL = 1799 * time.Second
	}
	if opts.RateLimit == 0 {
		opts.RateLimit = 6000
	}
	if opts.TokenRateLimit == 0 {
		opts.TokenRateLimit = 300
	}
	if opts.UnauthRateLimit == 0 {
		opts.UnauthRateLimit = 15
	}
	if opts.MaxURLBytes == 0 {
		opts.MaxURLBytes = 16 << 10
	}
	if opts.ScrollTTL == 0 {
		opts.ScrollTTL = 2 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{
		Faults:   &mockkit.Faults{},
		Calls:    &mockkit.Counter{},
		opts:     opts,
		tokens:   mockkit.NewTokens(opts.TokenTTL),
		byID:     make(map[string]int, len(opts.Devices)),
		zta:      make(map[string]*Assessment, len(opts.Assessments)),
		apiWin:   window{limit: opts.RateLimit},
		tokenWin: make(map[string]*window),
		unauth:   make(map[string]*window),
		scrolls:  make(map[string]*scrollState),
	}
	s.hosts = make([]Host, len(opts.Devices))
	for i, h := range opts.Devices {
		// The real API serialises these arrays as [] rather than null.
		h.Policies = nonNil(h.Policies)
		h.Groups = nonNil(h.Groups)
		h.Tags = nonNil(h.Tags)
		s.hosts[i] = h
		s.byID[h.DeviceID] = i
		if s.cid == "" {
			s.cid = h.CID
		}
	}
	for i := range opts.Assessments {
		a := opts.Assessments[i]
		a.AssessmentItems.OSSignals = nonNil(a.AssessmentItems.OSSignals)
		a.AssessmentItems.SensorSignals = nonNil(a.AssessmentItems.SensorSignals)
		s.zta[a.AID] = &a
	}
	return s
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// ExpireTokens makes every token issued so far expired, as when a token's
// 30 minutes run out in the middle of a crawl.
func (s *Server) ExpireTokens() { s.tokens.ExpireAll() }

// Requests returns the request log so far: the last maxLoggedRequests
// requests.
func (s *Server) Requests() []LoggedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// ResetRequests clears the request log and the call counters.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	s.log = nil
	s.mu.Unlock()
	s.Calls.Reset()
}

type route struct {
	endpoint string
	method   string // the one allowed; "GET|POST" for both
	auth     bool
	handle   func(s *Server, c *call)
}

func routeFor(path string) (route, bool) {
	switch path {
	case "/oauth2/token":
		return route{"token", http.MethodPost, false, (*Server).token}, true
	case "/oauth2/revoke":
		return route{"revoke", http.MethodPost, false, (*Server).revoke}, true
	case "/devices/queries/devices/v1":
		return route{"queryDevices", http.MethodGet, true, (*Server).queryDevices}, true
	case "/devices/queries/devices-scroll/v1":
		return route{"scrollDevices", http.MethodGet, true, (*Server).scrollDevices}, true
	case "/devices/combined/devices/v1":
		return route{"combinedDevices", http.MethodGet, true, (*Server).combinedDevices}, true
	case "/devices/entities/devices/v2":
		return route{"deviceEntities", "GET|POST", true, (*Server).deviceEntities}, true
	case "/devices/entities/online-state/v1":
		return route{"onlineState", http.MethodGet, true, (*Server).onlineState}, true
	case "/zero-trust-assessment/entities/assessments/v1":
		return route{"ztaAssessments", http.MethodGet, true, (*Server).ztaAssessments}, true
	case "/zero-trust-assessment/queries/assessments/v1":
		return route{"ztaQueries", http.MethodGet, true, (*Server).ztaQueries}, true
	}
	return route{}, false
}

// call is one request in flight.
type call struct {
	w       http.ResponseWriter
	r       *http.Request
	traceID string
	start   time.Time
	entry   LoggedRequest
	// remaining is the rate-limit budget left, for the headers.
	remaining, limit int
	powered          string
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &call{w: w, r: r, traceID: newTraceID(), start: time.Now(), limit: s.opts.RateLimit, remaining: -1,
		powered: "crowdstrike-api-gateway"}
	// Cloned: a query value can be a slice of the request line, which the
	// log would otherwise keep whole.
	q := r.URL.Query()
	c.entry = LoggedRequest{Method: r.Method, Filter: strings.Clone(q.Get("filter")),
		Limit: strings.Clone(q.Get("limit")), Offset: strings.Clone(q.Get("offset"))}
	defer func() {
		s.mu.Lock()
		if len(s.log) == maxLoggedRequests {
			s.log = append(s.log[:0], s.log[maxLoggedRequests/2:]...) // the older half goes
		}
		s.log = append(s.log, c.entry)
		s.mu.Unlock()
	}()

	rt, ok := routeFor(r.URL.Path)
	if !ok {
		c.entry.Endpoint = "unknown"
		s.fail(c, http.StatusNotFound, "Not Found")
		return
	}
	c.entry.Endpoint = rt.endpoint
	s.Calls.Inc(rt.endpoint)
	if !strings.Contains(rt.method, r.Method) {
		c.w.Header().Set("Allow", strings.ReplaceAll(rt.method, "|", ", "))
		s.fail(c, http.StatusMethodNotAllowed, "Method Not Allowed")
		return
	}
	if len(r.URL.RequestURI()) > s.opts.MaxURLBytes {
		s.fail(c, http.StatusRequestURITooLong, "Request-URI Too Long")
		return
	}
	if !rt.auth {
		rt.handle(s, c)
		return
	}
	if !s.authorize(c) {
		return
	}
	laterPage := c.entry.Offset != "" && c.entry.Offset != "0" || r.URL.Query().Get("after") != ""
	switch fault, ra := s.Faults.Next(laterPage); fault {
	case mockkit.RateLimited:
		s.rateLimited(c, time.Now().Add(ra))
		return
	case mockkit.ServerError:
		s.fail(c, http.StatusInternalServerError, "Internal Server Error. Please try again.")
		return
	case mockkit.Malformed:
		s.setHeaders(c)
		c.w.WriteHeader(http.StatusOK)
		c.entry.Status = http.StatusOK
		_, _ = c.w.Write([]byte(`{"meta":{"query_time":0.001,"trace_id":"` + c.traceID + `"},"resources":["`))
		return
	}
	rt.handle(s, c)
}

// authorize checks the bearer token and spends one unit of the CID's
// budget; it answers the request itself when it fails.
func (s *Server) authorize(c *call) bool {
	tok, ok := strings.CutPrefix(c.r.Header.Get("Authorization"), "Bearer ")
	valid := false
	if ok {
		valid, _ = s.tokens.Check(strings.TrimSpace(tok))
	}
	now := time.Now()
	if !valid {
		s.mu.Lock()
		win := s.ipWindow(s.unauth, c.r, s.opts.UnauthRateLimit)
		allowed, remaining, retryAt := win.take(now)
		s.mu.Unlock()
		c.limit, c.remaining = s.opts.UnauthRateLimit, remaining
		if !allowed {
			s.rateLimited(c, retryAt)
			return false
		}
		s.fail(c, http.StatusUnauthorized, "access denied, invalid bearer token")
		return false
	}
	s.mu.Lock()
	allowed, remaining, retryAt := s.apiWin.take(now)
	s.mu.Unlock()
	c.remaining = remaining
	if !allowed {
		s.rateLimited(c, retryAt)
		return false
	}
	return true
}

func (s *Server) ipWindow(m map[string]*window, r *http.Request, limit int) *window {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	w := m[ip]
	if w == nil {
		w = &window{limit: limit}
		m[ip] = w
	}
	return w
}

// window is a sliding one-minute request budget.
type window struct {
	limit int
	hits  []time.Time
}

// take spends one request if the budget allows; it returns the budget left
// and, when refused, when the oldest request leaves the window.
func (w *window) take(now time.Time) (bool, int, time.Time) {
	cut := now.Add(-time.Minute)
	i := 0
	for i < len(w.hits) && !w.hits[i].After(cut) {
		i++
	}
	w.hits = w.hits[i:]
	if len(w.hits) >= w.limit {
		return false, 0, w.hits[0].Add(time.Minute)
	}
	w.hits = append(w.hits, now)
	return true, w.limit - len(w.hits), time.Time{}
}

// meta is the envelope's meta object.
type meta struct {
	QueryTime  float64 `json:"query_time"`
	Pagination any     `json:"pagination,omitempty"`
	PoweredBy  string  `json:"powered_by,omitempty"`
	TraceID    string  `json:"trace_id"`
}

type apiError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	ID      string `json:"id,omitempty"`
}

type envelope struct {
	Meta      meta       `json:"meta"`
	Resources any        `json:"resources,omitempty"`
	Errors    []apiError `json:"errors"`
}

func (s *Server) setHeaders(c *call) {
	h := c.w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Cs-Traceid", c.traceID)
	h.Set("X-Ratelimit-Limit", strconv.Itoa(c.limit))
	remaining := c.remaining
	if remaining < 0 {
		remaining = c.limit
	}
	h.Set("X-Ratelimit-Remaining", strconv.Itoa(remaining))
}

// reply writes the envelope. resources nil with an empty errors list is
// written as "resources": [].
func (s *Server) reply(c *call, status int, pagination any, resources any, errs []apiError) {
	if resources == nil {
		resources = []any{}
	}
	s.write(c, status, envelope{
		Meta:      meta{QueryTime: queryTime(resources), Pagination: pagination, PoweredBy: c.powered, TraceID: c.traceID},
		Resources: resources,
		Errors:    nonNil(errs),
	})
}

func (s *Server) write(c *call, status int, body any) {
	s.setHeaders(c)
	b, err := json.Marshal(body)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"errors":[{"code":500,"message":"encode"}]}`)
	}
	c.w.WriteHeader(status)
	c.entry.Status = status
	_, _ = c.w.Write(b)
}

// fail answers with the error-only envelope real Falcon errors use.
func (s *Server) fail(c *call, status int, msg string) {
	s.write(c, status, envelope{
		Meta:   meta{QueryTime: 1e-6, PoweredBy: c.powered, TraceID: c.traceID},
		Errors: []apiError{{Code: status, Message: msg}},
	})
}

// rateLimited answers 429 with X-RateLimit-RetryAfter, the epoch second the
// window frees up: seconds as gofalcon, PSFalcon and observed answers have
// it, milliseconds (what the swagger text says) only with RetryAfterMillis.
func (s *Server) rateLimited(c *call, retryAt time.Time) {
	v := retryAt.Unix()
	if retryAt.Nanosecond() > 0 {
		v++ // never tell a client to come back before the window frees up
	}
	if s.opts.RetryAfterMillis {
		v = retryAt.UnixMilli()
	}
	c.remaining = 0
	c.w.Header().Set("X-Ratelimit-Retryafter", strconv.FormatInt(v, 10))
	s.fail(c, http.StatusTooManyRequests, "API rate limit exceeded.")
}

// queryTime is a deterministic stand-in for the server's timing, so equal
// fixtures give equal bytes.
func queryTime(resources any) float64 {
	n := 0
	switch v := resources.(type) {
	case []string:
		n = len(v)
	case []any:
		n = len(v)
	case []Host:
		n = len(v)
	case []*Assessment:
		n = len(v)
	}
	return 0.002 + float64(n)*1e-6
}

func newTraceID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return fmt.Sprintf("%s-%s-%s-%s-%s", h[:8], h[8:12], h[12:16], h[16:20], h[20:])
}

func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// baseURL is where clients reach the mock: ExternalURL, or the scheme and
// host of the request plus the prefix it was mounted under.
func (s *Server) baseURL(r *http.Request) string {
	if s.opts.ExternalURL != "" {
		return strings.TrimSuffix(s.opts.ExternalURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	// Under http.StripPrefix, RequestURI keeps the path the request arrived
	// with while URL.Path lost the mount prefix.
	prefix := ""
	if orig, _, _ := strings.Cut(r.RequestURI, "?"); strings.HasSuffix(orig, r.URL.Path) {
		prefix = strings.TrimSuffix(orig, r.URL.Path)
	}
	return scheme + "://" + r.Host + prefix
}

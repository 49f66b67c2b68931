// Package server is postured's HTTP face: the gin router, the Access JWT
// check, the custom device posture endpoint Cloudflare polls, health,
// readiness and metrics. It owns wire formats and status codes; scoring is
// the aggregate package's business.
package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/internal/logging"
	"github.com/postured/postured/server/access"
)

// Evaluator scores a batch of devices.
type Evaluator interface {
	Evaluate(ctx context.Context, devices []aggregate.Device) ([]aggregate.Result, aggregate.Stats)
}

// Config configures a Server.
type Config struct {
	// Listen is the address to serve on, e.g. ":8080".
	Listen string
	// AdminListen, if set, moves /metrics and the detailed /readyz off the
	// public router to AdminHandler, which the caller serves there with
	// RunAdmin. Unset: the public router serves /metrics.
	AdminListen string
	// Access configures token checks and Keys is the team's key set, built
	// from Access with access.NewKeySet and shared with External
	// Evaluation; both are required unless InsecureSkipVerify, which turns
	// the checks off and is refused unless Listen, and the address Run is
	// given, are loopback.
	Access             access.Config
	Keys               *access.KeySet
	InsecureSkipVerify bool
	// AllowedCommonNames are the service tokens (client ids, with or
	// without the ".access" suffix) whose application tokens may post
	// batches; any other token gets 403. Empty: any token of the team and
	// audience, unless ServiceTokensOnly.
	AllowedCommonNames []string
	// ServiceTokensOnly refuses tokens without a common_name (user tokens)
	// when AllowedCommonNames is empty. Batches feed External Evaluation's
	// posture memory, so with it on, a user of the app must not be able to
	// post posture for any device_id.
	ServiceTokensOnly bool
	// MaxDevices is the most devices one batch may carry.
	MaxDevices int
	Engine     Evaluator
	// Explainer, if set, serves GET /v1/explain behind the same token
	// checks as /posture.
	Explainer Explainer
	// Rechecker, if set, serves POST /v1/recheck behind the same token
	// checks as /posture.
	Rechecker Rechecker
	// History, if set, serves GET /v1/history behind the same token checks
	// as /posture.
	History HistoryReader
	// StatusPage, if set, serves GET /status: on the admin listener when
	// AdminListen is set (reachable by whoever can reach that address, as
	// /metrics is), else on the public router behind the same token checks
	// as /posture.
	StatusPage http.Handler
	// Statuses are the providers that report data freshness, by name.
	Statuses map[string]aggregate.StatusReporter
	// TrustedProxies are the IPs and CIDRs whose X-Forwarded-For (or
	// X-Real-IP) is believed for the client_ip of the request log; from
	// any other peer the peer's address is logged. Nothing is authorised
	// by client IP.
	TrustedProxies []string
	// ShutdownTimeout is how long in-flight batches may take to finish
	// after SIGTERM.
	ShutdownTimeout time.Duration
	// Observers are told about every answered batch, in order (the posture
	// memory for External Evaluation is one).
	Observers []BatchObserver
	// Routes, if set, adds more routes (External Evaluation) to the router.
	Routes func(r gin.IRouter)
	// AdminRoutes, if set, adds routes to the admin listener only (what-if).
	AdminRoutes func(r gin.IRouter)
	Logger      *slog.Logger
	Registry    *prometheus.Registry
}

// tokenVerifier checks an Access application token.
type tokenVerifier interface {
	Verify(ctx context.Context, raw string) (*access.Claims, error)
}

// Server is the HTTP server.
type Server struct {
	cfg     Config
	engine  Evaluator
	access  tokenVerifier
	keys    *access.KeySet
	allowed map[string]bool // normalised AllowedCommonNames
	logger  *slog.Logger
	metrics *metrics
	router  *gin.Engine
	admin   *gin.Engine // nil unless AdminListen
	// bodyLimit is derived from MaxDevices: generous per device, small
	// enough that an oversized body is refused before it is read.
	bodyLimit int64
	// buffers hold a batch's body, then its answer, from one batch to
	// the next: a 1000-device batch is ~250 KB each way.
	buffers sync.Pool
}

// bytesPerDevice is the body budget per device: a full Cloudflare device
// entry is ~250 bytes.
const bytesPerDevice = 2048

// New validates cfg and builds the router.
func New(cfg Config) (*Server, error) {
	if cfg.Engine == nil {
		return nil, errors.New("server: no engine")
	}
	if cfg.MaxDevices < 1 {
		return nil, fmt.Errorf("server: max_devices must be >= 1, got %d", cfg.MaxDevices)
	}
	cfg.Logger = logging.OrDiscard(cfg.Logger)
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	s := &Server{
		cfg:       cfg,
		engine:    cfg.Engine,
		logger:    cfg.Logger,
		metrics:   newMetrics(cfg.Registry),
		bodyLimit: int64(cfg.MaxDevices)*bytesPerDevice + 64<<10,
	}
	s.buffers.New = func() any { return new(bytes.Buffer) }
	for _, o := range cfg.Observers {
		if m, ok := o.(*PostureMemory); ok {
			registerMemory(cfg.Registry, m)
		}
	}
	if cfg.InsecureSkipVerify {
		if !isLoopback(cfg.Listen) {
			return nil, fmt.Errorf("server: access.insecure_skip_verify is only allowed when listen is a loopback address, not %q", cfg.Listen)
		}
	} else {
		if cfg.Keys == nil {
			return nil, errors.New("server: access: Keys is required unless InsecureSkipVerify")
		}
		v, err := access.NewVerifier(cfg.Access, cfg.Keys)
		if err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
		s.access, s.keys = v, cfg.Keys
	}
	s.cfg.Observers = append([]BatchObserver{s.metrics}, cfg.Observers...)
	if len(cfg.AllowedCommonNames) > 0 {
		s.allowed = make(map[string]bool, len(cfg.AllowedCommonNames))
		for _, cn := range cfg.AllowedCommonNames {
			if normalizeCommonName(cn) == "" {
				return nil, errors.New("server: access.allowed_common_names: an entry is empty")
			}
			s.allowed[normalizeCommonName(cn)] = true
		}
	}
	r, err := s.routes()
	if err != nil {
		return nil, err
	}
	s.router = r
	if cfg.AdminListen != "" {
		s.admin = s.adminRoutes()
	}
	return s, nil
}

func (s *Server) routes() (*gin.Engine, error) {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	if err := r.SetTrustedProxies(s.cfg.TrustedProxies); err != nil {
		return nil, fmt.Errorf("server: trusted_proxies: %w", err)
	}
	r.HandleMethodNotAllowed = true
	r.RedirectTrailingSlash = false
	r.Use(s.requestContext, s.accessLog, s.recoverPanic)
	r.NoRoute(func(c *gin.Context) { fail(c, http.StatusNotFound, "not found") })
	r.NoMethod(func(c *gin.Context) { fail(c, http.StatusMethodNotAllowed, "method not allowed") })

	r.POST("/", s.requireAccess, s.posture)
	r.POST("/posture", s.requireAccess, s.posture)
	if s.cfg.Explainer != nil {
		r.GET("/v1/explain", s.requireAccess, s.explain)
	}
	if s.cfg.Rechecker != nil {
		r.POST("/v1/recheck", s.requireAccess, s.recheck)
	}
	if s.cfg.History != nil {
		r.GET("/v1/history", s.requireAccess, s.history)
	}
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", s.ready)
	if s.cfg.AdminListen == "" {
		r.GET("/metrics", s.metricsHandler())
		if s.cfg.StatusPage != nil {
			r.GET("/status", s.requireAccess, gin.WrapH(s.cfg.StatusPage))
		}
	}
	if s.cfg.Routes != nil {
		s.cfg.Routes(r)
	}
	return r, nil
}

// adminRoutes is the admin listener's router: metrics, the detailed
// readiness and the status page, which may name vendor errors, internal
// addresses and devices.
func (s *Server) adminRoutes() *gin.Engine {
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.RedirectTrailingSlash = false
	r.Use(s.requestContext, s.accessLog, s.recoverPanic)
	r.NoRoute(func(c *gin.Context) { fail(c, http.StatusNotFound, "not found") })
	r.NoMethod(func(c *gin.Context) { fail(c, http.StatusMethodNotAllowed, "method not allowed") })
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", s.readyDetail)
	r.GET("/metrics", s.metricsHandler())
	if s.cfg.AdminRoutes != nil {
		s.cfg.AdminRoutes(r)
	}
	if s.cfg.StatusPage != nil {
		r.GET("/status", gin.WrapH(s.cfg.StatusPage))
	}
	return r
}

func (s *Server) metricsHandler() gin.HandlerFunc {
	return gin.WrapH(promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{Registry: s.cfg.Registry}))
}

// Handler is the server's public http.Handler, for tests and embedding.
func (s *Server) Handler() http.Handler { return s.router }

// AdminHandler serves /metrics, /readyz (detailed), /healthz and /status
// (with a StatusPage); nil unless
// AdminListen is set.
func (s *Server) AdminHandler() http.Handler {
	if s.admin == nil {
		return nil
	}
	return s.admin
}

func (s *Server) posture(c *gin.Context) {
	log := loggerFrom(c)
	if c.Request.ContentLength > s.bodyLimit {
		fail(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", s.bodyLimit))
		return
	}
	buf := s.buffers.Get().(*bytes.Buffer)
	defer s.putBuffer(buf)
	buf.Reset()
	err := readBody(buf, http.MaxBytesReader(c.Writer, c.Request.Body, s.bodyLimit))
	var devices []aggregate.Device
	if err == nil {
		devices, err = DecodeBatch(buf.Bytes(), s.cfg.MaxDevices)
	}
	if err != nil {
		var re *requestError
		if !errors.As(err, &re) {
			re = &requestError{status: http.StatusBadRequest, msg: err.Error()}
		}
		s.metrics.badRequests.WithLabelValues(http.StatusText(re.status)).Inc()
		log.Warn("posture request rejected", "status", re.status, "error", re.msg)
		fail(c, re.status, re.msg)
		return
	}
	var results []aggregate.Result
	if len(devices) > 0 {
		var stats aggregate.Stats
		results, stats = s.engine.Evaluate(c.Request.Context(), devices)
		b := Batch{RequestID: c.GetString(ctxRequestID), At: time.Now(), Devices: devices, Results: results, Stats: stats}
		for _, o := range s.cfg.Observers {
			o.ObserveBatch(c.Request.Context(), b)
		}
		s.metrics.observeBatch(stats)
		log.Info("posture batch", "devices", stats.Devices, "matched", stats.Matched,
			"errors", stats.Errors, "stale", stats.Stale, "duration", stats.Duration)
	}
	// The request body is decoded: its buffer now holds the answer.
	buf.Reset()
	buf.Write(AppendResults(buf.AvailableBuffer(), results))
	c.Data(http.StatusOK, "application/json", buf.Bytes())
}

// maxPooledBuffer is the largest buffer kept for the next batch: a
// full batch of generous device entries; rarer giants are left to the GC.
const maxPooledBuffer = 4 << 20

func (s *Server) putBuffer(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBuffer {
		s.buffers.Put(b)
	}
}

// ready reports whether postured can answer correctly: Access certs
// fetched at least once, and every provider that holds its data in memory
// loaded at least once. It never fetches (the key set's Warm does), so
// probing it costs nothing upstream. Unauthenticated, it says only what
// failed and since when; the admin listener's readyDetail says why.
func (s *Server) ready(c *gin.Context) { s.writeReadiness(c, false) }

// readyDetail is ready with the errors as they came (vendor answers,
// addresses, inventory lines) and record counts.
func (s *Server) readyDetail(c *gin.Context) { s.writeReadiness(c, true) }

// Classes of failure the public /readyz names.
const (
	readyCertsFailed = "certs fetch failed"
	readyLoadFailed  = "last load failed"
)

func (s *Server) writeReadiness(c *gin.Context, detail bool) {
	ok := true
	out := gin.H{}
	if s.keys != nil {
		last, err := s.keys.LastFetch()
		certs := gin.H{"last_fetch": last}
		if last.IsZero() {
			certs["last_fetch"] = nil
			ok = false
		}
		if err != nil {
			certs["error"] = readyCertsFailed
			if detail {
				certs["error_detail"] = err.Error()
			}
		}
		out["access_certs"] = certs
	}
	provs := gin.H{}
	for name, sr := range s.cfg.Statuses {
		st := sr.Status()
		p := gin.H{"ready": st.Ready}
		if !st.LastSuccess.IsZero() {
			p["last_success"] = st.LastSuccess
			p["age_seconds"] = int(time.Since(st.LastSuccess).Seconds())
		}
		if st.LastError != "" {
			p["error"] = readyLoadFailed
			if detail {
				p["error_detail"] = st.LastError
			}
		}
		if detail {
			p["records"] = st.Records
		}
		if st.Crawl != "" {
			p["crawl"], p["shared"] = st.Crawl, st.Shared
		}
		if !st.Ready {
			ok = false
		}
		provs[name] = p
	}
	out["providers"] = provs
	status := http.StatusOK
	out["ready"] = ok
	if !ok {
		status = http.StatusServiceUnavailable
	}
	c.JSON(status, out)
}

// maxHeaderBytes bounds the request line and headers. An Access JWT is a
// few KB; the 1 MiB default let unauthenticated clients make every request
// cost a megabyte of memory. Larger requests get 431.
const maxHeaderBytes = 64 << 10

// Run serves the public router on ln until ctx ends, then shuts down
// gracefully: no new connections, in-flight batches get ShutdownTimeout to
// finish. With InsecureSkipVerify it refuses a listener not bound to a
// loopback address, whatever Listen said: "localhost" may resolve
// elsewhere, ":8080" binds every interface.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	if s.cfg.InsecureSkipVerify && !isLoopbackAddr(ln.Addr()) {
		return fmt.Errorf("server: access.insecure_skip_verify is only allowed on a loopback address; the listener is bound to %s", ln.Addr())
	}
	return s.serve(ctx, ln, s.router)
}

// RunAdmin serves AdminHandler on ln like Run. It is an error without
// AdminListen.
func (s *Server) RunAdmin(ctx context.Context, ln net.Listener) error {
	if s.admin == nil {
		return errors.New("server: admin listener not configured (admin_listen)")
	}
	return s.serve(ctx, ln, s.admin)
}

func (s *Server) serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		MaxHeaderBytes:    maxHeaderBytes,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       90 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("server: serve: %w", err)
	case <-ctx.Done():
	}
	s.logger.Info("shutting down", "addr", ln.Addr().String(), "timeout", s.cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("server: shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("server: serve: %w", err)
	}
	return nil
}

// isLoopbackAddr reports whether a bound address only accepts local
// connections.
func isLoopbackAddr(a net.Addr) bool {
	t, ok := a.(*net.TCPAddr)
	return ok && t.IP.IsLoopback()
}

// isLoopback reports whether a listen address only accepts local
// connections.
func isLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil || host == "" {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

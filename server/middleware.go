package server

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/postured/postured/server/access"
)

const (
	ctxLogger    = "postured.logger"
	ctxRequestID = "postured.request_id"
	// requestIDHeader is echoed back, so a Cloudflare-side log line can be
	// tied to ours.
	requestIDHeader = "X-Request-Id"
)

// fail answers a JSON error in the shape Cloudflare's reference worker
// uses, and stops the chain.
func fail(c *gin.Context, status int, msg string) {
	c.AbortWithStatusJSON(status, gin.H{"success": false, "error": msg})
}

// requestContext gives each request an id (the caller's X-Request-Id if it
// is sane, else a new one) and a logger carrying it.
func (s *Server) requestContext(c *gin.Context) {
	id := c.GetHeader(requestIDHeader)
	if !validRequestID(id) {
		var b [8]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	c.Set(ctxRequestID, id)
	c.Set(ctxLogger, s.logger.With("request_id", id))
	c.Header(requestIDHeader, id)
	c.Next()
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func loggerFrom(c *gin.Context) *slog.Logger {
	if l, ok := c.Get(ctxLogger); ok {
		return l.(*slog.Logger)
	}
	return slog.New(slog.DiscardHandler)
}

// accessLog logs one line per request: route template (never the raw path,
// which is caller-controlled), status and latency. Headers and bodies are
// never logged: they carry tokens and device identifiers.
func (s *Server) accessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	status := c.Writer.Status()
	method := methodLabel(c.Request.Method)
	s.metrics.httpRequests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	level := slog.LevelInfo
	if route == "/healthz" || route == "/readyz" || route == "/metrics" {
		level = slog.LevelDebug
	}
	loggerFrom(c).LogAttrs(c.Request.Context(), level, "http request",
		slog.String("method", method), slog.String("route", route),
		slog.Int("status", status), slog.Duration("duration", time.Since(start)))
}

// recoverPanic turns a handler panic into a 500 without a stack trace in
// the response (the log has the value).
func (s *Server) recoverPanic(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r)
			}
			s.metrics.panics.Inc()
			loggerFrom(c).Error("handler panicked", "panic", r)
			fail(c, http.StatusInternalServerError, "internal error")
		}
	}()
	c.Next()
}

// requireAccess admits only requests carrying a valid Access application
// token. 401 when there is none, 403 when it does not verify.
func (s *Server) requireAccess(c *gin.Context) {
	if s.access == nil { // insecure_skip_verify, refused off loopback
		c.Next()
		return
	}
	raw := c.GetHeader("Cf-Access-Jwt-Assertion")
	if raw == "" {
		s.metrics.authFailures.WithLabelValues("missing").Inc()
		fail(c, http.StatusUnauthorized, "missing Cf-Access-Jwt-Assertion header")
		return
	}
	claims, err := s.access.Verify(c.Request.Context(), raw)
	if err != nil {
		s.metrics.authFailures.WithLabelValues("invalid").Inc()
		loggerFrom(c).Warn("access token rejected", "error", err)
		fail(c, http.StatusForbidden, "invalid access token: "+err.Error())
		return
	}
	c.Set(ctxLogger, loggerFrom(c).With("client", claimsName(claims)))
	c.Next()
}

func claimsName(c *access.Claims) string {
	if c.CommonName != "" {
		return c.CommonName
	}
	return c.Email
}

package server

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
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
// which is caller-controlled), status, latency and the client IP (the
// peer, or what a trusted proxy forwarded). Headers and bodies are
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
		slog.Int("status", status), slog.Duration("duration", time.Since(start)),
		slog.String("client_ip", c.ClientIP()))
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

// verifyTimeout bounds the token check, a certs fetch included, whatever
// deadline the client gives (none).
const verifyTimeout = 5 * time.Second

// What a refused token is told: the class of failure only. The expected
// issuer, the certs URL and what the certs endpoint answered go to the log.
const (
	refusedInvalid    = "invalid token"
	refusedExpired    = "expired"
	refusedAudience   = "wrong audience"
	refusedNotService = "not a service token"
	refusedCommonName = "common name not allowed"
)

// requireAccess admits only requests carrying a valid Access application
// token that may post batches. 401 when there is none, 403 when it does
// not verify or is not allowed.
func (s *Server) requireAccess(c *gin.Context) {
	if s.access == nil { // insecure_skip_verify, refused off loopback
		c.Next()
		return
	}
	log := loggerFrom(c)
	raw := c.GetHeader("Cf-Access-Jwt-Assertion")
	if raw == "" {
		s.metrics.authFailures.WithLabelValues("missing").Inc()
		fail(c, http.StatusUnauthorized, "missing Cf-Access-Jwt-Assertion header")
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), verifyTimeout)
	claims, err := s.access.Verify(ctx, raw)
	cancel()
	if err != nil {
		reason, msg := "invalid", refusedInvalid
		switch {
		case errors.Is(err, access.ErrExpired):
			reason, msg = "expired", refusedExpired
		case errors.Is(err, access.ErrWrongAudience):
			reason, msg = "audience", refusedAudience
		}
		s.metrics.authFailures.WithLabelValues(reason).Inc()
		log.Warn("access token rejected", "reason", msg, "error", err)
		fail(c, http.StatusForbidden, msg)
		return
	}
	log = log.With("token", tokenType(claims), "subject", subjectHash(claims))
	if reason, msg := s.authorize(claims); msg != "" {
		s.metrics.authFailures.WithLabelValues(reason).Inc()
		log.Warn("access token not allowed to post batches", "reason", msg)
		fail(c, http.StatusForbidden, msg)
		return
	}
	c.Set(ctxLogger, log)
	c.Next()
}

// authorize says whether a verified token may post batches; msg is empty
// when it may.
func (s *Server) authorize(cl *access.Claims) (reason, msg string) {
	cn := normalizeCommonName(cl.CommonName)
	switch {
	case cn == "" && (s.allowed != nil || s.cfg.ServiceTokensOnly):
		return "not_service_token", refusedNotService
	case s.allowed != nil && !s.allowed[cn]:
		return "common_name", refusedCommonName
	}
	return "", ""
}

// normalizeCommonName makes "<id>.access" (the token's common_name) and
// "<id>" (as an operator may copy it) compare equal.
func normalizeCommonName(cn string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(cn)), ".access")
}

// tokenType is "service" for a service token's application token (it
// carries a common_name), else "user".
func tokenType(cl *access.Claims) string {
	if cl.CommonName != "" {
		return "service"
	}
	return "user"
}

// subjectHash is a short, stable pseudonym of who the token is for (the
// user's sub, else the service token's id, else the email), so log lines
// can be told apart and correlated without carrying an email.
func subjectHash(cl *access.Claims) string {
	id := cmp.Or(cl.Subject, cl.CommonName, cl.Email)
	if id == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:6])
}

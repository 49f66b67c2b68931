package crowdstrikemock

import (
	"crypto/subtle"
	"net/http"
	"slices"
	"time"
)

// tokenResponse is the 201 body of POST /oauth2/token (gofalcon
// models.DomainAccessTokenResponseV1).
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
}

// token serves POST /oauth2/token: form client_id, client_secret and an
// optional member_cid (no grant_type needed, an extra one ignored), or the
// credentials in HTTP Basic auth as x/oauth2 may send them.
func (s *Server) token(c *call) {
	c.limit = s.opts.TokenRateLimit
	s.mu.Lock()
	allowed, remaining, retryAt := s.ipWindow(s.tokenWin, c.r, s.opts.TokenRateLimit).take(time.Now())
	s.mu.Unlock()
	c.remaining = remaining
	c.w.Header().Set("X-Cs-Region", s.opts.Region)
	if !allowed {
		s.rateLimited(c, retryAt)
		return
	}
	if err := c.r.ParseForm(); err != nil {
		s.fail(c, http.StatusBadRequest, "invalid request body")
		return
	}
	id, secret := c.r.PostForm.Get("client_id"), c.r.PostForm.Get("client_secret")
	if bid, bsecret, ok := c.r.BasicAuth(); ok && id == "" {
		id, secret = bid, bsecret
	}
	if id == "" || secret == "" {
		s.fail(c, http.StatusBadRequest, "client_id and client_secret are required")
		return
	}
	if s.opts.RedirectRegion != "" {
		c.w.Header().Set("X-Cs-Region", s.opts.RedirectRegion)
		c.w.Header().Set("Location", s.baseURL(c.r)+"/oauth2/token")
		s.fail(c, http.StatusPermanentRedirect, "Permanent Redirect")
		return
	}
	idOK := subtle.ConstantTimeCompare([]byte(id), []byte(s.opts.ClientID)) == 1
	secretOK := subtle.ConstantTimeCompare([]byte(secret), []byte(s.opts.ClientSecret)) == 1
	member := c.r.PostForm.Get("member_cid")
	if !idOK || !secretOK || (member != "" && !slices.Contains(s.opts.MemberCIDs, member)) {
		s.fail(c, http.StatusForbidden, "access denied, authorization failed")
		return
	}
	tok, ttl := s.tokens.Issue()
	s.write(c, http.StatusCreated, tokenResponse{AccessToken: tok, TokenType: "bearer", ExpiresIn: int(ttl / time.Second)})
}

// revoke serves POST /oauth2/revoke: form token, client credentials in
// Basic auth.
func (s *Server) revoke(c *call) {
	id, secret, ok := c.r.BasicAuth()
	if !ok || id != s.opts.ClientID || secret != s.opts.ClientSecret {
		s.fail(c, http.StatusForbidden, "access denied, authorization failed")
		return
	}
	if err := c.r.ParseForm(); err != nil || c.r.PostForm.Get("token") == "" {
		s.fail(c, http.StatusBadRequest, "token is required")
		return
	}
	s.tokens.Revoke(c.r.PostForm.Get("token"))
	s.reply(c, http.StatusOK, nil, nil, nil)
}

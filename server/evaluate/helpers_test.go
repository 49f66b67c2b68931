package evaluate

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/postured/postured/internal/localaccess"
	"github.com/postured/postured/server/access"
	"github.com/postured/postured/server/evaluate/policy"
)

// t0 is the fake clock's start: a Tuesday, 09:30 in Berlin (CET, UTC+1).
var t0 = time.Date(2026, 11, 24, 8, 30, 0, 0, time.UTC)

// clock is a settable fake clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// postures is a policy.PostureSource over a map.
type postures map[string]policy.Posture

func (p postures) DevicePosture(_ context.Context, id string) (policy.Posture, bool) {
	v, ok := p[id]
	return v, ok
}

// team plays Cloudflare Access for a team: the team's keys served as
// certs, and the key set over them, as the wiring builds it.
type team struct {
	issuer *localaccess.Issuer
	keys   *access.KeySet
}

const teamIssuer = "https://team.cloudflareaccess.com"

func newTeam(t *testing.T) *team {
	t.Helper()
	iss, err := localaccess.New(teamIssuer)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(iss)
	t.Cleanup(srv.Close)
	keys, err := access.NewKeySet(access.Config{CertsURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return &team{issuer: iss, keys: keys}
}

// token signs claims with the team's current key.
func (a *team) token(t *testing.T, claims map[string]any) string {
	t.Helper()
	tok, err := a.issuer.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// claims builds the claims Access sends: identity, nonce, exp a minute
// ahead of now.
func claims(now time.Time, nonce any, identity map[string]any) map[string]any {
	c := map[string]any{"iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "identity": identity}
	if nonce != nil {
		c["nonce"] = nonce
	}
	return c
}

// fixture is a Handler behind a gin router on a real listener.
type fixture struct {
	team  *team
	clock *clock
	h     *Handler
	srv   *httptest.Server
	logs  *syncBuffer
	reg   *prometheus.Registry
	cfg   Config
}

type fixtureOpts struct {
	cfg      *Config
	posture  policy.PostureSource
	logLevel slog.Level
	team     *team
	clock    *clock
}

// testRules: deny North Korea; admins need a healthy device; staff of
// example.com in Berlin office hours; bob always.
func testRules() []policy.Rule {
	return []policy.Rule{
		{Name: "block-sanctioned", Action: "deny", When: policy.When{Country: &policy.StringMatch{In: []string{"KP", "IR"}}}},
		{Name: "admins-healthy", Action: "allow", When: policy.When{Groups: &policy.GroupMatch{Any: []string{"admins"}}, Score: &policy.ScoreRange{Min: ptr(80)}}},
		{Name: "bob", Action: "allow", When: policy.When{Email: &policy.EmailMatch{In: []string{"bob@example.com"}}}},
	}
}

func ptr[T any](v T) *T { return &v }

func newFixture(t *testing.T, o fixtureOpts) *fixture {
	t.Helper()
	if o.team == nil {
		o.team = newTeam(t)
	}
	if o.clock == nil {
		o.clock = newClock(t0)
	}
	cfg := Config{Enabled: true, Policy: policy.Config{Rules: testRules()}}
	if o.cfg != nil {
		cfg = *o.cfg
	}
	if cfg.Keyring.KeyFile == "" {
		cfg.Keyring.KeyFile = filepath.Join(t.TempDir(), "ee.pem")
	}
	cfg.Defaults()
	if o.posture == nil {
		o.posture = postures{"dev-healthy": {Score: 90, Providers: map[string]int{"crowdstrike": 95, "intune": 100}, At: t0.Add(-time.Minute)},
			"dev-sick": {Score: 40, Providers: map[string]int{"crowdstrike": 20}, At: t0.Add(-time.Minute)}}
	}
	logs := &syncBuffer{}
	reg := prometheus.NewRegistry()
	h, err := New(context.Background(), Options{
		Config: cfg, Keys: o.team.keys, TeamDomain: teamIssuer, Posture: o.posture,
		Logger:   slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: o.logLevel})),
		Registry: reg, Now: o.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	h.Register(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return &fixture{team: o.team, clock: o.clock, h: h, srv: srv, logs: logs, reg: reg, cfg: cfg}
}

// post sends body to /evaluate.
func (f *fixture) post(t *testing.T, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(f.srv.URL+"/evaluate", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("response %d is not JSON: %s", resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

// evaluate posts a token and returns the response token (status 200
// required).
func (f *fixture) evaluate(t *testing.T, token string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"token": token})
	status, out := f.post(t, string(body))
	if status != http.StatusOK {
		t.Fatalf("status %d: %v", status, out)
	}
	tok, ok := out["token"].(string)
	if !ok || len(out) != 1 {
		t.Fatalf("response %v: want exactly {\"token\": string}", out)
	}
	return tok
}

// jwks fetches GET path (/keys or /keys/).
func (f *fixture) jwks(t *testing.T, path string) (jose.JSONWebKeySet, map[string]json.RawMessage) {
	t.Helper()
	resp, err := http.Get(f.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET %s: %d %s %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	var doc map[string]json.RawMessage
	_ = json.Unmarshal(raw, &doc)
	return set, doc
}

// accessVerdict is what Access concludes from a response token.
type accessVerdict struct {
	success bool
	kid     string
	claims  map[string]json.RawMessage
}

// verifyAsAccess checks a response token exactly as Access does
// (cloudflare-protocols.md B.4): signed by the key at Keys URL chosen by
// kid, exp not elapsed, success true, nonce equal to the one sent. It
// fails the test on anything but success, which it returns.
func (f *fixture) verifyAsAccess(t *testing.T, token string, wantNonce any) accessVerdict {
	t.Helper()
	set, _ := f.jwks(t, "/keys")
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatalf("response token: %v", err)
	}
	hdr := jws.Signatures[0].Protected
	if hdr.Algorithm != "RS256" || hdr.KeyID == "" {
		t.Fatalf("response header %+v: want alg RS256 and a kid", hdr)
	}
	keys := set.Key(hdr.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %s is not served at /keys (%d matches)", hdr.KeyID, len(keys))
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("response signature does not verify with the /keys key: %v", err)
	}
	var c map[string]json.RawMessage
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	var iat, exp int64
	if err := json.Unmarshal(c["iat"], &iat); err != nil {
		t.Fatalf("iat %s: %v", c["iat"], err)
	}
	if err := json.Unmarshal(c["exp"], &exp); err != nil {
		t.Fatalf("exp %s: %v", c["exp"], err)
	}
	if exp != iat+60 {
		t.Errorf("exp %d, want iat+60 = %d", exp, iat+60)
	}
	if now := f.clock.Now().Unix(); exp <= now {
		t.Errorf("response expired: exp %d, now %d", exp, now)
	}
	var success bool
	if err := json.Unmarshal(c["success"], &success); err != nil {
		t.Fatalf("success %s is not a JSON boolean", c["success"])
	}
	want, _ := json.Marshal(wantNonce)
	if !bytes.Equal(c["nonce"], want) {
		t.Errorf("nonce %s, want %s", c["nonce"], want)
	}
	return accessVerdict{success: success, kid: hdr.KeyID, claims: c}
}

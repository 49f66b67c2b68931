package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postured/postured/internal/app"
	"github.com/postured/postured/internal/localaccess"
)

const (
	testTeam = "myteam.cloudflareaccess.com"
	testAUD  = "32eafc7626e974616deaf0dc3ce63d7bcbed58a2731e84d06bc3cdf1b53c4228"
)

// syncBuffer is a log sink safe for the server goroutines, which tests
// can wait on for a line.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
	// wrote, once asked for, is closed by the next write.
	wrote chan struct{}
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wrote != nil {
		close(s.wrote)
		s.wrote = nil
	}
	return s.b.Write(p)
}

// waitFor blocks until the log holds at least n occurrences of substr, or
// ctx ends.
func (s *syncBuffer) waitFor(ctx context.Context, substr string, n int) error {
	for {
		s.mu.Lock()
		have := strings.Count(s.b.String(), substr)
		if s.wrote == nil {
			s.wrote = make(chan struct{})
		}
		wrote := s.wrote
		s.mu.Unlock()
		if have >= n {
			return nil
		}
		select {
		case <-wrote:
		case <-ctx.Done():
			return fmt.Errorf("%d of %d log lines with %q: %w", have, n, substr, ctx.Err())
		}
	}
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// instance is a running postured under test.
type instance struct {
	url     string
	issuer  *localaccess.Issuer
	logs    *syncBuffer
	cfgPath string
}

// startPostured writes cfgYAML (with %CERTS% replaced by a local certs
// endpoint) and runs the real serve path on a random port until the test
// ends.
func startPostured(t *testing.T, cfgYAML string) *instance {
	t.Helper()
	iss, err := localaccess.New("https://" + testTeam)
	if err != nil {
		t.Fatal(err)
	}
	certs := httptest.NewServer(iss)
	t.Cleanup(certs.Close)
	dir := t.TempDir()
	path := filepath.Join(dir, "postured.yaml")
	cfgYAML = strings.ReplaceAll(cfgYAML, "%CERTS%", certs.URL)
	cfgYAML = strings.ReplaceAll(cfgYAML, "%DIR%", dir)
	if err := os.WriteFile(path, []byte(cfgYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := app.Load(path, app.Registry(), os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	in := runServe(t, cfg)
	in.issuer, in.cfgPath = iss, path
	return in
}

// runServe runs the real serve path with cfg on the port cfg.Listen asks
// for until the test ends.
func runServe(t *testing.T, cfg *app.Config) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- app.Serve(ctx, cfg, app.Registry(), logs, "test", func(a string) { addr <- a }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	select {
	case a := <-addr:
		return &instance{url: "http://" + a, logs: logs}
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("postured did not start")
	}
	return nil
}

func (in *instance) post(t *testing.T, path, token string, body []byte) (int, []byte) {
	t.Helper()
	return in.do(t, http.MethodPost, path, token, body)
}

// do sends one request with an Access token (none if blank) and returns the
// status and body.
func (in *instance) do(t *testing.T, method, path, token string, body []byte) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, in.url+path, bytes.NewReader(body))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Cf-Access-Jwt-Assertion", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func writeInventory(t *testing.T, dir string, n int) {
	t.Helper()
	var b strings.Builder
	b.WriteString("devices:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - id: asset-%d\n    serial_number: SER%05d\n    mac_addresses: [\"02:00:00:00:%02x:%02x\"]\n    hostname: mbp-%d\n    score: %d\n",
			i, i, i/256, i%256, i, i%101)
	}
	if err := os.WriteFile(filepath.Join(dir, "inventory.yaml"), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

const e2eConfig = `
listen: "127.0.0.1:0"
log: {level: debug}
access:
  team_domain: ` + testTeam + `
  audience: ["` + testAUD + `"]
  certs_url: "%CERTS%"
  refetch_cooldown: 1ns # any later request may refetch: key rotation needs no wait
posture:
  unmatched_score: 0
providers:
  - name: inventory
    type: static
    weight: 1
    file: "%DIR%/inventory.yaml"
`

type postureReply struct {
	Result map[string]struct {
		S2SID string `json:"s2s_id"`
		Score int    `json:"score"`
	} `json:"result"`
}

func batch(from, n int, mod func(i int, d map[string]string)) []byte {
	devs := make([]map[string]string, 0, n)
	for i := from; i < from+n; i++ {
		d := map[string]string{"device_id": fmt.Sprintf("cf-%d", i), "serial_number": fmt.Sprintf("ser%05d", i)}
		if mod != nil {
			mod(i, d)
		}
		devs = append(devs, d)
	}
	b, _ := json.Marshal(map[string]any{"devices": devs})
	return b
}

func TestEndToEndStaticInventory(t *testing.T) {
	dir := t.TempDir()
	writeInventory(t, dir, 1000)
	in := startPostured(t, strings.ReplaceAll(e2eConfig, "%DIR%", dir))
	token, err := in.issuer.AppToken(testAUD, time.Minute)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("1000 devices", func(t *testing.T) {
		// The last 100 devices match by MAC only (no serial), the very
		// last 10 by nothing.
		body := batch(0, 1000, func(i int, d map[string]string) {
			if i >= 900 {
				d["serial_number"] = ""
				d["mac_address"] = fmt.Sprintf("02-00-00-00-%02X-%02X", i/256, i%256)
			}
			if i >= 990 {
				d["mac_address"] = "02-00-00-ff-ff-ff"
			}
		})
		code, b := in.post(t, "/posture", token, body)
		if code != 200 {
			t.Fatalf("status %d: %s", code, b)
		}
		var r postureReply
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		if len(r.Result) != 1000 {
			t.Fatalf("%d entries, want 1000", len(r.Result))
		}
		for i := range 1000 {
			got := r.Result[fmt.Sprintf("cf-%d", i)]
			want, wantID := i%101, fmt.Sprintf("asset-%d", i)
			if i >= 990 {
				want, wantID = 0, ""
			}
			if got.Score != want || got.S2SID != wantID {
				t.Fatalf("cf-%d: got %+v, want %d %q", i, got, want, wantID)
			}
		}
	})

	t.Run("1001 devices", func(t *testing.T) {
		code, b := in.post(t, "/", token, batch(0, 1001, nil))
		if code != 413 || !strings.Contains(string(b), "1001 devices in one request, at most 1000 allowed") {
			t.Errorf("got %d %s", code, b)
		}
	})

	t.Run("tokens", func(t *testing.T) {
		now := time.Now()
		key := in.issuer.Current()
		claims := func(mod func(map[string]any)) map[string]any {
			c := map[string]any{"type": "app", "aud": []string{testAUD}, "iss": "https://" + testTeam, "sub": "",
				"common_name": "x.access", "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Minute).Unix()}
			if mod != nil {
				mod(c)
			}
			return c
		}
		sign := func(c map[string]any) string {
			tok, err := localaccess.SignRS256(key.Private, key.ID, c)
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}
		other, err := localaccess.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		pubDER, _ := x509.MarshalPKIXPublicKey(&key.Private.PublicKey)
		pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
		valid := sign(claims(nil))
		parts := strings.Split(valid, ".")
		tampered := parts[0] + "." + b64json(claims(func(c map[string]any) { c["common_name"] = "attacker.access" })) + "." + parts[2]
		forge := func(header map[string]any, signer func([]byte) ([]byte, error)) string {
			tok, err := localaccess.SignWith(header, claims(nil), signer)
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}
		tests := []struct {
			name   string
			token  string
			status int
			errMsg string
		}{
			{"valid", valid, 200, ""},
			{"missing", "", 401, "missing Cf-Access-Jwt-Assertion header"},
			{"expired", sign(claims(func(c map[string]any) { c["exp"] = now.Add(-2 * time.Minute).Unix() })), 403, "expired"},
			{"expired within leeway is accepted", sign(claims(func(c map[string]any) { c["exp"] = now.Add(-10 * time.Second).Unix() })), 200, ""},
			{"nbf in the future", sign(claims(func(c map[string]any) { c["nbf"] = now.Add(5 * time.Minute).Unix() })), 403, "invalid token"},
			{"no exp", sign(claims(func(c map[string]any) { delete(c, "exp") })), 403, "invalid token"},
			{"exp beyond year 9999", sign(claims(func(c map[string]any) { c["exp"] = int64(253402300800) })), 403, "invalid token"},
			{"nbf wrapping int64 nanoseconds", sign(claims(func(c map[string]any) { c["nbf"] = json.RawMessage("1e19") })), 403, "invalid token"},
			{"wrong aud", sign(claims(func(c map[string]any) { c["aud"] = []string{"someone-else"} })), 403, "wrong audience"},
			{"wrong iss", sign(claims(func(c map[string]any) { c["iss"] = "https://evil.cloudflareaccess.com" })), 403, "invalid token"},
			{"unknown kid", mustSign(t, other.Private, other.ID, claims(nil)), 403, "invalid token"},
			{"alg none", forge(map[string]any{"alg": "none", "kid": key.ID}, func([]byte) ([]byte, error) { return nil, nil }), 403, "invalid token"},
			{"HS256 with the public key as secret", forge(map[string]any{"alg": "HS256", "kid": key.ID, "typ": "JWT"}, func(in []byte) ([]byte, error) {
				m := hmac.New(sha256.New, pubPEM)
				m.Write(in)
				return m.Sum(nil), nil
			}), 403, "invalid token"},
			{"tampered payload", tampered, 403, "invalid token"},
			{"another key with the same kid", mustSign(t, other.Private, key.ID, claims(nil)), 403, "invalid token"},
			{"garbage", "not.a.jwt", 403, "invalid token"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				code, b := in.post(t, "/posture", tc.token, batch(0, 1, nil))
				if code != tc.status {
					t.Fatalf("status %d, want %d: %s", code, tc.status, b)
				}
				if want := `{"error":"` + tc.errMsg + `","success":false}`; tc.errMsg != "" && string(b) != want {
					t.Errorf("body %s, want %s", b, want)
				}
			})
		}
	})

	t.Run("key rotation without restart", func(t *testing.T) {
		newKey, err := in.issuer.Rotate()
		if err != nil {
			t.Fatal(err)
		}
		tok, err := in.issuer.AppToken(testAUD, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(headerOf(t, tok), newKey.ID) {
			t.Fatal("token not signed by the new key")
		}
		if code, b := in.post(t, "/posture", tok, batch(5, 1, nil)); code != 200 || !strings.Contains(string(b), `"asset-5"`) {
			t.Errorf("rotated key: %d %s", code, b)
		}
		if code, _ := in.post(t, "/posture", token, batch(5, 1, nil)); code != 200 {
			t.Errorf("old key, still published, refused: %d", code)
		}
	})

	t.Run("logs carry no tokens", func(t *testing.T) {
		logs := in.logs.String()
		if !strings.Contains(logs, `"msg":"posture batch"`) || !strings.Contains(logs, `"request_id"`) {
			t.Errorf("batch log line missing: %s", logs)
		}
		sig := strings.Split(token, ".")[2]
		if strings.Contains(logs, sig) || strings.Contains(logs, "SER00042") {
			t.Error("logs contain a raw token or a serial")
		}
	})
}

func TestCertsOutageFailsClosed(t *testing.T) {
	dir := t.TempDir()
	writeInventory(t, dir, 1)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "upstream unavailable", http.StatusBadGateway)
	}))
	defer down.Close()
	in := startPostured(t, strings.ReplaceAll(strings.ReplaceAll(e2eConfig, "%DIR%", dir), `"%CERTS%"`, `"`+down.URL+`"`))
	tok, _ := in.issuer.AppToken(testAUD, time.Minute)
	if code, b := in.post(t, "/posture", tok, batch(0, 1, nil)); code != 403 {
		t.Errorf("certs down: %d %s, want 403", code, b)
	}
	resp, err := http.Get(in.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(b), `"access_certs":{"error":"certs fetch failed","last_fetch":null}`) ||
		strings.Contains(string(b), down.URL) || strings.Contains(string(b), "upstream unavailable") {
		t.Errorf("readyz: %d %s", resp.StatusCode, b)
	}
}

// TestReadyWithoutAnyToken: the certs are fetched at start (readiness
// never fetches), so a replica turns ready before Cloudflare calls it,
// and the admin listener takes /metrics and the detailed /readyz.
func TestReadyWithoutAnyToken(t *testing.T) {
	dir := t.TempDir()
	writeInventory(t, dir, 1)
	in := startPostured(t, strings.ReplaceAll(e2eConfig, "%DIR%", dir)+"admin_listen: \"127.0.0.1:0\"\n")
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := get(in.url + "/readyz")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never ready: %d %s", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var admin string
	for _, line := range strings.Split(in.logs.String(), "\n") {
		var l struct {
			Msg       string `json:"msg"`
			AdminAddr string `json:"admin_addr"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "postured listening" {
			admin = "http://" + l.AdminAddr
		}
	}
	if code, _ := get(in.url + "/metrics"); code != 404 {
		t.Errorf("public /metrics: %d, want 404 with admin_listen", code)
	}
	if code, body := get(admin + "/metrics"); code != 200 || !strings.Contains(body, "postured_http_requests_total") {
		t.Errorf("admin /metrics: %d", code)
	}
	if code, body := get(admin + "/readyz"); code != 200 || !strings.Contains(body, `"records":1`) {
		t.Errorf("admin /readyz: %d %s", code, body)
	}
}

func mustSign(t *testing.T, k *rsa.PrivateKey, kid string, c map[string]any) string {
	t.Helper()
	tok, err := localaccess.SignWith(map[string]any{"alg": "RS256", "kid": kid}, c, func(in []byte) ([]byte, error) {
		h := sha256.Sum256(in)
		return rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, h[:])
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func b64json(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func headerOf(t *testing.T, tok string) string {
	t.Helper()
	dec, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	return string(dec)
}

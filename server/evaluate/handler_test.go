package evaluate

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/postured/postured/internal/localaccess"
	"github.com/postured/postured/server/evaluate/keyring"
	"github.com/postured/postured/server/evaluate/policy"
)

// TestEvaluatePlaysAccess signs request tokens as Access, posts them and
// verifies the answers against /keys as Access does.
func TestEvaluatePlaysAccess(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	now := f.clock.Now()
	tests := []struct {
		name     string
		claims   map[string]any
		nonce    any
		wantOK   bool
		wantRule string
		wantLog  string
	}{
		{name: "allow by email", nonce: "n-allow",
			claims: claims(now, "n-allow", map[string]any{"email": "bob@example.com", "geo": map[string]any{"country": "US"}}),
			wantOK: true, wantRule: "bob"},
		{name: "deny by rule", nonce: "n-deny",
			claims:   claims(now, "n-deny", map[string]any{"email": "bob@example.com", "geo": map[string]any{"country": "KP"}}),
			wantRule: "block-sanctioned"},
		{name: "default deny", nonce: "n-default",
			claims: claims(now, "n-default", map[string]any{"email": "eve@example.com"}), wantRule: "default"},
		{name: "groups absent", nonce: "n-g0",
			claims: claims(now, "n-g0", map[string]any{"email": "ann@example.com", "device_id": "dev-healthy"}), wantRule: "default"},
		{name: "groups as strings", nonce: "n-g1",
			claims: claims(now, "n-g1", map[string]any{"email": "ann@example.com", "device_id": "dev-healthy", "groups": []any{"staff", "admins"}}),
			wantOK: true, wantRule: "admins-healthy"},
		{name: "groups as objects", nonce: "n-g2",
			claims: claims(now, "n-g2", map[string]any{"email": "ann@example.com", "device_id": "dev-healthy",
				"groups": []any{map[string]any{"id": "g1", "name": "staff"}, map[string]any{"id": "admins"}, 42, nil}}),
			wantOK: true, wantRule: "admins-healthy"},
		{name: "groups not a list", nonce: "n-g3",
			claims: claims(now, "n-g3", map[string]any{"email": "ann@example.com", "device_id": "dev-healthy", "groups": "admins"}), wantRule: "default"},
		{name: "admin on an unhealthy device", nonce: "n-sick",
			claims: claims(now, "n-sick", map[string]any{"email": "ann@example.com", "device_id": "dev-sick", "groups": []any{"admins"}}), wantRule: "default"},
		{name: "device_id with no posture data", nonce: "n-nodata",
			claims: claims(now, "n-nodata", map[string]any{"email": "ann@example.com", "device_id": "dev-unknown", "groups": []any{"admins"}}), wantRule: "default"},
		{name: "no identity at all", nonce: "n-noid", claims: claims(now, "n-noid", nil), wantRule: "default"},
		{name: "identity of odd types", nonce: "n-odd",
			claims: claims(now, "n-odd", map[string]any{"email": 7, "geo": "KP", "groups": map[string]any{"x": 1}, "device_id": []any{}}), wantRule: "default"},
		{name: "exp equal to now is valid", nonce: "n-exp",
			claims: map[string]any{"exp": now.Unix(), "nonce": "n-exp", "identity": map[string]any{"email": "bob@example.com"}},
			wantOK: true, wantRule: "bob"},
		{name: "fractional exp", nonce: "n-frac",
			claims: map[string]any{"exp": float64(now.Unix()) + 0.5, "nonce": "n-frac", "identity": map[string]any{"email": "bob@example.com"}},
			wantOK: true, wantRule: "bob"},
		{name: "numeric nonce echoed verbatim", nonce: json.Number("12345678901234567890"),
			claims: claims(now, json.Number("12345678901234567890"), map[string]any{"email": "bob@example.com"}), wantOK: true, wantRule: "bob"},
		{name: "object nonce echoed verbatim", nonce: map[string]any{"a": []any{1, "<b>"}},
			claims: claims(now, map[string]any{"a": []any{1, "<b>"}}, map[string]any{"email": "bob@example.com"}), wantOK: true, wantRule: "bob"},
		{name: "empty string nonce echoed", nonce: "",
			claims: claims(now, "", map[string]any{"email": "bob@example.com"}), wantOK: true, wantRule: "bob"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.ToFloat64(f.h.metrics.decisions.WithLabelValues(map[bool]string{true: "allow", false: "deny"}[tc.wantOK], tc.wantRule))
			resp := f.evaluate(t, f.team.token(t, tc.claims))
			v := f.verifyAsAccess(t, resp, tc.nonce)
			if v.success != tc.wantOK {
				t.Errorf("success %v, want %v", v.success, tc.wantOK)
			}
			after := testutil.ToFloat64(f.h.metrics.decisions.WithLabelValues(map[bool]string{true: "allow", false: "deny"}[tc.wantOK], tc.wantRule))
			if after != before+1 {
				t.Errorf("postured_ee_decisions_total{rule=%q} went %v -> %v", tc.wantRule, before, after)
			}
		})
	}
}

func TestResponseTokenShape(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	resp := f.evaluate(t, f.team.token(t, claims(f.clock.Now(), "n1", map[string]any{"email": "bob@example.com"})))
	parts := strings.Split(resp, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q", resp)
	}
	hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
	var h map[string]any
	if err := json.Unmarshal(hdr, &h); err != nil {
		t.Fatal(err)
	}
	kid := f.h.ring.Ring().Keys[0].ID
	if len(h) != 2 || h["alg"] != "RS256" || h["kid"] != kid {
		t.Errorf("header %s, want exactly {alg: RS256, kid: %s}", hdr, kid)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	want := `{"success":true,"iat":` + itoa(t0.Unix()) + `,"exp":` + itoa(t0.Unix()+60) + `,"nonce":"n1"}`
	if string(payload) != want {
		t.Errorf("payload %s\nwant    %s", payload, want)
	}
}

// signRaw signs arbitrary payload bytes with an Access key.
func signRaw(t *testing.T, k *localaccess.Key, payload []byte) string {
	t.Helper()
	hdr, _ := json.Marshal(map[string]string{"alg": "RS256", "kid": k.ID})
	in := base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(payload)
	sum := sha256.Sum256([]byte(in))
	sig, err := rsa.SignPKCS1v15(rand.Reader, k.Private, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// TestEvaluateRefuses: whatever cannot be verified gets 403 JSON and no
// token; nothing is signed.
func TestEvaluateRefuses(t *testing.T) {
	f := newFixture(t, fixtureOpts{cfg: &Config{Enabled: true, Policy: policy.Config{Rules: testRules()}}})
	now := f.clock.Now()
	bob := map[string]any{"email": "bob@example.com"}
	good := f.team.token(t, claims(now, "n", bob))
	stranger, err := localaccess.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	teamKid := f.team.issuer.Current().ID
	signWith := func(k *localaccess.Key, kid string, c map[string]any) string {
		tok, err := localaccess.SignRS256(k.Private, kid, c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	tokenBody := func(tok string) string { b, _ := json.Marshal(map[string]string{"token": tok}); return string(b) }
	parts := strings.Split(good, ".")
	hs256, _ := localaccess.SignWith(map[string]any{"alg": "HS256", "kid": teamKid}, claims(now, "n", bob),
		func(in []byte) ([]byte, error) { s := sha256.Sum256(in); return s[:], nil })
	none, _ := localaccess.SignWith(map[string]any{"alg": "none"}, claims(now, "n", bob), func([]byte) ([]byte, error) { return []byte("x"), nil })
	ps256, _ := localaccess.SignWith(map[string]any{"alg": "PS256", "kid": teamKid}, claims(now, "n", bob), func(in []byte) ([]byte, error) {
		s := sha256.Sum256(in)
		return rsa.SignPSS(rand.Reader, f.team.issuer.Current().Private, crypto.SHA256, s[:], nil)
	})
	tests := []struct {
		name   string
		body   string
		status int
		msg    string
	}{
		{"expired request token", tokenBody(f.team.token(t, map[string]any{"exp": now.Unix() - 1, "nonce": "n", "identity": bob})), 403, "token expired"},
		{"no exp", tokenBody(f.team.token(t, map[string]any{"nonce": "n", "identity": bob})), 403, "token has no exp"},
		{"exp not a number", tokenBody(f.team.token(t, map[string]any{"exp": "soon", "nonce": "n", "identity": bob})), 403, "exp is not a number"},
		{"exp beyond year 9999", tokenBody(f.team.token(t, map[string]any{"exp": int64(253402300800), "nonce": "n", "identity": bob})), 403, "token exp is out of range"},
		{"exp beyond int64", tokenBody(f.team.token(t, map[string]any{"exp": json.RawMessage("1e19"), "nonce": "n", "identity": bob})), 403, "token exp is out of range"},
		{"exp beyond float64", tokenBody(f.team.token(t, map[string]any{"exp": json.RawMessage("1e400"), "nonce": "n", "identity": bob})), 403, "token exp is out of range"},
		{"exp negative", tokenBody(f.team.token(t, map[string]any{"exp": -1, "nonce": "n", "identity": bob})), 403, "token exp is out of range"},
		{"bad signature (team kid, other key)", tokenBody(signWith(stranger, teamKid, claims(now, "n", bob))), 403, "signature does not verify"},
		{"unknown kid", tokenBody(signWith(stranger, stranger.ID, claims(now, "n", bob))), 403, "signature does not verify"},
		{"tampered payload", tokenBody(parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"exp":9999999999,"nonce":"n","identity":{"email":"bob@example.com"}}`)) + "." + parts[2]), 403, "signature does not verify"},
		{"HS256 with the team kid", tokenBody(hs256), 403, "RS256"},
		{"alg none", tokenBody(none), 403, "RS256"},
		{"PS256 by the team key", tokenBody(ps256), 403, "RS256"},
		{"missing nonce", tokenBody(f.team.token(t, claims(now, nil, bob))), 403, "no nonce"},
		{"null nonce", tokenBody(f.team.token(t, map[string]any{"exp": now.Unix() + 60, "nonce": nil, "identity": bob})), 403, "no nonce"},
		{"missing token field", `{"tok":"a.b.c"}`, 403, `no "token" field`},
		{"token not a string", `{"token":42}`, 403, `"token" must be a string`},
		{"empty token", `{"token":""}`, 403, "token is empty"},
		{"non-JSON body", `token=abc`, 403, "must be a JSON object"},
		{"JSON array body", `["a.b.c"]`, 403, "must be a JSON object"},
		{"empty body", ``, 403, "must be a JSON object"},
		{"garbage token", tokenBody("garbage"), 403, "3 parts"},
		{"four parts", tokenBody(good + ".x"), 403, "3 parts"},
		{"garbage in three parts", tokenBody("a.b.c"), 403, "token header"},
		{"tampered to non-JSON payload", tokenBody(parts[0] + ".bm90IGpzb24." + parts[2]), 403, "signature does not verify"},
		{"signed non-JSON payload", tokenBody(signRaw(t, f.team.issuer.Current(), []byte("not json"))), 403, "payload is not a JSON object"},
		{"signed JSON array payload", tokenBody(signRaw(t, f.team.issuer.Current(), []byte(`["nonce"]`))), 403, "payload is not a JSON object"},
		{"body too large", `{"token":"` + strings.Repeat("a", maxBodyBytes) + `"}`, 413, "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.ToFloat64(f.h.metrics.decisions.WithLabelValues("error", "none"))
			status, out := f.post(t, tc.body)
			if status != tc.status {
				t.Errorf("status %d, want %d (%v)", status, tc.status, out)
			}
			msg, _ := out["error"].(string)
			if out["success"] != false || !strings.Contains(msg, tc.msg) {
				t.Errorf("body %v: want success false and an error containing %q", out, tc.msg)
			}
			if _, signed := out["token"]; signed {
				t.Error("a refused request got a token")
			}
			if _, ok := out["stack"]; ok || len(out) != 2 {
				t.Errorf("body %v: want exactly success and error", out)
			}
			if got := testutil.ToFloat64(f.h.metrics.decisions.WithLabelValues("error", "none")); got != before+1 {
				t.Errorf("error counter %v -> %v", before, got)
			}
		})
	}
}

// TestAccessKeyRotation: Access rotates its key; the unknown kid makes the
// key set refetch the certs, and the token verifies.
func TestAccessKeyRotation(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	now := f.clock.Now()
	f.verifyAsAccess(t, f.evaluate(t, f.team.token(t, claims(now, "n1", map[string]any{"email": "bob@example.com"}))), "n1")
	if _, err := f.team.issuer.Rotate(); err != nil {
		t.Fatal(err)
	}
	v := f.verifyAsAccess(t, f.evaluate(t, f.team.token(t, claims(now, "n2", map[string]any{"email": "bob@example.com"}))), "n2")
	if !v.success {
		t.Error("token by the rotated Access key was not allowed")
	}
}

// TestPaddedBase64 tolerates "=" padding on the segments (edge case 11)
// when the signature is over the unpadded form, as RFC 7515 computes it.
func TestPaddedBase64(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	tok := f.team.token(t, claims(f.clock.Now(), "n-pad", map[string]any{"email": "bob@example.com", "pad": "xy"}))
	parts := strings.Split(tok, ".")
	padded := 0
	for i, p := range parts {
		if n := len(p) % 4; n != 0 {
			parts[i] = p + strings.Repeat("=", 4-n)
			padded++
		}
	}
	if padded == 0 {
		t.Fatal("no segment needed padding; change the claims")
	}
	v := f.verifyAsAccess(t, f.evaluate(t, strings.Join(parts, ".")), "n-pad")
	if !v.success {
		t.Error("padded token denied")
	}
}

// TestLargeIdentity: an identity with thousands of groups is a login, not
// an oversized request.
func TestLargeIdentity(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	groups := make([]any, 0, 3000)
	for i := range 3000 {
		groups = append(groups, map[string]any{"id": i, "name": "group-with-a-long-name-" + itoa(int64(i))})
	}
	groups = append(groups, "admins")
	id := map[string]any{"email": "ann@example.com", "device_id": "dev-healthy", "groups": groups}
	if v := f.verifyAsAccess(t, f.evaluate(t, f.team.token(t, claims(f.clock.Now(), "n", id))), "n"); !v.success {
		t.Error("denied")
	}
}

func TestIssuerAndAudienceWhenConfigured(t *testing.T) {
	cfg := Config{Enabled: true, Policy: policy.Config{Rules: testRules()}, Issuer: "team.cloudflareaccess.com", Audience: []string{"aud-1", "aud-2"}}
	f := newFixture(t, fixtureOpts{cfg: &cfg})
	now := f.clock.Now()
	base := func(extra map[string]any) string {
		c := claims(now, "n", map[string]any{"email": "bob@example.com"})
		for k, v := range extra {
			c[k] = v
		}
		b, _ := json.Marshal(map[string]string{"token": f.team.token(t, c)})
		return string(b)
	}
	tests := []struct {
		name   string
		extra  map[string]any
		status int
	}{
		{"iss and aud array match", map[string]any{"iss": teamIssuer, "aud": []string{"x", "aud-2"}}, 200},
		{"aud as string", map[string]any{"iss": teamIssuer, "aud": "aud-1"}, 200},
		{"iss with trailing slash", map[string]any{"iss": teamIssuer + "/", "aud": "aud-1"}, 200},
		{"wrong iss", map[string]any{"iss": "https://evil.cloudflareaccess.com", "aud": "aud-1"}, 403},
		{"no iss", map[string]any{"aud": "aud-1"}, 403},
		{"wrong aud", map[string]any{"iss": teamIssuer, "aud": []string{"aud-3"}}, 403},
		{"no aud", map[string]any{"iss": teamIssuer}, 403},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, out := f.post(t, base(tc.extra))
			if status != tc.status {
				t.Errorf("status %d, want %d: %v", status, tc.status, out)
			}
		})
	}
}

// TestIssuerDefaultsToTheTeam: without external_evaluation.issuer, a
// token carrying an iss must carry the team's; one without iss is accepted
// (Cloudflare does not document iss on this token), and aud is not checked.
func TestIssuerDefaultsToTheTeam(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	tests := []struct {
		name     string
		iss      any // nil: no iss claim
		wantCode int
		wantBody map[string]any
	}{
		{"no iss", nil, 200, nil},
		{"the team's iss", teamIssuer, 200, nil},
		{"the team's iss with a slash", teamIssuer + "/", 200, nil},
		{"another team's iss", "https://evil.cloudflareaccess.com", 403, map[string]any{"success": false, "error": "token issuer does not match"}},
		{"iss not a string", 17, 403, map[string]any{"success": false, "error": "token issuer does not match"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := claims(f.clock.Now(), "n", map[string]any{"email": "bob@example.com"})
			c["aud"] = 17
			if tc.iss != nil {
				c["iss"] = tc.iss
			}
			body, _ := json.Marshal(map[string]string{"token": f.team.token(t, c)})
			code, out := f.post(t, string(body))
			if code != tc.wantCode {
				t.Fatalf("status %d, want %d: %v", code, tc.wantCode, out)
			}
			if tc.wantBody != nil && !reflect.DeepEqual(out, tc.wantBody) {
				t.Errorf("body %v, want %v", out, tc.wantBody)
			}
		})
	}
}

// TestJWTsOnlyAtDebug: raw tokens are bearer credentials with PII.
func TestJWTsOnlyAtDebug(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		t.Run(level.String(), func(t *testing.T) {
			f := newFixture(t, fixtureOpts{logLevel: level})
			in := f.team.token(t, claims(f.clock.Now(), "n", map[string]any{"email": "ann@example.com", "device_id": "dev-healthy", "groups": []string{"admins"}}))
			out := f.evaluate(t, in)
			// A refused token must not be logged either.
			bad := f.team.token(t, claims(f.clock.Now(), nil, map[string]any{"email": "ann@example.com"}))
			body, _ := json.Marshal(map[string]string{"token": bad})
			f.post(t, string(body))
			logs := f.logs.String()
			for name, tok := range map[string]string{"incoming": in, "outgoing": out, "refused": bad} {
				// The signature part alone is enough to spot a token.
				sig := tok[strings.LastIndexByte(tok, '.')+1:]
				if got := strings.Contains(logs, sig); got != (level == slog.LevelDebug) {
					t.Errorf("%s JWT in %s logs: %v", name, level, got)
				}
			}
			var decision map[string]any
			for line := range strings.SplitSeq(logs, "\n") {
				if strings.Contains(line, `"msg":"external evaluation"`) {
					_ = json.Unmarshal([]byte(line), &decision)
				}
			}
			if decision["level"] != "INFO" || decision["email"] != "ann@example.com" || decision["device_id"] != "dev-healthy" ||
				decision["rule"] != "admins-healthy" || decision["result"] != "allow" || decision["score"] != float64(90) {
				t.Errorf("decision log %v", decision)
			}
		})
	}
}

func TestDefaultDenyLogged(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.evaluate(t, f.team.token(t, claims(f.clock.Now(), "n", map[string]any{"email": "eve@example.com"})))
	if logs := f.logs.String(); !strings.Contains(logs, `"rule":"default deny"`) || !strings.Contains(logs, `"result":"deny"`) {
		t.Errorf("logs: %s", logs)
	}
}

// TestKeysRequired: External Evaluation never runs without verifying the
// incoming tokens.
func TestKeysRequired(t *testing.T) {
	cfg := Config{Enabled: true, Policy: policy.Config{Rules: testRules()}, Keyring: keyring.Config{KeyFile: t.TempDir() + "/k.pem"}}
	h, err := New(t.Context(), Options{Config: cfg})
	if err == nil {
		_ = h.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "key set is required") {
		t.Errorf("err %v", err)
	}
}

func TestMethodsAndPaths(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	for _, path := range []string{"/keys", "/keys/"} {
		resp, err := http.Get(f.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", path, resp.StatusCode)
		}
	}
}

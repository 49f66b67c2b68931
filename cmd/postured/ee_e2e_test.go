package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/postured/postured/internal/app"
)

const eeConfig = e2eConfig + `
external_evaluation:
  enabled: true
  key_file: "%DIR%/ee-key.pem"
  rules:
    - name: healthy-devices
      action: allow
      when:
        score: {min: 50}
        provider_scores: {inventory: {min: 50}}
`

func evaluateToken(t *testing.T, in *instance, claims map[string]any) (int, []byte) {
	t.Helper()
	tok, err := in.issuer.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]string{"token": tok})
	resp, err := http.Post(in.url+"/evaluate", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// verifyAsAccess checks a response token the way Access does: signature by
// kid from /keys, exp not elapsed, nonce equal; it returns success.
func verifyAsAccess(t *testing.T, in *instance, body []byte, nonce string) bool {
	t.Helper()
	var out struct{ Token string }
	if err := json.Unmarshal(body, &out); err != nil || out.Token == "" {
		t.Fatalf("no token in %s", body)
	}
	resp, err := http.Get(in.url + "/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var jwks jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&jwks); err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSignedCompact(out.Token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	keys := jwks.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q not in /keys", jws.Signatures[0].Header.KeyID)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Success bool   `json:"success"`
		Exp     int64  `json:"exp"`
		Iat     int64  `json:"iat"`
		Nonce   string `json:"nonce"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	if c.Nonce != nonce || c.Exp != c.Iat+60 || time.Unix(c.Exp, 0).Before(time.Now()) {
		t.Fatalf("claims %+v", c)
	}
	return c.Success
}

func TestEndToEndExternalEvaluation(t *testing.T) {
	dir := t.TempDir()
	// asset-7 scores 7, asset-80 scores 80 (score = i % 101).
	writeInventory(t, dir, 100)
	cfgText := strings.ReplaceAll(eeConfig, "%DIR%", dir)
	in := startPostured(t, cfgText)
	token, _ := in.issuer.AppToken(testAUD, time.Minute)
	if code, b := in.post(t, "/posture", token, batch(0, 100, nil)); code != 200 {
		t.Fatalf("posture batch: %d %s", code, b)
	}
	t.Run("a user token cannot post posture", func(t *testing.T) {
		// A user of the app posting a healthy score for their device_id
		// would let External Evaluation allow them.
		now := time.Now()
		userTok, err := in.issuer.Sign(map[string]any{"type": "app", "aud": []string{testAUD}, "iss": "https://" + testTeam,
			"sub": "7335d417-61da-459d-899c-0a01c76a2f94", "email": "jdoe@example.com", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()})
		if err != nil {
			t.Fatal(err)
		}
		forged := batch(7, 1, func(_ int, d map[string]string) { d["serial_number"] = "SER00080" })
		if code, b := in.post(t, "/posture", userTok, forged); code != 403 || string(b) != `{"error":"not a service token","success":false}` {
			t.Fatalf("user token: %d %s", code, b)
		}
	})
	identity := func(deviceID, nonce string) map[string]any {
		return map[string]any{"nonce": nonce, "exp": time.Now().Add(time.Minute).Unix(), "iat": time.Now().Unix(),
			"identity": map[string]any{"email": "jdoe@example.com", "device_id": deviceID}}
	}
	// The attacker's side of posture spoofing: a device with its own valid
	// serial that copies a healthy laptop's hostname, then its MAC, must
	// not get that laptop's score or s2s_id, on /posture or through
	// External Evaluation (asset-80 scores 80: SER00080, mbp-80,
	// 02:00:00:00:00:50).
	spoof := []byte(`{"devices":[` +
		`{"device_id":"cf-spoof-host","serial_number":"C02ATTACKER1","hostname":"MBP-80.corp.example"},` +
		`{"device_id":"cf-spoof-mac","serial_number":"C02ATTACKER2","mac_address":"02-00-00-00-00-50"}]}`)
	code, b := in.post(t, "/posture", token, spoof)
	if code != 200 {
		t.Fatalf("spoof batch: %d %s", code, b)
	}
	var spoofed postureReply
	if err := json.Unmarshal(b, &spoofed); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"cf-spoof-host", "cf-spoof-mac"} {
		if r := spoofed.Result[id]; r.S2SID != "" || r.Score != 0 {
			t.Errorf("%s borrowed a healthy laptop's posture: %+v", id, r)
		}
	}
	tests := []struct {
		name   string
		device string
		allow  bool
	}{
		{"spoofed hostname denied", "cf-spoof-host", false},
		{"spoofed MAC denied", "cf-spoof-mac", false},
		{"healthy device allowed", "cf-80", true},
		{"unhealthy device denied", "cf-7", false},
		{"device no batch carried is denied", "cf-unknown", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, b := evaluateToken(t, in, identity(tc.device, "nonce-"+tc.device))
			if code != 200 {
				t.Fatalf("status %d: %s", code, b)
			}
			if got := verifyAsAccess(t, in, b, "nonce-"+tc.device); got != tc.allow {
				t.Errorf("success = %v, want %v", got, tc.allow)
			}
		})
	}
	t.Run("unverifiable token is refused unsigned", func(t *testing.T) {
		resp, err := http.Post(in.url+"/evaluate", "application/json", strings.NewReader(`{"token":"a.b.c"}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 403 || strings.Contains(string(b), `"token"`) || !strings.Contains(string(b), `"success":false`) {
			t.Errorf("got %d %s", resp.StatusCode, b)
		}
	})
	if fi, err := os.Stat(filepath.Join(dir, "ee-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("signing key file: %v %v", fi, err)
	}

	// The CLI on the same config: list, rotate (the new key is published
	// but does not sign yet), explain an identity with device flags.
	cfgPath := in.cfgPath
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"keys", "rotate", "-c", cfgPath}, &out, &errb); code != 0 {
		t.Fatalf("keys rotate: %s", errb.String())
	}
	if s := out.String(); strings.Count(s, "signing") != 1 || strings.Count(s, "next") != 1 {
		t.Errorf("after rotate:\n%s", s)
	}
	idFile := writeFile(t, dir, "identity.json", `{"email":"jdoe@example.com","device_id":"cf-80"}`)
	out.Reset()
	if code := run(context.Background(), []string{"explain", "-c", cfgPath, "--identity", idFile, "--serial", "SER00080"}, &out, &errb); code != 0 {
		t.Fatalf("explain --identity: %s", errb.String())
	}
	if !strings.Contains(out.String(), "healthy-devices") || !strings.Contains(strings.ToLower(out.String()), "allow") {
		t.Errorf("explain --identity:\n%s", out.String())
	}
}

func TestExternalEvaluationConfigErrors(t *testing.T) {
	dir := t.TempDir()
	inv := writeFile(t, dir, "inv.yaml", minimalInventory)
	base := "access: {team_domain: t.cloudflareaccess.com, audience: [a]}\nproviders:\n  - {name: inv, type: static, weight: 1, file: " + inv + "}\n"
	tests := []struct {
		name, yaml, want string
	}{
		{"typo in a rule", base + "external_evaluation:\n  enabled: true\n  rules:\n    - name: r\n      action: allow\n      when: {scroe: {min: 80}}\n", `line 9: unknown key "scroe" (did you mean "score"?)`},
		{"unknown provider in a rule", base + "external_evaluation:\n  enabled: true\n  rules:\n    - name: r\n      action: allow\n      when: {provider_scores: {jamf: {min: 1}}}\n", `provider_scores names unknown provider "jamf"`},
		{"enabled without rules", base + "external_evaluation:\n  enabled: true\n", "external_evaluation"},
		{"insecure access", "listen: 127.0.0.1:8080\naccess: {insecure_skip_verify: true}\nproviders:\n  - {name: inv, type: static, weight: 1, file: " + inv + "}\nexternal_evaluation:\n  enabled: true\n  rules: [{name: r, action: allow, when: {is_warp: true}}]\n", "not allowed with access.insecure_skip_verify"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := app.Parse([]byte(tc.yaml), app.Registry(), env(nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

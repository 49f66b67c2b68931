package evaluate

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postured/postured/server/evaluate/keyring"
	"github.com/postured/postured/server/evaluate/policy"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// rfc7638 computes the SHA-256 thumbprint by hand (RFC 7638 section 3.1:
// the required members in lexicographic order, no whitespace), as an
// independent check of the kid.
func rfc7638(pub *rsa.PublicKey) string {
	b64 := base64.RawURLEncoding.EncodeToString
	e := beBytes(pub.E)
	sum := sha256.Sum256([]byte(`{"e":"` + b64(e) + `","kty":"RSA","n":"` + b64(pub.N.Bytes()) + `"}`))
	return hex.EncodeToString(sum[:])
}

func beBytes(e int) []byte {
	var out []byte
	for ; e > 0; e >>= 8 {
		out = append([]byte{byte(e)}, out...)
	}
	return out
}

func TestKeysDocument(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	set, doc := f.jwks(t, "/keys")
	set2, _ := f.jwks(t, "/keys/")
	if len(set.Keys) != 1 || len(set2.Keys) != 1 || set.Keys[0].KeyID != set2.Keys[0].KeyID {
		t.Fatalf("/keys %v, /keys/ %v: want the same single key", set.Keys, set2.Keys)
	}
	var raw struct {
		Keys       []map[string]any `json:"keys"`
		PublicCert struct {
			Kid  string `json:"kid"`
			Cert string `json:"cert"`
		} `json:"public_cert"`
		PublicCerts []struct {
			Kid  string `json:"kid"`
			Cert string `json:"cert"`
		} `json:"public_certs"`
	}
	b, _ := json.Marshal(doc)
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	k := raw.Keys[0]
	if k["kty"] != "RSA" || k["alg"] != "RS256" || k["use"] != "sig" || k["e"] != "AQAB" || k["n"] == "" {
		t.Errorf("JWK %v", k)
	}
	for name := range k {
		if !slices.Contains([]string{"kty", "kid", "alg", "use", "n", "e"}, name) {
			t.Errorf("JWK has unexpected member %q (private part?)", name)
		}
	}
	pub := set.Keys[0].Key.(*rsa.PublicKey)
	if pub.N.BitLen() < 2048 {
		t.Errorf("key is %d bits", pub.N.BitLen())
	}
	if kid := rfc7638(pub); k["kid"] != kid {
		t.Errorf("kid %v, want RFC 7638 thumbprint %s", k["kid"], kid)
	}
	if raw.PublicCert.Kid != k["kid"] || len(raw.PublicCerts) != 1 || raw.PublicCerts[0].Kid != k["kid"] {
		t.Errorf("public_cert %v public_certs %v", raw.PublicCert.Kid, raw.PublicCerts)
	}
	block, _ := pem.Decode([]byte(raw.PublicCert.Cert))
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("public_cert is not a PEM certificate: %q", raw.PublicCert.Cert)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.PublicKey.(*rsa.PublicKey).Equal(pub) {
		t.Error("certificate key differs from the JWK")
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		t.Errorf("certificate is not self-signed: %v", err)
	}
	// Replicas must serve the same document: the certificate is
	// deterministic.
	_, doc2 := f.jwks(t, "/keys")
	if !bytes.Equal(doc["public_certs"], doc2["public_certs"]) {
		t.Error("certificates differ between two requests")
	}
}

// TestKeyPersistsAcrossRestart: the key is created 0600 at first start and
// reused, byte for byte, by the next start.
func TestKeyPersistsAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "ee.pem")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Enabled: true, Keyring: keyring.Config{KeyFile: path}, Policy: policy.Config{Rules: testRules()}}
	acc := newTeam(t)
	first := newFixture(t, fixtureOpts{cfg: &cfg, team: acc})
	kid1 := first.verifyAsAccess(t, first.evaluate(t, acc.token(t, claims(t0, "n1", map[string]any{"email": "bob@example.com"}))), "n1").kid
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %04o, want 0600", perm)
	}
	data1, _ := os.ReadFile(path)
	first.srv.Close()
	_ = first.h.Close()

	second := newFixture(t, fixtureOpts{cfg: &cfg, team: acc})
	kid2 := second.verifyAsAccess(t, second.evaluate(t, acc.token(t, claims(t0, "n2", map[string]any{"email": "bob@example.com"}))), "n2").kid
	if kid1 != kid2 {
		t.Errorf("kid changed across restart: %s -> %s", kid1, kid2)
	}
	if data2, _ := os.ReadFile(path); !bytes.Equal(data1, data2) {
		t.Error("key file rewritten on restart")
	}
	if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".ee.pem.tmp-*")); len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func pemOf(t *testing.T, typ string, der []byte, headers map[string]string) []byte {
	t.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: typ, Headers: headers, Bytes: der})
}

// TestOperatorSuppliedKey: a plain PKCS#1 or PKCS#8 RSA key (openssl
// genrsa) signs from the start.
func TestOperatorSuppliedKey(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 3072)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(priv)
	for name, data := range map[string][]byte{
		"PKCS#1": pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(priv), nil),
		"PKCS#8": pemOf(t, "PRIVATE KEY", pkcs8, nil),
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "k.pem")
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := Config{Enabled: true, Keyring: keyring.Config{KeyFile: path}, Policy: policy.Config{Rules: testRules()}}
			f := newFixture(t, fixtureOpts{cfg: &cfg})
			v := f.verifyAsAccess(t, f.evaluate(t, f.team.token(t, claims(t0, "n", map[string]any{"email": "bob@example.com"}))), "n")
			if v.kid != rfc7638(&priv.PublicKey) {
				t.Errorf("kid %s, want the thumbprint of the supplied key", v.kid)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
				t.Error("supplied key file was rewritten")
			}
		})
	}
}

// TestRotationWithOverlap plays `postured keys rotate` against a running
// server: the new key is published first, signs after the overlap, and the
// old one leaves /keys after the grace period. Both verify while both are
// published.
func TestRotationWithOverlap(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	bob := map[string]any{"email": "bob@example.com"}
	ask := func(nonce string) string {
		return f.evaluate(t, f.team.token(t, claims(f.clock.Now(), nonce, bob)))
	}
	kids := func() []string {
		set, _ := f.jwks(t, "/keys")
		var out []string
		for _, k := range set.Keys {
			out = append(out, k.KeyID)
		}
		slices.Sort(out)
		return out
	}
	old := f.verifyAsAccess(t, ask("n0"), "n0").kid

	// The CLI, another process: its own store over the same file.
	cli, err := keyring.Open(f.cfg.Keyring)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ring, err := keyring.Rotate(t.Context(), cli, f.clock.Now(), time.Hour, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(ring.Keys) != 2 || ring.Keys[0].ID != old {
		t.Fatalf("ring after rotate: %+v", ring.Describe(f.clock.Now(), 24*time.Hour))
	}
	next := ring.Keys[1].ID
	switchAt := ring.Keys[1].SignsFrom
	if !switchAt.Equal(f.clock.Now().Add(time.Hour)) || !ring.Keys[0].RetiredAt.Equal(switchAt) {
		t.Errorf("schedule: new signs from %v, old retires %v", switchAt, ring.Keys[0].RetiredAt)
	}

	// The server notices at its next reload, without a restart.
	f.clock.Advance(reloadInterval + time.Second)
	both := []string{old, next}
	slices.Sort(both)
	if got := kids(); !slices.Equal(got, both) {
		t.Fatalf("/keys during overlap %v, want both %v", got, both)
	}
	if v := f.verifyAsAccess(t, ask("n1"), "n1"); v.kid != old {
		t.Errorf("during overlap signed by %s, want the old key", v.kid)
	}
	_, doc := f.jwks(t, "/keys")
	if !strings.Contains(string(doc["public_cert"]), old) {
		t.Errorf("public_cert during overlap: %s", doc["public_cert"])
	}

	// Just before the switch the old key signs; just after, the new one;
	// both answers verify against /keys while both are published.
	f.clock.Advance(switchAt.Sub(f.clock.Now()) - time.Second)
	beforeSwitch := ask("n2")
	f.clock.Advance(10 * time.Second)
	afterSwitch := ask("n3")
	if v := f.verifyAsAccess(t, beforeSwitch, "n2"); v.kid != old || !v.success {
		t.Errorf("before the switch: kid %s success %v", v.kid, v.success)
	}
	if v := f.verifyAsAccess(t, afterSwitch, "n3"); v.kid != next || !v.success {
		t.Errorf("after the switch: kid %s success %v", v.kid, v.success)
	}
	if got := kids(); !slices.Equal(got, both) {
		t.Errorf("/keys after the switch %v, want both (grace)", got)
	}

	// After the grace period the old key is gone.
	f.clock.Advance(24 * time.Hour)
	if got := kids(); !slices.Equal(got, []string{next}) {
		t.Errorf("/keys after grace %v, want only %s", got, next)
	}
	states := map[string]string{}
	for _, s := range ring.Describe(f.clock.Now(), 24*time.Hour) {
		states[s.ID] = s.State
	}
	if states[old] != "dropped" || states[next] != "signing" {
		t.Errorf("states after grace %v", states)
	}

	// The next rotation removes the dropped key from the store.
	ring, err = keyring.Rotate(t.Context(), cli, f.clock.Now(), time.Hour, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(ring.Keys) != 2 || ring.Keys[0].ID != next {
		t.Errorf("ring after second rotation: %+v", ring.Describe(f.clock.Now(), 24*time.Hour))
	}
}

// TestReloadFailureKeepsRing: a key file broken while running is reported,
// and the server keeps signing with the ring it has.
func TestReloadFailureKeepsRing(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	bob := map[string]any{"email": "bob@example.com"}
	kid := f.verifyAsAccess(t, f.evaluate(t, f.team.token(t, claims(f.clock.Now(), "n1", bob))), "n1").kid
	if err := os.WriteFile(f.cfg.Keyring.KeyFile, []byte("oops"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(reloadInterval)
	if v := f.verifyAsAccess(t, f.evaluate(t, f.team.token(t, claims(f.clock.Now(), "n2", bob))), "n2"); v.kid != kid {
		t.Errorf("kid %s after a failed reload, want %s", v.kid, kid)
	}
	if n := testutil.ToFloat64(f.h.metrics.keyReloads.WithLabelValues("error")); n != 1 {
		t.Errorf("reload errors %v", n)
	}
	if !strings.Contains(f.logs.String(), "key ring reload failed") {
		t.Errorf("logs: %s", f.logs.String())
	}
	// Deleted: same.
	_ = os.Remove(f.cfg.Keyring.KeyFile)
	if err := f.h.reload(t.Context()); err == nil || !strings.Contains(err.Error(), "no signing key") {
		t.Errorf("reload of a deleted file: %v", err)
	}
	f.verifyAsAccess(t, f.evaluate(t, f.team.token(t, claims(f.clock.Now(), "n3", bob))), "n3")
}

// TestConcurrentRequestsDuringRotation exercises the handler under -race.
func TestConcurrentRequestsDuringRotation(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	tok := f.team.token(t, map[string]any{"exp": f.clock.Now().Add(time.Hour).Unix(), "nonce": "n",
		"identity": map[string]any{"email": "bob@example.com"}})
	body, _ := json.Marshal(map[string]string{"token": tok})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 5 {
				resp, err := http.Post(f.srv.URL+"/evaluate", "application/json", bytes.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("status %d", resp.StatusCode)
				}
				if resp, err = http.Get(f.srv.URL + "/keys"); err == nil {
					resp.Body.Close()
				}
			}
		})
	}
	cli, err := keyring.Open(f.cfg.Keyring) // the CLI, another process
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	for range 3 {
		if _, err := keyring.Rotate(t.Context(), cli, f.clock.Now(), 0, time.Hour); err != nil {
			t.Error(err)
		}
		f.clock.Advance(reloadInterval)
	}
	wg.Wait()
	f.verifyAsAccess(t, f.evaluate(t, tok), "n")
}

// TestKeyRingVanishedKeepsSigning: a ring that disappears from its store
// under a running server (Redis eviction or FLUSHDB; here the file) is
// never replaced by a fresh key: the server signs with the key it holds,
// logs an error and reports it in /readyz until a ring is back.
func TestKeyRingVanishedKeepsSigning(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	bob := map[string]any{"email": "bob@example.com"}
	before := f.verifyAsAccess(t, f.evaluate(t, f.team.token(t, claims(f.clock.Now(), "n0", bob))), "n0").kid
	if st := f.h.KeyRingStatus(); !st.Ready || st.LastError != "" || st.Records != 1 {
		t.Fatalf("status with a ring: %+v", st)
	}

	if err := os.Remove(f.cfg.Keyring.KeyFile); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(reloadInterval + time.Second)
	after := f.verifyAsAccess(t, f.evaluate(t, f.team.token(t, claims(f.clock.Now(), "n1", bob))), "n1").kid
	if after != before {
		t.Errorf("signs with %s after the ring vanished, want the key in memory %s", after, before)
	}
	if _, err := os.Stat(f.cfg.Keyring.KeyFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a reload recreated the key ring: %v", err)
	}
	st := f.h.KeyRingStatus()
	if !st.Ready || !strings.Contains(st.LastError, "keys init") {
		t.Errorf("status without a ring: %+v", st)
	}
	if logs := f.logs.String(); !strings.Contains(logs, `"level":"ERROR"`) || !strings.Contains(logs, "signing key ring missing") {
		t.Errorf("no error logged:\n%s", logs)
	}

	cli, err := keyring.Open(f.cfg.Keyring)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ring, err := keyring.Init(t.Context(), cli, f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(reloadInterval + time.Second)
	restored := f.verifyAsAccess(t, f.evaluate(t, f.team.token(t, claims(f.clock.Now(), "n2", bob))), "n2").kid
	if restored != ring.Keys[0].ID {
		t.Errorf("signs with %s after keys init, want %s", restored, ring.Keys[0].ID)
	}
	if st := f.h.KeyRingStatus(); st.LastError != "" {
		t.Errorf("status after keys init: %+v", st)
	}
}

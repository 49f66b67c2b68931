// Package localaccess is a local stand-in for Cloudflare Access: an RSA key
// set served in the exact shape of https://<team>/cdn-cgi/access/certs, and
// RS256 signing of the tokens Access would send (application tokens for the
// posture endpoint, identity tokens for External Evaluation). postured's
// demo uses it so a newcomer can call the service without a Cloudflare
// account; the tests use it to play Access.
package localaccess

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"sync"
	"time"
)

// Key is one signing key of the team.
type Key struct {
	ID      string
	Private *rsa.PrivateKey
	certPEM string
}

// Issuer holds the team's keys; the last one added signs.
type Issuer struct {
	// Issuer is the iss of the tokens, "https://<team host>".
	Issuer string

	mu   sync.Mutex
	keys []*Key
}

// New creates an issuer with one fresh 2048-bit key.
func New(issuer string) (*Issuer, error) {
	i := &Issuer{Issuer: issuer}
	if _, err := i.Rotate(); err != nil {
		return nil, err
	}
	return i, nil
}

// NewKey generates a key with a 64-hex kid, as Access's are.
func NewKey() (*Key, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("localaccess: generate key: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("localaccess: marshal key: %w", err)
	}
	sum := sha256.Sum256(der)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localaccess"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
	}
	cert, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return nil, fmt.Errorf("localaccess: self-sign: %w", err)
	}
	return &Key{ID: hex.EncodeToString(sum[:]), Private: priv,
		certPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert}))}, nil
}

// Rotate publishes a new key and makes it the signing key; the previous
// keys stay published, as Access keeps the old key valid for a while.
func (i *Issuer) Rotate() (*Key, error) {
	k, err := NewKey()
	if err != nil {
		return nil, err
	}
	i.mu.Lock()
	i.keys = append(i.keys, k)
	i.mu.Unlock()
	return k, nil
}

// Current is the signing key.
func (i *Issuer) Current() *Key {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.keys[len(i.keys)-1]
}

// ServeHTTP serves the certs document: keys as JWKs, plus public_cert and
// public_certs as PEM, like Access.
func (i *Issuer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	i.mu.Lock()
	type jwk struct {
		Kid string `json:"kid"`
		Kty string `json:"kty"`
		Alg string `json:"alg"`
		Use string `json:"use"`
		E   string `json:"e"`
		N   string `json:"n"`
	}
	type cert struct {
		Kid  string `json:"kid"`
		Cert string `json:"cert"`
	}
	var doc struct {
		Keys        []jwk  `json:"keys"`
		PublicCert  cert   `json:"public_cert"`
		PublicCerts []cert `json:"public_certs"`
	}
	for _, k := range i.keys {
		pub := k.Private.PublicKey
		doc.Keys = append(doc.Keys, jwk{Kid: k.ID, Kty: "RSA", Alg: "RS256", Use: "sig",
			E: b64(big.NewInt(int64(pub.E)).Bytes()), N: b64(pub.N.Bytes())})
		doc.PublicCerts = append(doc.PublicCerts, cert{Kid: k.ID, Cert: k.certPEM})
	}
	cur := i.keys[len(i.keys)-1]
	doc.PublicCert = cert{Kid: cur.ID, Cert: cur.certPEM}
	i.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(doc)
}

// Sign signs claims with the current key.
func (i *Issuer) Sign(claims map[string]any) (string, error) {
	k := i.Current()
	return SignRS256(k.Private, k.ID, claims)
}

// AppToken is the application token Access puts in Cf-Access-Jwt-Assertion
// for a service token: type app, aud array, empty sub, common_name.
func (i *Issuer) AppToken(aud string, ttl time.Duration) (string, error) {
	now := time.Now()
	return i.Sign(map[string]any{
		"type": "app", "aud": []string{aud}, "iss": i.Issuer, "sub": "",
		"common_name": "88bf3b6d86161464f6509f7219099e57.access",
		"iat":         now.Unix(), "nbf": now.Unix(), "exp": now.Add(ttl).Unix(),
	})
}

// SignRS256 builds a compact JWS with header {"alg":"RS256","kid":kid,"typ":"JWT"}.
func SignRS256(priv *rsa.PrivateKey, kid string, claims any) (string, error) {
	return SignWith(map[string]any{"alg": "RS256", "kid": kid, "typ": "JWT"}, claims, func(signed []byte) ([]byte, error) {
		h := sha256.Sum256(signed)
		return rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, h[:])
	})
}

// SignWith builds a compact JWS with an arbitrary header and signature
// function, so tests can forge tokens (alg none, HS256, ...).
func SignWith(header map[string]any, claims any, sign func(signingInput []byte) ([]byte, error)) (string, error) {
	h, err := json.Marshal(header)
	if err != nil {
		return "", err
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	input := b64(h) + "." + b64(c)
	sig, err := sign([]byte(input))
	if err != nil {
		return "", fmt.Errorf("localaccess: sign: %w", err)
	}
	return input + "." + b64(sig), nil
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

package evaluate

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Key sizes. Access only accepts RSA keys (cloudflare-protocols.md B.1).
const (
	// MinKeyBits is the smallest RSA modulus accepted from a key store.
	MinKeyBits = 2048
	// newKeyBits is the size of generated keys.
	newKeyBits = 2048
	// rsaExponent is the only public exponent accepted (edge case 16).
	rsaExponent = 65537
)

// SigningKey is one key of the ring with its schedule. A key is published
// in /keys from the moment it is in the ring until RotationGrace after
// RetiredAt; it signs from SignsFrom until RetiredAt.
type SigningKey struct {
	// ID is the kid: the RFC 7638 SHA-256 thumbprint of the public key, hex.
	ID          string
	PublishedAt time.Time
	SignsFrom   time.Time
	// RetiredAt is when the key stops signing (its successor's SignsFrom);
	// zero while it has no successor.
	RetiredAt time.Time
	Private   *rsa.PrivateKey
}

// Ring is the set of signing keys, current, next and retiring.
type Ring struct {
	Keys []SigningKey
}

// NewSigningKey generates a 2048-bit RSA key, published at publishedAt,
// signing from signsFrom.
func NewSigningKey(publishedAt, signsFrom time.Time) (SigningKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, newKeyBits)
	if err != nil {
		return SigningKey{}, fmt.Errorf("generate signing key: %w", err)
	}
	return newSigningKey(priv, publishedAt, signsFrom)
}

func newSigningKey(priv *rsa.PrivateKey, publishedAt, signsFrom time.Time) (SigningKey, error) {
	if err := checkKey(priv); err != nil {
		return SigningKey{}, err
	}
	kid, err := thumbprint(&priv.PublicKey)
	if err != nil {
		return SigningKey{}, err
	}
	return SigningKey{ID: kid, PublishedAt: publishedAt.UTC(), SignsFrom: signsFrom.UTC(), Private: priv}, nil
}

func checkKey(priv *rsa.PrivateKey) error {
	if bits := priv.N.BitLen(); bits < MinKeyBits {
		return fmt.Errorf("RSA key is %d bits; at least %d are required", bits, MinKeyBits)
	}
	if priv.E != rsaExponent {
		return fmt.Errorf("RSA public exponent is %d; only %d is accepted", priv.E, rsaExponent)
	}
	if err := priv.Validate(); err != nil {
		return fmt.Errorf("RSA key is invalid: %w", err)
	}
	return nil
}

// thumbprint is the RFC 7638 SHA-256 thumbprint, hex (64 characters, like
// Access's own kids).
func thumbprint(pub *rsa.PublicKey) (string, error) {
	sum, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("key thumbprint: %w", err)
	}
	return hex.EncodeToString(sum), nil
}

// signsAt reports whether k is scheduled to sign at t.
func (k SigningKey) signsAt(t time.Time) bool {
	return !k.SignsFrom.After(t) && (k.RetiredAt.IsZero() || t.Before(k.RetiredAt))
}

// publishedAt reports whether k is still published at t.
func (k SigningKey) publishedAt(t time.Time, grace time.Duration) bool {
	return k.RetiredAt.IsZero() || t.Before(k.RetiredAt.Add(grace))
}

// Signer is the key that signs at now: of the keys scheduled to sign then,
// the one that started last. If clocks disagree so that none is scheduled,
// the newest key that has started signing, else the key due first.
func (r Ring) Signer(now time.Time) (SigningKey, bool) {
	best := -1
	for i, k := range r.Keys {
		if k.signsAt(now) && (best < 0 || k.SignsFrom.After(r.Keys[best].SignsFrom)) {
			best = i
		}
	}
	if best < 0 {
		for i, k := range r.Keys {
			if !k.SignsFrom.After(now) && (best < 0 || k.SignsFrom.After(r.Keys[best].SignsFrom)) {
				best = i
			}
		}
	}
	if best < 0 {
		for i, k := range r.Keys {
			if best < 0 || k.SignsFrom.Before(r.Keys[best].SignsFrom) {
				best = i
			}
		}
	}
	if best < 0 {
		return SigningKey{}, false
	}
	return r.Keys[best], true
}

// Published is the keys /keys serves at now: every key not dropped yet,
// and always the signer.
func (r Ring) Published(now time.Time, grace time.Duration) []SigningKey {
	signer, hasSigner := r.Signer(now)
	var out []SigningKey
	for _, k := range r.Keys {
		if k.publishedAt(now, grace) || (hasSigner && k.ID == signer.ID) {
			out = append(out, k)
		}
	}
	return out
}

// KeyStatus describes one key for `postured keys list`.
type KeyStatus struct {
	ID string `json:"kid"`
	// State is signing, next (published, not signing yet), retiring
	// (published, no longer signing) or dropped (no longer published; gone
	// at the next rotation).
	State       string    `json:"state"`
	Bits        int       `json:"bits"`
	PublishedAt time.Time `json:"published_at"`
	SignsFrom   time.Time `json:"signs_from"`
	RetiredAt   time.Time `json:"retired_at,omitzero"`
	// DropAt is when the key leaves /keys; zero while it has no successor.
	DropAt time.Time `json:"drop_at,omitzero"`
}

// Describe lists the ring's keys and their state at now.
func (r Ring) Describe(now time.Time, grace time.Duration) []KeyStatus {
	signer, _ := r.Signer(now)
	out := make([]KeyStatus, 0, len(r.Keys))
	for _, k := range r.Keys {
		s := KeyStatus{ID: k.ID, Bits: k.Private.N.BitLen(), PublishedAt: k.PublishedAt, SignsFrom: k.SignsFrom, RetiredAt: k.RetiredAt}
		if !k.RetiredAt.IsZero() {
			s.DropAt = k.RetiredAt.Add(grace)
		}
		switch {
		case k.ID == signer.ID:
			s.State = "signing"
		case k.SignsFrom.After(now):
			s.State = "next"
		case k.publishedAt(now, grace):
			s.State = "retiring"
		default:
			s.State = "dropped"
		}
		out = append(out, s)
	}
	return out
}

// EnsureKey makes sure the store holds a key, generating one that signs
// from now if it holds none. An existing ring is never replaced.
func EnsureKey(ctx context.Context, store KeyStore, now time.Time) (Ring, error) {
	r, err := store.Load(ctx)
	if err != nil {
		return Ring{}, err
	}
	if len(r.Keys) > 0 {
		return r, nil
	}
	k, err := NewSigningKey(now, now)
	if err != nil {
		return Ring{}, err
	}
	return store.Update(ctx, func(cur Ring) (Ring, error) {
		if len(cur.Keys) > 0 { // another replica won the race
			return cur, ErrNoChange
		}
		return Ring{Keys: []SigningKey{k}}, nil
	})
}

// Rotate publishes a new key at now that signs from now+overlap (at once if
// the ring is empty); every key signing later than that is retired then,
// and keys retired more than grace ago are removed. It backs `postured keys rotate`; running servers pick
// the change up at their next reload (at most ReloadInterval later), well
// within a sane overlap.
func Rotate(ctx context.Context, store KeyStore, now time.Time, overlap, grace time.Duration) (Ring, error) {
	if overlap < 0 {
		return Ring{}, errors.New("rotate: overlap must not be negative")
	}
	k, err := NewSigningKey(now, now.Add(overlap))
	if err != nil {
		return Ring{}, err
	}
	return store.Update(ctx, func(cur Ring) (Ring, error) {
		next := Ring{Keys: make([]SigningKey, 0, len(cur.Keys)+1)}
		for _, old := range cur.Keys {
			if !old.publishedAt(now, grace) {
				continue
			}
			if old.RetiredAt.IsZero() || old.RetiredAt.After(k.SignsFrom) {
				old.RetiredAt = k.SignsFrom
			}
			next.Keys = append(next.Keys, old)
		}
		nk := k
		if len(next.Keys) == 0 {
			nk.SignsFrom = nk.PublishedAt // nothing to overlap with: sign at once
		}
		next.Keys = append(next.Keys, nk)
		return next, nil
	})
}

// ---- PEM encoding of the ring ----

// PEM block headers carrying the schedule of each key.
const (
	hdrKid         = "Kid"
	hdrPublishedAt = "Published-At"
	hdrSignsFrom   = "Signs-From"
	hdrRetiredAt   = "Retired-At"
)

// encodeRing writes each key as a PKCS#8 "PRIVATE KEY" PEM block whose
// headers carry its kid and schedule.
func encodeRing(r Ring) ([]byte, error) {
	var buf bytes.Buffer
	for _, k := range r.Keys {
		der, err := x509.MarshalPKCS8PrivateKey(k.Private)
		if err != nil {
			return nil, fmt.Errorf("encode key %s: %w", k.ID, err)
		}
		h := map[string]string{
			hdrKid:         k.ID,
			hdrPublishedAt: k.PublishedAt.UTC().Format(time.RFC3339Nano),
			hdrSignsFrom:   k.SignsFrom.UTC().Format(time.RFC3339Nano),
		}
		if !k.RetiredAt.IsZero() {
			h[hdrRetiredAt] = k.RetiredAt.UTC().Format(time.RFC3339Nano)
		}
		if err := pem.Encode(&buf, &pem.Block{Type: "PRIVATE KEY", Headers: h, Bytes: der}); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// decodeRing reads what encodeRing writes, and also a plain RSA private
// key (PKCS#1 or PKCS#8, as openssl writes it), which then signs from the
// beginning of time.
func decodeRing(b []byte) (Ring, error) {
	var r Ring
	seen := map[string]bool{}
	rest := b
	for i := 0; ; i++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		k, err := decodeKeyBlock(block)
		if err != nil {
			return Ring{}, fmt.Errorf("PEM block %d: %w", i+1, err)
		}
		if seen[k.ID] {
			return Ring{}, fmt.Errorf("PEM block %d: key %s appears twice", i+1, k.ID)
		}
		seen[k.ID] = true
		r.Keys = append(r.Keys, k)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return Ring{}, errors.New("data that is not a PEM block")
	}
	return r, nil
}

func decodeKeyBlock(block *pem.Block) (SigningKey, error) {
	var priv *rsa.PrivateKey
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return SigningKey{}, fmt.Errorf("parse PKCS#8 key: %w", err)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return SigningKey{}, fmt.Errorf("key is %T; only RSA keys are supported", k)
		}
		priv = rk
	case "RSA PRIVATE KEY":
		if _, enc := block.Headers["DEK-Info"]; enc {
			return SigningKey{}, errors.New("encrypted keys are not supported")
		}
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return SigningKey{}, fmt.Errorf("parse PKCS#1 key: %w", err)
		}
		priv = k
	case "ENCRYPTED PRIVATE KEY":
		return SigningKey{}, errors.New("encrypted keys are not supported")
	default:
		return SigningKey{}, fmt.Errorf("unexpected %q block; only RSA private keys belong here", block.Type)
	}
	var times [3]time.Time
	for i, h := range []string{hdrPublishedAt, hdrSignsFrom, hdrRetiredAt} {
		v, ok := block.Headers[h]
		if !ok {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return SigningKey{}, fmt.Errorf("header %s: %q is not an RFC 3339 time", h, v)
		}
		times[i] = t
	}
	k, err := newSigningKey(priv, times[0], times[1])
	if err != nil {
		return SigningKey{}, err
	}
	k.RetiredAt = times[2]
	if kid, ok := block.Headers[hdrKid]; ok && kid != k.ID {
		return SigningKey{}, fmt.Errorf("header Kid %s does not match the key (%s)", kid, k.ID)
	}
	return k, nil
}

// ---- what is served and signed with ----

// loadedKey is a SigningKey ready to serve: JWK, certificate, signer.
type loadedKey struct {
	SigningKey
	jwk     jose.JSONWebKey
	certPEM string
	signer  jose.Signer
}

// farFuture is the NotAfter of the self-signed certificates: RFC 5280
// 4.1.2.5's "no well-defined expiration date".
var farFuture = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)

func loadKey(k SigningKey) (*loadedKey, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256,
		Key: jose.JSONWebKey{Key: k.Private, KeyID: k.ID}}, nil)
	if err != nil {
		return nil, fmt.Errorf("signer for key %s: %w", k.ID, err)
	}
	cert, err := selfSigned(k)
	if err != nil {
		return nil, err
	}
	return &loadedKey{
		SigningKey: k,
		jwk:        jose.JSONWebKey{Key: &k.Private.PublicKey, KeyID: k.ID, Algorithm: string(jose.RS256), Use: "sig"},
		certPEM:    cert,
		signer:     signer,
	}, nil
}

// selfSigned builds the key's certificate for public_cert(s). It is
// deterministic (validity and serial derive from the key, and RSA PKCS#1
// v1.5 signatures are deterministic), so every replica serves the same
// document.
func selfSigned(k SigningKey) (string, error) {
	kid, err := hex.DecodeString(k.ID)
	if err != nil || len(kid) < 16 {
		return "", fmt.Errorf("key %s: kid is not a thumbprint", k.ID)
	}
	notBefore := k.PublishedAt.UTC().Truncate(time.Second)
	if notBefore.IsZero() {
		notBefore = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          new(big.Int).SetBytes(append([]byte{1}, kid[:15]...)),
		Subject:               pkix.Name{CommonName: "postured external evaluation " + k.ID[:16]},
		NotBefore:             notBefore,
		NotAfter:              farFuture,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.Private.PublicKey, k.Private)
	if err != nil {
		return "", fmt.Errorf("key %s: self-signed certificate: %w", k.ID, err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), nil
}

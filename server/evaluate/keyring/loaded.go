package keyring

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Loaded is the ring a running server signs with and publishes, loaded
// from its store, each key's JWK, certificate and signer built once. It is
// safe for concurrent use: Reload swaps the ring atomically. It never holds
// an empty ring, so there is always a key to sign with.
type Loaded struct {
	store Store
	grace time.Duration
	where string     // the store, for errors: never a URL
	mu    sync.Mutex // one reload at a time
	state atomic.Pointer[loadedRing]
	// missing is set while the last reload found the store empty: the ring
	// was evicted or flushed under a running server, which keeps signing
	// with the keys it holds.
	missing atomic.Bool
}

// loadedRing is the ring as last loaded, ready to serve.
type loadedRing struct {
	ring Ring
	keys map[string]*loadedKey
}

// signer is the loaded key that signs at now.
func (st *loadedRing) signer(now time.Time) *loadedKey {
	k, _ := st.ring.signer(now) // the ring is never empty
	return st.keys[k.ID]
}

// Load opens cfg's store and loads the ring. A file store gets a key that
// signs from now at first start; a Redis store must hold a ring already
// (ErrNoSigningKey otherwise: `postured keys init` creates it). ctx bounds
// the startup I/O only. Close releases the store.
func Load(ctx context.Context, cfg Config, now time.Time) (*Loaded, error) {
	cfg.Defaults()
	store, err := Open(cfg)
	if err != nil {
		return nil, err
	}
	l := &Loaded{store: store, grace: time.Duration(cfg.RotationGrace), where: "key_file " + cfg.KeyFile}
	var ring Ring
	if cfg.KeyStore == StoreRedis {
		l.where = fmt.Sprintf("redis (prefix %q)", cfg.RedisPrefix)
		ring, err = store.Load(ctx)
		if err == nil && len(ring.Keys) == 0 {
			err = fmt.Errorf("%w in %s: run `postured keys init -c FILE`", ErrNoSigningKey, l.where)
		}
	} else {
		ring, err = ensureKey(ctx, store, now)
	}
	if err == nil {
		err = l.install(ring)
	}
	if err != nil {
		_ = store.Close()
		return nil, err
	}
	return l, nil
}

// Reload reads the ring from the store now. On error the previous ring
// stays in use. A store found empty is never refilled here: the error
// wraps ErrNoSigningKey and Missing reports it until a reload finds keys.
func (l *Loaded) Reload(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	ring, err := l.store.Load(ctx)
	if err != nil {
		return err
	}
	if len(ring.Keys) == 0 {
		l.missing.Store(true)
		return fmt.Errorf("%w in %s: the ring disappeared (eviction, FLUSHDB?); still signing with the %d keys in memory; run `postured keys init -c FILE`",
			ErrNoSigningKey, l.where, len(l.state.Load().ring.Keys))
	}
	if err := l.install(ring); err != nil {
		return err
	}
	l.missing.Store(false)
	return nil
}

// Missing reports whether the last reload found the store without a ring.
func (l *Loaded) Missing() bool { return l.missing.Load() }

// install makes ring the one served, reusing already loaded keys.
func (l *Loaded) install(ring Ring) error {
	prev := l.state.Load()
	st := &loadedRing{ring: ring, keys: make(map[string]*loadedKey, len(ring.Keys))}
	for _, k := range ring.Keys {
		if prev != nil {
			if lk, ok := prev.keys[k.ID]; ok {
				lk2 := *lk
				lk2.SigningKey = k // schedule may have changed
				st.keys[k.ID] = &lk2
				continue
			}
		}
		lk, err := loadKey(k)
		if err != nil {
			return err
		}
		st.keys[k.ID] = lk
	}
	l.state.Store(st)
	return nil
}

// Ring is the ring as last loaded.
func (l *Loaded) Ring() Ring { return l.state.Load().ring }

// Sign signs payload with the key that signs at now, as a compact JWS with
// the header {"alg":"RS256","kid":...}, and returns it and the kid.
func (l *Loaded) Sign(now time.Time, payload []byte) (token, kid string, err error) {
	k := l.state.Load().signer(now)
	jws, err := k.signer.Sign(payload)
	if err != nil {
		return "", "", fmt.Errorf("sign with key %s: %w", k.ID, err)
	}
	token, err = jws.CompactSerialize()
	if err != nil {
		return "", "", fmt.Errorf("serialize token of key %s: %w", k.ID, err)
	}
	return token, k.ID, nil
}

// PublicKey is the public half of a published key.
type PublicKey struct {
	ID  string
	JWK jose.JSONWebKey
	// CertPEM is the key's self-signed certificate, PEM.
	CertPEM string
}

// Publish returns the key that signs at now and every key published then:
// current, next and retiring.
func (l *Loaded) Publish(now time.Time) (signer PublicKey, published []PublicKey) {
	st := l.state.Load()
	for _, k := range st.ring.published(now, l.grace) {
		published = append(published, st.keys[k.ID].public())
	}
	return st.signer(now).public(), published
}

// Close releases the store.
func (l *Loaded) Close() error { return l.store.Close() }

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

func (k *loadedKey) public() PublicKey {
	return PublicKey{ID: k.ID, JWK: k.jwk, CertPEM: k.certPEM}
}

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

// Package keyring keeps the RSA keys postured signs External Evaluation
// answers with: their generation and rotation schedule, the file and Redis
// stores every replica and the CLI share, and the loaded ring a running
// server signs with and publishes.
package keyring

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Key sizes. Access only accepts RSA keys (cloudflare-protocols.md B.1).
const (
	// minKeyBits is the smallest RSA modulus accepted from a key store.
	minKeyBits = 2048
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

// generateKey generates a 2048-bit RSA key, published at publishedAt,
// signing from signsFrom.
func generateKey(publishedAt, signsFrom time.Time) (SigningKey, error) {
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
	if bits := priv.N.BitLen(); bits < minKeyBits {
		return fmt.Errorf("RSA key is %d bits; at least %d are required", bits, minKeyBits)
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

// signer is the key that signs at now: of the keys scheduled to sign then,
// the one that started last. If clocks disagree so that none is scheduled,
// the newest key that has started signing, else the key due first.
func (r Ring) signer(now time.Time) (SigningKey, bool) {
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

// published is the keys /keys serves at now: every key not dropped yet,
// and always the signer.
func (r Ring) published(now time.Time, grace time.Duration) []SigningKey {
	signer, hasSigner := r.signer(now)
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
	signer, _ := r.signer(now)
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

// ensureKey makes sure the store holds a key, generating one that signs
// from now if it holds none. An existing ring is never replaced.
func ensureKey(ctx context.Context, store Store, now time.Time) (Ring, error) {
	r, err := store.Load(ctx)
	if err != nil {
		return Ring{}, err
	}
	if len(r.Keys) > 0 {
		return r, nil
	}
	k, err := generateKey(now, now)
	if err != nil {
		return Ring{}, err
	}
	return store.update(ctx, func(cur Ring) (Ring, error) {
		if len(cur.Keys) > 0 { // another replica won the race
			return cur, errNoChange
		}
		return Ring{Keys: []SigningKey{k}}, nil
	})
}

// ErrNoSigningKey is returned when a Redis key store holds no ring: a
// server never generates one there (an evicted or flushed ring must not be
// silently replaced by a key Access has never seen), `postured keys init`
// does.
var ErrNoSigningKey = errors.New("no signing key")

// ErrRingExists is returned by Init when the store already holds keys.
var ErrRingExists = errors.New("the key store already holds a key ring; use `postured keys rotate` to add a key")

// Init creates the ring with one key that signs from now. It refuses to
// touch a store that holds keys. It backs `postured keys init`.
func Init(ctx context.Context, store Store, now time.Time) (Ring, error) {
	k, err := generateKey(now, now)
	if err != nil {
		return Ring{}, err
	}
	return store.update(ctx, func(cur Ring) (Ring, error) {
		if len(cur.Keys) > 0 {
			return Ring{}, ErrRingExists
		}
		return Ring{Keys: []SigningKey{k}}, nil
	})
}

// Rotate publishes a new key at now that signs from now+overlap (at once if
// the ring is empty); every key signing later than that is retired then,
// and keys retired more than grace ago are removed. It backs `postured keys
// rotate`; running servers pick the change up at their next reload, well
// within a sane overlap.
func Rotate(ctx context.Context, store Store, now time.Time, overlap, grace time.Duration) (Ring, error) {
	if overlap < 0 {
		return Ring{}, errors.New("rotate: overlap must not be negative")
	}
	k, err := generateKey(now, now.Add(overlap))
	if err != nil {
		return Ring{}, err
	}
	return store.update(ctx, func(cur Ring) (Ring, error) {
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

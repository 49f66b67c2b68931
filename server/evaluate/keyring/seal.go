package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// sealKeyBytes is the size of seal_key: an AES-256 key.
const sealKeyBytes = 32

// sealedBlockType is the PEM type of a private key encrypted with
// seal_key: nonce || AES-256-GCM(PKCS#8 DER), associated data the kid.
const sealedBlockType = "SEALED PRIVATE KEY"

// errSealKeyMissing is returned when a sealed ring is read without a seal
// key.
var errSealKeyMissing = errors.New("the key ring is sealed but external_evaluation.seal_key is not set")

// ParseSealKey decodes seal_key (32 random bytes, standard base64) into
// the AEAD that seals the ring; nil for an empty key. The key is never
// echoed.
func ParseSealKey(s string) (cipher.AEAD, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(key) != sealKeyBytes {
		return nil, fmt.Errorf("must be %d random bytes, base64 (openssl rand -base64 %d)", sealKeyBytes, sealKeyBytes)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// seal encrypts der under a fresh nonce, bound to kid.
func seal(aead cipher.AEAD, kid string, der []byte) ([]byte, error) {
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(der)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal key %s: %w", kid, err)
	}
	return aead.Seal(nonce, nonce, der, []byte(kid)), nil
}

// unseal reverses seal. A wrong seal key, a tampered block or a kid that
// is not the one sealed all fail the same way.
func unseal(aead cipher.AEAD, kid string, b []byte) ([]byte, error) {
	if aead == nil {
		return nil, errSealKeyMissing
	}
	if len(b) < aead.NonceSize() {
		return nil, errors.New("sealed key is truncated")
	}
	der, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], []byte(kid))
	if err != nil {
		return nil, fmt.Errorf("cannot unseal key %s: wrong seal_key or tampered ring", kid)
	}
	return der, nil
}

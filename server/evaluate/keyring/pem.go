package keyring

import (
	"bytes"
	"crypto/cipher"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"
)

// PEM block headers carrying the schedule of each key.
const (
	hdrKid         = "Kid"
	hdrPublishedAt = "Published-At"
	hdrSignsFrom   = "Signs-From"
	hdrRetiredAt   = "Retired-At"
)

// encodeRing writes each key as a PKCS#8 "PRIVATE KEY" PEM block whose
// headers carry its kid and schedule; with a seal, as a "SEALED PRIVATE
// KEY" block, the PKCS#8 encrypted (see seal).
func encodeRing(r Ring, aead cipher.AEAD) ([]byte, error) {
	var buf bytes.Buffer
	for _, k := range r.Keys {
		der, err := x509.MarshalPKCS8PrivateKey(k.Private)
		if err != nil {
			return nil, fmt.Errorf("encode key %s: %w", k.ID, err)
		}
		typ := "PRIVATE KEY"
		if aead != nil {
			if der, err = seal(aead, k.ID, der); err != nil {
				return nil, err
			}
			typ = sealedBlockType
		}
		h := map[string]string{
			hdrKid:         k.ID,
			hdrPublishedAt: k.PublishedAt.UTC().Format(time.RFC3339Nano),
			hdrSignsFrom:   k.SignsFrom.UTC().Format(time.RFC3339Nano),
		}
		if !k.RetiredAt.IsZero() {
			h[hdrRetiredAt] = k.RetiredAt.UTC().Format(time.RFC3339Nano)
		}
		if err := pem.Encode(&buf, &pem.Block{Type: typ, Headers: h, Bytes: der}); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// decodeRing reads what encodeRing writes, and also a plain RSA private
// key (PKCS#1 or PKCS#8, as openssl writes it), which then signs from the
// beginning of time. Sealed blocks need aead; unsealed ones load with or
// without it, so a ring sealed later still reads its older keys.
func decodeRing(b []byte, aead cipher.AEAD) (Ring, error) {
	var r Ring
	seen := map[string]bool{}
	rest := b
	for i := 0; ; i++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		k, err := decodeKeyBlock(block, aead)
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

func decodeKeyBlock(block *pem.Block, aead cipher.AEAD) (SigningKey, error) {
	var priv *rsa.PrivateKey
	switch block.Type {
	case "PRIVATE KEY", sealedBlockType:
		der := block.Bytes
		if block.Type == sealedBlockType {
			kid, ok := block.Headers[hdrKid]
			if !ok {
				return SigningKey{}, errors.New("sealed key without a Kid header")
			}
			var err error
			if der, err = unseal(aead, kid, der); err != nil {
				return SigningKey{}, err
			}
		}
		k, err := x509.ParsePKCS8PrivateKey(der)
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

// Package redisopt turns a configured Redis URL into client options, so the
// lookup cache and the External Evaluation key ring accept the same forms:
// redis:// or rediss:// (TLS), user:password@ for ACL auth, unix://, and a
// private CA for rediss:// when the system pool does not hold it.
package redisopt

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/redis/go-redis/v9"
)

// maxCAFileBytes bounds a CA bundle; real ones are a few KB.
const maxCAFileBytes = 1 << 20

// Config is how to reach one Redis.
type Config struct {
	// URL is redis://[user:password@]host:port/db, rediss://... for TLS,
	// or unix:///path. It may carry a password: it is never echoed.
	URL string
	// TLSCAFile, if set, is a PEM bundle that replaces the system pool for
	// verifying a rediss:// server. It is refused with a plain redis:// URL,
	// where it would silently protect nothing.
	TLSCAFile string
}

// Options parses cfg into client options. Verification is never turned
// off: a server whose certificate does not chain to the pool fails closed.
func Options(cfg Config) (*redis.Options, error) {
	opts, err := redis.ParseURL(cfg.URL)
	if err != nil {
		// The URL may carry a password: never echo it or the parser's error.
		return nil, errors.New("not a valid redis://, rediss:// or unix:// URL")
	}
	if cfg.TLSCAFile == "" {
		return opts, nil
	}
	if opts.TLSConfig == nil {
		return nil, errors.New("tls_ca_file is set but the URL is not rediss://")
	}
	pool, err := LoadCAFile(cfg.TLSCAFile)
	if err != nil {
		return nil, err
	}
	opts.TLSConfig.RootCAs = pool
	return opts, nil
}

// LoadCAFile reads a PEM bundle of CA certificates.
func LoadCAFile(path string) (*x509.CertPool, error) {
	// #nosec G304 -- the operator configures which CA file to trust
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tls_ca_file: %w", err)
	}
	if len(b) > maxCAFileBytes {
		return nil, fmt.Errorf("tls_ca_file %s is larger than %d bytes", path, maxCAFileBytes)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("tls_ca_file %s holds no PEM certificate", path)
	}
	return pool, nil
}

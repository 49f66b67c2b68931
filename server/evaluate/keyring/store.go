package keyring

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postured/postured/internal/redisopt"
)

// Store keeps the signing key ring where every process that signs or
// rotates can reach it. Its implementations are this package's: Open
// returns one.
type Store interface {
	// Load returns the stored ring; an empty ring if nothing is stored yet.
	Load(ctx context.Context) (Ring, error)
	// Close releases connections.
	Close() error
	// update replaces the stored ring with fn(current), atomically with
	// respect to other updates; fn may run more than once. If fn returns
	// errNoChange nothing is written and the current ring is returned.
	update(ctx context.Context, fn func(Ring) (Ring, error)) (Ring, error)
}

// errNoChange tells Store.update to leave the ring as it is.
var errNoChange = errors.New("no change")

// Open opens the store cfg.KeyStore names (defaults applied). With
// seal_key set, every write seals the private keys.
func Open(cfg Config) (Store, error) {
	aead, err := ParseSealKey(cfg.SealKey.Reveal())
	if err != nil {
		return nil, fmt.Errorf("open key store: seal_key: %w", err)
	}
	switch cfg.KeyStore {
	case StoreFile, "":
		if cfg.KeyFile == "" {
			return nil, errors.New("open key store: key_file is required")
		}
		s := newFileStore(cfg.KeyFile)
		s.seal = aead
		return s, nil
	case StoreRedis:
		return newRedisStore(cfg, aead)
	default:
		return nil, fmt.Errorf("open key store: unknown key_store %q", cfg.KeyStore)
	}
}

// maxKeyFileBytes bounds the key ring file (a few keys of ~1.7 KB).
const maxKeyFileBytes = 1 << 20

// fileStore keeps the ring in one PEM file, mode 0600. Writes go to a
// temporary file renamed over the old one, so a reader never sees half a
// ring; writers take an flock on "<path>.lock".
type fileStore struct {
	path string
	seal cipher.AEAD // nil: unsealed
}

// newFileStore returns the store for path; nothing is read yet.
func newFileStore(path string) *fileStore { return &fileStore{path: path} }

// Load implements Store. A missing file is an empty ring; a file
// readable or writable by group or others is refused.
func (s *fileStore) Load(_ context.Context) (Ring, error) {
	f, err := os.Open(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return Ring{}, nil
	}
	if err != nil {
		return Ring{}, fmt.Errorf("key_file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Ring{}, fmt.Errorf("key_file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return Ring{}, fmt.Errorf("key_file %s is not a regular file", s.path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return Ring{}, fmt.Errorf("key_file %s has mode %04o: a private key must not be accessible to group or others; chmod 600 it", s.path, perm)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileBytes+1))
	if err != nil {
		return Ring{}, fmt.Errorf("key_file: %w", err)
	}
	if len(data) > maxKeyFileBytes {
		return Ring{}, fmt.Errorf("key_file %s is larger than %d bytes", s.path, maxKeyFileBytes)
	}
	r, err := decodeRing(data, s.seal)
	if err != nil {
		return Ring{}, fmt.Errorf("key_file %s: %w", s.path, err)
	}
	return r, nil
}

// update implements Store.
func (s *fileStore) update(ctx context.Context, fn func(Ring) (Ring, error)) (Ring, error) {
	if dir := filepath.Dir(s.path); !isDir(dir) {
		return Ring{}, fmt.Errorf("key_file %s: directory %s does not exist (mount a writable volume there or set key_file)", s.path, dir)
	}
	unlock, err := lockFile(s.path + ".lock")
	if err != nil {
		return Ring{}, fmt.Errorf("key_file: lock: %w", err)
	}
	defer unlock()
	cur, err := s.Load(ctx)
	if err != nil {
		return Ring{}, err
	}
	next, err := fn(cur)
	if errors.Is(err, errNoChange) {
		return cur, nil
	}
	if err != nil {
		return Ring{}, err
	}
	data, err := encodeRing(next, s.seal)
	if err != nil {
		return Ring{}, err
	}
	if err := writeFileAtomic(s.path, data); err != nil {
		return Ring{}, fmt.Errorf("key_file: %w", err)
	}
	return next, nil
}

// Close implements Store.
func (s *fileStore) Close() error { return nil }

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// writeFileAtomic writes data to a 0600 temporary file next to path, syncs
// it and renames it over path.
func writeFileAtomic(path string, data []byte) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		_ = tmp.Close() // the first error is the one to report
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close() // the first error is the one to report
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close() // the first error is the one to report
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// #nosec G304 -- dir is the configured key_file's directory
	if d, err := os.Open(dir); err == nil { // persist the rename; best effort
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// redisRingKey is the Redis key (after the prefix) holding the ring, in the
// same PEM form as the key file.
const redisRingKey = "signing-keys"

// maxUpdateAttempts bounds optimistic retries when replicas race.
const maxUpdateAttempts = 10

// redisStore keeps the ring in one Redis string so replicas share it.
// Updates are WATCH/MULTI transactions, retried when another writer wins.
type redisStore struct {
	c    *redis.Client
	key  string
	seal cipher.AEAD // nil: unsealed
}

// newRedisStore connects to cfg.RedisURL lazily; the ring lives under
// cfg.RedisPrefix.
func newRedisStore(cfg Config, aead cipher.AEAD) (*redisStore, error) {
	opts, err := redisopt.Options(redisopt.Config{URL: cfg.RedisURL.Reveal(), TLSCAFile: cfg.TLSCAFile})
	if err != nil {
		return nil, fmt.Errorf("open key store: redis_url: %w", err)
	}
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = 2*time.Second, 2*time.Second, 2*time.Second
	return &redisStore{c: redis.NewClient(opts), key: cfg.RedisPrefix + redisRingKey, seal: aead}, nil
}

// Load implements Store.
func (s *redisStore) Load(ctx context.Context) (Ring, error) {
	return s.load(ctx, s.c)
}

func (s *redisStore) load(ctx context.Context, c redis.Cmdable) (Ring, error) {
	b, err := c.Get(ctx, s.key).Bytes()
	if errors.Is(err, redis.Nil) {
		return Ring{}, nil
	}
	if err != nil {
		return Ring{}, fmt.Errorf("key store: redis get: %w", err)
	}
	r, err := decodeRing(b, s.seal)
	if err != nil {
		return Ring{}, fmt.Errorf("key store: redis %s: %w", s.key, err)
	}
	return r, nil
}

// update implements Store.
func (s *redisStore) update(ctx context.Context, fn func(Ring) (Ring, error)) (Ring, error) {
	for range maxUpdateAttempts {
		var result Ring
		err := s.c.Watch(ctx, func(tx *redis.Tx) error {
			cur, err := s.load(ctx, tx)
			if err != nil {
				return err
			}
			next, err := fn(cur)
			if errors.Is(err, errNoChange) {
				result = cur
				return nil
			}
			if err != nil {
				return err
			}
			data, err := encodeRing(next, s.seal)
			if err != nil {
				return err
			}
			if _, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, s.key, data, 0)
				return nil
			}); err != nil {
				return err
			}
			result = next
			return nil
		}, s.key)
		if errors.Is(err, redis.TxFailedErr) {
			continue // another writer changed the ring: read it again
		}
		if err != nil {
			return Ring{}, fmt.Errorf("key store: redis update: %w", err)
		}
		return result, nil
	}
	return Ring{}, errors.New("key store: redis update: too much contention")
}

// Close implements Store.
func (s *redisStore) Close() error { return s.c.Close() }

// Interface guards.
var (
	_ Store = (*fileStore)(nil)
	_ Store = (*redisStore)(nil)
)

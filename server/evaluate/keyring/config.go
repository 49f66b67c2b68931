package keyring

import (
	"time"

	"github.com/postured/postured/internal/conf"
)

// Key store backends (key_store).
const (
	// StoreFile keeps the key ring in key_file, PEM, mode 0600.
	StoreFile = "file"
	// StoreRedis keeps the key ring in Redis so every replica signs with
	// the same keys.
	StoreRedis = "redis"
)

// Defaults of the key ring fields.
const (
	defaultKeyFile         = "/data/ee-signing-key.pem"
	defaultRedisPrefix     = "postured:ee:"
	defaultRotationOverlap = time.Hour
	defaultRotationGrace   = 24 * time.Hour
)

// Config is the key ring part of the external_evaluation section: where the
// signing keys live and how they rotate.
type Config struct {
	// KeyStore is where the signing key ring lives: "file" (key_file) or
	// "redis" (redis_url; every replica then signs with the same keys).
	// Default: file.
	KeyStore string `yaml:"key_store"`
	// KeyFile is the PEM key ring with key_store: file. Created with mode
	// 0600 at first start if missing, never regenerated; a file readable by
	// group or others, or holding a key under 2048 bits, is refused. A plain
	// RSA private key (PKCS#1 or PKCS#8 PEM) may be supplied instead.
	// Default: /data/ee-signing-key.pem.
	KeyFile string `yaml:"key_file,omitempty"`
	// RedisURL is redis://[:password@]host:port/db (or rediss://) with
	// key_store: redis. The private keys are stored there: protect it.
	RedisURL conf.Secret `yaml:"redis_url,omitempty"`
	// RedisPrefix namespaces the Redis key. Default: "postured:ee:".
	RedisPrefix string `yaml:"redis_prefix,omitempty"`
	// RotationOverlap is how long `postured keys rotate` publishes a new key
	// before signing with it, so Access has fetched it. Default: 1h.
	RotationOverlap conf.Duration `yaml:"rotation_overlap"`
	// RotationGrace is how long a key that stopped signing stays published.
	// At least 1m (a response token lives 60s). Default: 24h.
	RotationGrace conf.Duration `yaml:"rotation_grace"`
}

// Defaults fills unset fields with their defaults.
func (c *Config) Defaults() {
	if c.KeyStore == "" {
		c.KeyStore = StoreFile
	}
	if c.KeyStore == StoreFile && c.KeyFile == "" {
		c.KeyFile = defaultKeyFile
	}
	if c.KeyStore == StoreRedis && c.RedisPrefix == "" {
		c.RedisPrefix = defaultRedisPrefix
	}
	if c.RotationOverlap == 0 {
		c.RotationOverlap = conf.Duration(defaultRotationOverlap)
	}
	if c.RotationGrace == 0 {
		c.RotationGrace = conf.Duration(defaultRotationGrace)
	}
}

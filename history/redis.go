package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postured/postured/internal/redisopt"
)

// RedisConfig configures a Redis store.
type RedisConfig struct {
	// URL and TLSCAFile are read as the lookup cache reads them (TLS, ACL
	// user, private CA); URL may carry a password and is never echoed.
	URL       string
	TLSCAFile string
	// Prefix namespaces every key, e.g. "postured:history:".
	Prefix string
	// MaxChanges is how many changes are kept per device.
	MaxChanges int
	// Retention is the TTL of a device's keys, renewed by every answer.
	Retention time.Duration
}

// Redis is a Store every replica shares. Per device it keeps a hash with
// the last state and a list of transitions (time, old and new score, old
// and new state), newest first and trimmed to MaxChanges; both expire
// after Retention without an answer. A transition's causes are computed
// when it is read, by the same Diff the memory store uses.
type Redis struct {
	c          *redis.Client
	prefix     string
	maxChanges int
	retention  time.Duration
}

// applyScript swaps a device's state and, when the score moved, pushes
// the transition, atomically: replicas answering the same device
// concurrently each diff against the state the other left.
//
// KEYS: state hash, transition list. ARGV: score, state, at (Unix ms),
// ttl (ms), max changes.
var applyScript = redis.NewScript(`
local old = redis.call('HMGET', KEYS[1], 's', 'st')
redis.call('HSET', KEYS[1], 's', ARGV[1], 'st', ARGV[2], 'at', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if old[1] and old[1] ~= ARGV[1] then
  redis.call('LPUSH', KEYS[2], ARGV[3] .. '\n' .. old[1] .. '\n' .. ARGV[1] .. '\n' .. (old[2] or '') .. '\n' .. ARGV[2])
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[5]) - 1)
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
return 0
`)

// NewRedis returns the store cfg describes. It does not dial until first
// use.
func NewRedis(cfg RedisConfig) (*Redis, error) {
	if cfg.MaxChanges < 1 || cfg.Retention <= 0 {
		return nil, errors.New("history: redis store: max changes and retention must be > 0")
	}
	opts, err := redisopt.Options(redisopt.Config{URL: cfg.URL, TLSCAFile: cfg.TLSCAFile})
	if err != nil {
		return nil, fmt.Errorf("history: redis_url: %w", err)
	}
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = 2*time.Second, time.Second, time.Second
	return &Redis{c: redis.NewClient(opts), prefix: cfg.Prefix, maxChanges: cfg.MaxChanges, retention: cfg.Retention}, nil
}

// keys are a device's state hash and transition list; the hash tag keeps
// both in one cluster slot, as the script needs.
func (r *Redis) keys(deviceID string) []string {
	base := r.prefix + "{" + deviceID + "}"
	return []string{base + ":state", base + ":changes"}
}

// Apply implements Store: one pipelined round trip for the whole batch.
func (r *Redis) Apply(ctx context.Context, at time.Time, updates []Update) error {
	args := make([][]any, len(updates))
	for i, u := range updates {
		st, err := json.Marshal(u.State)
		if err != nil {
			return fmt.Errorf("encode state: %w", err)
		}
		args[i] = []any{u.State.Score, st, at.UnixMilli(), r.retention.Milliseconds(), r.maxChanges}
	}
	run := func() ([]redis.Cmder, error) {
		pipe := r.c.Pipeline()
		for i, u := range updates {
			applyScript.EvalSha(ctx, pipe, r.keys(u.DeviceID), args[i]...)
		}
		return pipe.Exec(ctx)
	}
	cmds, err := run()
	if err != nil && noScript(cmds) {
		// The server has not seen the script (first use, restart, SCRIPT
		// FLUSH). Re-running every update is safe: an update whose score
		// equals the stored one records nothing.
		if err := applyScript.Load(ctx, r.c).Err(); err != nil {
			return fmt.Errorf("redis script load: %w", err)
		}
		_, err = run()
	}
	if err != nil {
		return fmt.Errorf("redis apply: %w", err)
	}
	return nil
}

func noScript(cmds []redis.Cmder) bool {
	for _, c := range cmds {
		if redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
			return true
		}
	}
	return false
}

// Device implements Store: one pipelined round trip.
func (r *Redis) Device(ctx context.Context, deviceID string) (Device, bool, error) {
	k := r.keys(deviceID)
	pipe := r.c.Pipeline()
	state := pipe.HMGet(ctx, k[0], "s", "at")
	changes := pipe.LRange(ctx, k[1], 0, int64(r.maxChanges)-1)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return Device{}, false, fmt.Errorf("redis read: %w", err)
	}
	vals := state.Val()
	score, okScore := vals[0].(string)
	at, okAt := vals[1].(string)
	if !okScore || !okAt {
		return Device{}, false, nil
	}
	d := Device{DeviceID: deviceID, Changes: []Change{}}
	var err error
	if d.Score, err = strconv.Atoi(score); err != nil {
		return Device{}, false, fmt.Errorf("redis read: stored score %q: %w", score, err)
	}
	ms, err := strconv.ParseInt(at, 10, 64)
	if err != nil {
		return Device{}, false, fmt.Errorf("redis read: stored time %q: %w", at, err)
	}
	d.SeenAt = time.UnixMilli(ms).UTC()
	for _, raw := range changes.Val() {
		c, err := parseTransition(raw)
		if err != nil {
			// Written by an incompatible version: skipped, not fatal.
			continue
		}
		d.Changes = append(d.Changes, c)
	}
	return d, true, nil
}

// parseTransition reads what applyScript pushed.
func parseTransition(raw string) (Change, error) {
	f := strings.SplitN(raw, "\n", 5)
	if len(f) != 5 {
		return Change{}, errors.New("not a transition")
	}
	ms, err1 := strconv.ParseInt(f[0], 10, 64)
	oldScore, err2 := strconv.Atoi(f[1])
	newScore, err3 := strconv.Atoi(f[2])
	var old, cur State
	err4 := json.Unmarshal([]byte(f[3]), &old)
	err5 := json.Unmarshal([]byte(f[4]), &cur)
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		return Change{}, err
	}
	at := time.UnixMilli(ms).UTC()
	return Change{At: at, OldScore: oldScore, NewScore: newScore, Causes: Diff(old, cur, at)}, nil
}

// Ping checks the connection.
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("history: redis ping: %w", err)
	}
	return nil
}

// Close releases the connections.
func (r *Redis) Close() error { return r.c.Close() }

package keyring

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postured/postured/internal/conf"
	"github.com/postured/postured/internal/redistest"
)

// redisURL returns a Redis to test against: $REDIS_URL if set, else a
// redis-server started for the test on a unix socket (no port races). The
// test is skipped only when neither exists.
func redisURL(t *testing.T) string {
	t.Helper()
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("no redis-server on PATH and no REDIS_URL")
	}
	dir, err := os.MkdirTemp("", "ee-redis") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "redis.sock")
	cmd := exec.Command(bin, "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
		"--save", "", "--appendonly", "no", "--dir", dir)
	// redis-server says when it is ready: wait for that line, not a timer.
	logs, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logs.Close()
	})
	ready := make(chan error, 1)
	go func() {
		var out strings.Builder
		sc := bufio.NewScanner(logs)
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if strings.Contains(strings.ToLower(sc.Text()), "ready to accept connections") {
				ready <- nil
				_, _ = io.Copy(io.Discard, logs) // keep redis-server from blocking on a full pipe
				return
			}
		}
		ready <- fmt.Errorf("redis-server exited before it was ready:\n%s", out.String())
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("redis-server did not say it was ready within 20s")
	}
	return "unix://" + sock
}

// TestRedisStore: replicas share one key ring in Redis; a rotation by the
// CLI reaches all of them; concurrent updates lose nothing.
func TestRedisStore(t *testing.T) {
	url := redisURL(t)
	prefix := fmt.Sprintf("postured-test-%d:", time.Now().UnixNano())
	t.Cleanup(func() { // a shared $REDIS_URL keeps nothing of ours
		opts, _ := redis.ParseURL(url)
		c := redis.NewClient(opts)
		defer c.Close()
		ctx := context.Background()
		iter := c.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
	})
	cfg := Config{KeyStore: StoreRedis, RedisURL: conf.Secret(url), RedisPrefix: prefix}
	cfg.Defaults()
	initRing(t, cfg)
	replica := func() *Loaded {
		l, err := Load(t.Context(), cfg, t0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		return l
	}
	a, b := replica(), replica()
	signer := func(l *Loaded, now time.Time) string {
		_, kid, err := l.Sign(now, []byte("{}"))
		if err != nil {
			t.Fatal(err)
		}
		return kid
	}
	if kidA, kidB := signer(a, t0), signer(b, t0); kidA != kidB {
		t.Fatalf("replicas sign with different keys: %s, %s", kidA, kidB)
	}

	cli, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ring, err := Rotate(t.Context(), cli, t0, time.Hour, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	newKid := ring.Keys[1].ID
	after := t0.Add(time.Hour + time.Minute) // past the overlap
	for name, l := range map[string]*Loaded{"a": a, "b": b} {
		if err := l.Reload(t.Context()); err != nil {
			t.Fatal(err)
		}
		if kid := signer(l, after); kid != newKid {
			t.Errorf("replica %s signs with %s after rotation, want %s", name, kid, newKid)
		}
	}

	// WATCH/MULTI: concurrent rotations from several processes all land.
	const n = 5
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			s, err := Open(cfg)
			if err != nil {
				t.Error(err)
				return
			}
			defer s.Close()
			if _, err := Rotate(context.Background(), s, after, time.Hour, 24*time.Hour); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, err := cli.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Keys) != 2+n {
		t.Errorf("ring has %d keys after %d concurrent rotations, want %d", len(got.Keys), n, 2+n)
	}

	// Replicas racing on an empty store agree on one key.
	empty := cfg
	empty.RedisPrefix = prefix + "empty:"
	kids := make([]string, n)
	for i := range n {
		wg.Go(func() {
			s, _ := Open(empty)
			defer s.Close()
			r, err := ensureKey(context.Background(), s, t0)
			if err != nil {
				t.Error(err)
				return
			}
			kids[i] = r.Keys[0].ID
		})
	}
	wg.Wait()
	for _, k := range kids {
		if k != kids[0] {
			t.Errorf("replicas generated different first keys: %v", kids)
			break
		}
	}

	// A corrupt ring is an error, never silently replaced.
	opts, _ := redis.ParseURL(url)
	rc := redis.NewClient(opts)
	defer rc.Close()
	if err := rc.Set(t.Context(), prefix+"broken:"+redisRingKey, "garbage", 0).Err(); err != nil {
		t.Fatal(err)
	}
	broken := cfg
	broken.RedisPrefix = prefix + "broken:"
	if _, err := Load(t.Context(), broken, t0); err == nil || !strings.Contains(err.Error(), "not a PEM block") {
		t.Errorf("corrupt ring: %v", err)
	}
	if v, _ := rc.Get(t.Context(), prefix+"broken:"+redisRingKey).Result(); v != "garbage" {
		t.Error("corrupt ring overwritten")
	}
}

func TestRedisUnreachable(t *testing.T) {
	_, err := Load(t.Context(), Config{KeyStore: StoreRedis, RedisURL: "redis://:hunter2@127.0.0.1:1/0"}, t0)
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("err %v", err)
	}
}

// initRing does what `postured keys init` does.
func initRing(t *testing.T, cfg Config) {
	t.Helper()
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Init(t.Context(), s, t0); err != nil {
		t.Fatal(err)
	}
}

// uniquePrefix keeps tests apart on a shared $REDIS_URL.
func uniquePrefix(t *testing.T) string {
	return fmt.Sprintf("postured-test-%s-%d:", t.Name(), time.Now().UnixNano())
}

// TestRedisNeverGeneratesAKey: a server never creates the ring in Redis
// (an evicted ring replaced by a key Access never fetched would fail every
// evaluation, and a racing replica could sign with it); start fails and
// says how to create it; `keys init` creates it once and refuses after.
func TestRedisNeverGeneratesAKey(t *testing.T) {
	cfg := Config{KeyStore: StoreRedis, RedisURL: conf.Secret(redisURL(t)), RedisPrefix: uniquePrefix(t)}
	cfg.Defaults()
	_, err := Load(t.Context(), cfg, t0)
	if !errors.Is(err, ErrNoSigningKey) {
		t.Fatalf("Load on an empty Redis: %v, want ErrNoSigningKey", err)
	}
	for _, want := range []string{cfg.RedisPrefix, "postured keys init -c FILE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if r, err := s.Load(t.Context()); err != nil || len(r.Keys) != 0 {
		t.Fatalf("a failed start wrote %d keys (err %v)", len(r.Keys), err)
	}

	ring, err := Init(t.Context(), s, t0)
	if err != nil || len(ring.Keys) != 1 || !ring.Keys[0].SignsFrom.Equal(t0) {
		t.Fatalf("Init: %v, %+v", err, ring)
	}
	if _, err := Init(t.Context(), s, t0); !errors.Is(err, ErrRingExists) {
		t.Errorf("second Init: %v, want ErrRingExists", err)
	}
	l, err := Load(t.Context(), cfg, t0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, kid, _ := l.Sign(t0, []byte("{}")); kid != ring.Keys[0].ID {
		t.Errorf("signs with %s, want the initialised %s", kid, ring.Keys[0].ID)
	}
}

// TestRedisRingVanishes: a ring evicted or flushed under a running server
// is reported, never replaced; the server keeps signing with what it has
// until `keys init` restores a ring.
func TestRedisRingVanishes(t *testing.T) {
	url := redisURL(t)
	cfg := Config{KeyStore: StoreRedis, RedisURL: conf.Secret(url), RedisPrefix: uniquePrefix(t)}
	cfg.Defaults()
	initRing(t, cfg)
	l, err := Load(t.Context(), cfg, t0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, before, _ := l.Sign(t0, []byte("{}"))

	opts, _ := redis.ParseURL(url)
	rc := redis.NewClient(opts)
	defer rc.Close()
	if err := rc.Del(t.Context(), cfg.RedisPrefix+redisRingKey).Err(); err != nil { // as FLUSHDB or eviction would
		t.Fatal(err)
	}
	if err := l.Reload(t.Context()); !errors.Is(err, ErrNoSigningKey) {
		t.Fatalf("Reload of a vanished ring: %v, want ErrNoSigningKey", err)
	}
	if !l.Missing() {
		t.Error("Missing() is false after the ring vanished")
	}
	if _, kid, err := l.Sign(t0, []byte("{}")); err != nil || kid != before {
		t.Errorf("after the ring vanished: signs with %s (%v), want the key in memory %s", kid, err, before)
	}
	if n, _ := rc.Exists(t.Context(), cfg.RedisPrefix+redisRingKey).Result(); n != 0 {
		t.Error("reload wrote a ring into the store")
	}

	initRing(t, cfg)
	if err := l.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if l.Missing() {
		t.Error("Missing() still true after keys init restored a ring")
	}
}

// TestRedisTLSAndACL: the ring lives behind rediss:// with an ACL user
// limited to the ring's prefix; a CA that did not sign the server's
// certificate fails closed, and so does the system pool.
func TestRedisTLSAndACL(t *testing.T) {
	srv := redistest.StartTLS(t, "postured:ee:*")
	cfg := Config{KeyStore: StoreRedis, RedisURL: conf.Secret(srv.URL), TLSCAFile: srv.CAFile}
	cfg.Defaults()
	initRing(t, cfg)
	l, err := Load(t.Context(), cfg, t0)
	if err != nil {
		t.Fatalf("Load over TLS as ACL user: %v", err)
	}
	_ = l.Close()

	for name, mut := range map[string]func(*Config){
		"wrong CA":    func(c *Config) { c.TLSCAFile = srv.OtherCAFile },
		"system pool": func(c *Config) { c.TLSCAFile = "" },
		"wrong password": func(c *Config) {
			c.RedisURL = conf.Secret(strings.Replace(srv.URL, srv.Password, "nope", 1))
		},
		"outside the ACL key pattern": func(c *Config) { c.RedisPrefix = "other:" },
	} {
		t.Run(name, func(t *testing.T) {
			c := cfg
			mut(&c)
			_, err := Load(t.Context(), c, t0)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			if strings.Contains(err.Error(), srv.Password) {
				t.Errorf("the password leaked into %q", err)
			}
		})
	}
}

// TestRedisSealedRing: with seal_key the private keys in Redis are
// AES-256-GCM ciphertext bound to their kid; the ring does not load
// without the key or with another; an unsealed ring still loads and is
// sealed at the next rotation.
func TestRedisSealedRing(t *testing.T) {
	url := redisURL(t)
	sealKey := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	otherKey := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{8}, 32))
	opts, _ := redis.ParseURL(url)
	rc := redis.NewClient(opts)
	defer rc.Close()
	stored := func(cfg Config) string {
		v, err := rc.Get(t.Context(), cfg.RedisPrefix+redisRingKey).Result()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	sealed := Config{KeyStore: StoreRedis, RedisURL: conf.Secret(url), RedisPrefix: uniquePrefix(t), SealKey: conf.Secret(sealKey)}
	sealed.Defaults()
	initRing(t, sealed)
	v := stored(sealed)
	if strings.Contains(v, "BEGIN PRIVATE KEY") || !strings.Contains(v, "BEGIN "+sealedBlockType) {
		t.Fatalf("ring stored unsealed:\n%s", v)
	}
	l, err := Load(t.Context(), sealed, t0)
	if err != nil {
		t.Fatalf("sealed ring with its key: %v", err)
	}
	_ = l.Close()

	tampered := strings.Replace(v, "Kid: ", "Kid: 00", 1)
	for name, tc := range map[string]struct {
		seal, ring string
		want       string
	}{
		"no seal_key":    {"", v, "sealed but external_evaluation.seal_key is not set"},
		"wrong seal_key": {otherKey, v, "wrong seal_key"},
		"kid swapped":    {sealKey, tampered, "wrong seal_key or tampered"},
	} {
		t.Run(name, func(t *testing.T) {
			c := sealed
			c.SealKey = conf.Secret(tc.seal)
			c.RedisPrefix = uniquePrefix(t)
			if err := rc.Set(t.Context(), c.RedisPrefix+redisRingKey, tc.ring, 0).Err(); err != nil {
				t.Fatal(err)
			}
			_, err := Load(t.Context(), c, t0)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load: %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), tc.seal) && tc.seal != "" {
				t.Error("the seal key leaked into the error")
			}
		})
	}

	// Migration: a ring written before seal_key was set loads with it, and
	// the next rotation seals every key, with a fresh nonce per write.
	plain := sealed
	plain.SealKey = ""
	plain.RedisPrefix = uniquePrefix(t)
	initRing(t, plain)
	migrated := plain
	migrated.SealKey = conf.Secret(sealKey)
	l, err = Load(t.Context(), migrated, t0)
	if err != nil {
		t.Fatalf("unsealed ring with a seal_key: %v", err)
	}
	_ = l.Close()
	s, err := Open(migrated)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Rotate(t.Context(), s, t0, time.Hour, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	first := stored(migrated)
	if strings.Contains(first, "BEGIN PRIVATE KEY") || strings.Count(first, "BEGIN "+sealedBlockType) != 2 {
		t.Fatalf("rotation did not seal every key:\n%s", first)
	}
	if _, err := Rotate(t.Context(), s, t0.Add(time.Minute), time.Hour, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if second := stored(migrated); strings.Contains(second, pemBody(first, 0)) {
		t.Error("the first key was sealed under the same nonce twice")
	}
}

// pemBody is the base64 body of the i-th PEM block of s.
func pemBody(s string, i int) string {
	rest := []byte(s)
	var b *pem.Block
	for range i + 1 {
		b, rest = pem.Decode(rest)
	}
	return base64.StdEncoding.EncodeToString(b.Bytes)[:64]
}

package evaluate

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postured/postured/internal/conf"
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
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	url := "unix://" + sock
	opts, _ := redis.ParseURL(url)
	c := redis.NewClient(opts)
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("redis-server did not come up:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return url
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
	cfg := Config{Enabled: true, KeyStore: KeyStoreRedis, RedisURL: conf.Secret(url), RedisPrefix: prefix, Rules: testRules()}
	acc := newTeam(t)
	clk := newClock(t0)
	a := newFixture(t, fixtureOpts{cfg: &cfg, team: acc, clock: clk})
	b := newFixture(t, fixtureOpts{cfg: &cfg, team: acc, clock: clk})
	bob := map[string]any{"email": "bob@example.com"}
	kidA := a.verifyAsAccess(t, a.evaluate(t, acc.token(t, claims(t0, "na", bob))), "na").kid
	kidB := b.verifyAsAccess(t, b.evaluate(t, acc.token(t, claims(t0, "nb", bob))), "nb").kid
	if kidA != kidB {
		t.Fatalf("replicas sign with different keys: %s, %s", kidA, kidB)
	}
	// A response from replica a verifies against replica b's /keys.
	b.verifyAsAccess(t, a.evaluate(t, acc.token(t, claims(t0, "nx", bob))), "nx")

	cfg.Defaults()
	cli, err := OpenKeyStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ring, err := Rotate(t.Context(), cli, clk.Now(), time.Hour, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour + time.Minute) // past the overlap and the reload interval
	newKid := ring.Keys[1].ID
	for name, f := range map[string]*fixture{"a": a, "b": b} {
		if v := f.verifyAsAccess(t, f.evaluate(t, acc.token(t, claims(clk.Now(), "n", bob))), "n"); v.kid != newKid {
			t.Errorf("replica %s signs with %s after rotation, want %s", name, v.kid, newKid)
		}
	}

	// WATCH/MULTI: concurrent rotations from several processes all land.
	const n = 5
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			s, err := OpenKeyStore(cfg)
			if err != nil {
				t.Error(err)
				return
			}
			defer s.Close()
			if _, err := Rotate(context.Background(), s, clk.Now(), time.Hour, 24*time.Hour); err != nil {
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
			s, _ := OpenKeyStore(empty)
			defer s.Close()
			r, err := EnsureKey(context.Background(), s, t0)
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
	s, _ := OpenKeyStore(broken)
	defer s.Close()
	if _, err := EnsureKey(t.Context(), s, t0); err == nil || !strings.Contains(err.Error(), "not a PEM block") {
		t.Errorf("corrupt ring: %v", err)
	}
	if v, _ := rc.Get(t.Context(), prefix+"broken:"+redisRingKey).Result(); v != "garbage" {
		t.Error("corrupt ring overwritten")
	}
}

func TestRedisUnreachable(t *testing.T) {
	cfg := Config{Enabled: true, KeyStore: KeyStoreRedis, RedisURL: "redis://:hunter2@127.0.0.1:1/0", Rules: testRules()}
	cfg.Defaults()
	_, err := New(t.Context(), Options{Config: cfg, Keys: newTeam(t).keys})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("err %v", err)
	}
}

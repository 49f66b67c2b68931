package cache

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postured/postured/internal/redistest"
)

// startRedis runs a throwaway redis-server on a free loopback port. Without
// the binary the test skips locally but fails under CI, which installs it.
func startRedis(t *testing.T) string {
	t.Helper()
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server not installed (scripts/test installs it)")
		}
		t.Skip("redis-server not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	ready := &lineWatch{want: "Ready to accept connections", seen: make(chan struct{})}
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "notice")
	cmd.Stdout = ready
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	// Redis says when it listens; waiting for that line rather than polling
	// the port needs no sleep, and the deadline only bounds a hung start.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	select {
	case <-ready.seen:
	case err := <-exited:
		t.Fatalf("redis-server exited before accepting connections: %v", err)
	case <-ctx.Done():
		t.Fatal("redis-server did not start")
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("redis-server is ready but %s refuses connections: %v", addr, err)
	}
	c.Close()
	return fmt.Sprintf("redis://%s/0", addr)
}

// lineWatch is a process's stdout that closes seen once a line containing
// want has been written.
type lineWatch struct {
	want string
	seen chan struct{}
	mu   sync.Mutex
	line []byte
	done bool
}

func (w *lineWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return len(p), nil
	}
	w.line = append(w.line, p...)
	if bytes.Contains(w.line, []byte(w.want)) {
		w.done, w.line = true, nil
		close(w.seen)
		return len(p), nil
	}
	// Keep only the unfinished last line.
	if i := bytes.LastIndexByte(w.line, '\n'); i >= 0 {
		w.line = append(w.line[:0], w.line[i+1:]...)
	}
	return len(p), nil
}

type record struct {
	ID    string   `json:"id"`
	MACs  []string `json:"macs"`
	Score int      `json:"score"`
}

func TestRedisStore(t *testing.T) {
	url := startRedis(t)
	ctx := context.Background()
	r, err := NewRedis[[]record](RedisConfig{URL: url, Prefix: "test|"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	stored := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	want := Entry[[]record]{Value: []record{{ID: "a", MACs: []string{"aabbccddeeff"}, Score: 90}}, Found: true, Stored: stored}
	if err := r.Set(ctx, "k1", want, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := r.SetMulti(ctx, map[string]Entry[[]record]{"neg": {Stored: stored}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	es, oks, err := r.GetMulti(ctx, []string{"k1", "missing", "neg"})
	if err != nil {
		t.Fatal(err)
	}
	if !oks[0] || es[0].Value[0].MACs[0] != "aabbccddeeff" || !es[0].Stored.Equal(stored) || !es[0].Found {
		t.Errorf("k1 = %+v %v", es[0], oks[0])
	}
	if oks[1] || !oks[2] || es[2].Found {
		t.Errorf("missing %v, negative %+v %v", oks[1], es[2], oks[2])
	}
	if err := r.Delete(ctx, "neg", "missing"); err != nil {
		t.Fatal(err)
	}
	if _, oks, err := r.GetMulti(ctx, []string{"k1", "neg"}); err != nil || !oks[0] || oks[1] {
		t.Errorf("after Delete(neg): present %v, err %v; want k1 only", oks, err)
	}

	// Through the loader: the second load is answered from Redis.
	l, err := NewLoader(LoaderConfig[[]record]{Store: r, Prefix: "p|", TTL: time.Minute, NegativeTTL: time.Minute, FetchTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	fetch := func(_ context.Context, keys []string) (map[string][]record, error) {
		calls++
		return map[string][]record{"x": {{ID: "x1"}}}, nil
	}
	l.Load(ctx, []string{"x", "y"}, fetch)
	res := l.Load(ctx, []string{"x", "y"}, fetch)
	if calls != 1 || !res["x"].Cached || res["x"].Value[0].ID != "x1" || !res["y"].Cached || res["y"].Found {
		t.Errorf("calls %d, results %+v", calls, res)
	}
}

func TestRedisURLErrorsDoNotLeakPassword(t *testing.T) {
	_, err := NewRedis[int](RedisConfig{URL: "redis://:hunter2@host:notaport/0", Prefix: "p"})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("err = %v", err)
	}
}

func TestRedisDownIsAMissNotAnError(t *testing.T) {
	r, err := NewRedis[int](RedisConfig{URL: "redis://127.0.0.1:1/0", Prefix: "p|"}) // nothing listens on port 1
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	l, err := NewLoader(LoaderConfig[int]{Store: r, TTL: time.Minute, FetchTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	res := l.Load(context.Background(), []string{"a"}, func(context.Context, []string) (map[string]int, error) {
		return map[string]int{"a": 5}, nil
	})
	if res["a"].Value != 5 || res["a"].Err != nil {
		t.Errorf("got %+v", res["a"])
	}
}

// TestRedisEntriesAlwaysExpire: an entry without a TTL is refused, so that
// under volatile-lru the only keys safe from eviction are the key ring's.
func TestRedisEntriesAlwaysExpire(t *testing.T) {
	url := startRedis(t)
	r, err := NewRedis[int](RedisConfig{URL: url, Prefix: "ttl|"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, ttl := range []time.Duration{0, -time.Second} {
		t.Run(ttl.String(), func(t *testing.T) {
			if err := r.Set(t.Context(), "k", Entry[int]{Value: 1, Found: true}, ttl); err == nil {
				t.Error("an entry without TTL was stored")
			}
			if _, ok, _ := r.Get(t.Context(), "k"); ok {
				t.Error("the entry is in Redis")
			}
		})
	}
}

// TestRedisTLSAndACL: the cache works over rediss:// as an ACL user
// limited to its prefix, and fails closed against a CA that did not sign
// the server's certificate or the system pool.
func TestRedisTLSAndACL(t *testing.T) {
	srv := redistest.StartTLS(t, "postured:lookup:*")
	cfg := RedisConfig{URL: srv.URL, TLSCAFile: srv.CAFile, Prefix: "postured:lookup:"}
	r, err := NewRedis[int](cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Set(t.Context(), "k", Entry[int]{Value: 7, Found: true}, time.Minute); err != nil {
		t.Fatalf("set over TLS as ACL user: %v", err)
	}
	if e, ok, err := r.Get(t.Context(), "k"); err != nil || !ok || e.Value != 7 {
		t.Fatalf("get over TLS: %+v %v %v", e, ok, err)
	}

	for name, mut := range map[string]func(*RedisConfig){
		"wrong CA":                    func(c *RedisConfig) { c.TLSCAFile = srv.OtherCAFile },
		"system pool":                 func(c *RedisConfig) { c.TLSCAFile = "" },
		"wrong password":              func(c *RedisConfig) { c.URL = strings.Replace(srv.URL, srv.Password, "nope", 1) },
		"outside the ACL key pattern": func(c *RedisConfig) { c.Prefix = "other:" },
	} {
		t.Run(name, func(t *testing.T) {
			c := cfg
			mut(&c)
			r, err := NewRedis[int](c)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			err = r.Set(t.Context(), "k", Entry[int]{Value: 1}, time.Minute)
			if err == nil {
				t.Fatal("set succeeded")
			}
			if strings.Contains(err.Error(), srv.Password) {
				t.Errorf("the password leaked into %q", err)
			}
		})
	}
	if _, err := NewRedis[int](RedisConfig{URL: "redis://127.0.0.1:6379/0", TLSCAFile: srv.CAFile}); err == nil {
		t.Error("tls_ca_file with a plain redis:// URL was accepted")
	}
}

// TestRedisLock: a lock is exclusive until released or expired, and a
// holder whose lock expired and was taken by another cannot release the
// new holder's.
func TestRedisLock(t *testing.T) {
	url := startRedis(t)
	r, err := NewRedis[int](RedisConfig{URL: url, Prefix: "lock|"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := t.Context()
	release, ok, err := r.TryLock(ctx, "k", time.Minute)
	if err != nil || !ok {
		t.Fatalf("first lock: %v %v", ok, err)
	}
	if _, ok, err := r.TryLock(ctx, "k", time.Minute); err != nil || ok {
		t.Fatalf("second lock while held: %v %v", ok, err)
	}
	release(ctx)
	if _, ok, err := r.TryLock(ctx, "k", time.Minute); err != nil || !ok {
		t.Fatalf("lock after release: %v %v", ok, err)
	}
	stale, ok, _ := r.TryLock(ctx, "k2", time.Minute)
	if !ok {
		t.Fatal("k2 not locked")
	}
	// It expires (deleted here, as its TTL would) and another takes it.
	if err := r.c.Del(ctx, "lock|k2").Err(); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := r.TryLock(ctx, "k2", time.Minute); !ok {
		t.Fatal("k2 not retaken")
	}
	stale(ctx)
	if _, ok, _ := r.TryLock(ctx, "k2", time.Minute); ok {
		t.Error("a stale holder released the new holder's lock")
	}
}

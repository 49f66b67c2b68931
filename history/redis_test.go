package history

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postured/postured/internal/redisopt"
	"github.com/postured/postured/internal/redistest"
)

// roundTrips counts what a client sends; the tests use it from one
// goroutine.
type roundTrips struct{ single, pipelines int }

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.single++
		return next(ctx, cmd)
	}
}

func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		r.pipelines++
		return next(ctx, cmds)
	}
}

func TestRedisStore(t *testing.T) {
	srv := redistest.StartTLS(t, "postured:history:*")
	n := 0
	newStore := func(t *testing.T, maxChanges int) *Redis {
		n++
		s, err := NewRedis(RedisConfig{URL: srv.URL, TLSCAFile: srv.CAFile, Prefix: fmt.Sprintf("postured:history:%d:", n),
			MaxChanges: maxChanges, Retention: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	testStore(t, func(t *testing.T, maxChanges int) Store { return newStore(t, maxChanges) })

	opts, err := redisopt.Options(redisopt.Config{URL: srv.URL, TLSCAFile: srv.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	raw := redis.NewClient(opts)
	defer raw.Close()
	ctx := t.Context()

	t.Run("one round trip per batch, keys expire", func(t *testing.T) {
		s := newStore(t, 2)
		var updates []Update
		for i := range 500 {
			updates = append(updates, Update{fmt.Sprintf("dev-%d", i), score(i % 100)})
		}
		t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
		trips := &roundTrips{}
		for i := range 3 {
			for j := range updates {
				updates[j].State = score((j + i) % 100)
			}
			if i == 1 {
				// From the second batch on the script is loaded.
				s.c.AddHook(trips)
			}
			if err := s.Apply(ctx, t0.Add(time.Duration(i)*time.Minute), updates); err != nil {
				t.Fatal(err)
			}
		}
		if trips.single != 0 || trips.pipelines != 2 {
			t.Errorf("2 batches of 500 devices took %d pipelines and %d single commands, want 2 and 0", trips.pipelines, trips.single)
		}
		d, ok, err := s.Device(ctx, "dev-7")
		if err != nil || !ok || d.Score != 9 || len(d.Changes) != 2 {
			t.Fatalf("dev-7: %+v ok=%v err=%v", d, ok, err)
		}
		for _, k := range s.keys("dev-7") {
			ttl := raw.PTTL(ctx, k).Val()
			if ttl <= 0 || ttl > time.Hour {
				t.Errorf("%s: ttl %s, want (0, 1h]", k, ttl)
			}
			if l := raw.LLen(ctx, s.keys("dev-7")[1]).Val(); l != 2 {
				t.Errorf("%d transitions kept, want 2", l)
			}
		}
	})
	t.Run("script flushed", func(t *testing.T) {
		s := newStore(t, 5)
		at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
		if err := s.Apply(ctx, at, []Update{{"x", score(10)}}); err != nil {
			t.Fatal(err)
		}
		if err := raw.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if err := s.Apply(ctx, at.Add(time.Minute), []Update{{"x", score(20)}}); err != nil {
			t.Fatal(err)
		}
		d, _, err := s.Device(ctx, "x")
		if err != nil || len(d.Changes) != 1 || d.Changes[0].NewScore != 20 {
			t.Fatalf("after SCRIPT FLUSH: %+v %v", d, err)
		}
	})
	t.Run("wrong CA fails closed", func(t *testing.T) {
		s, err := NewRedis(RedisConfig{URL: srv.URL, TLSCAFile: srv.OtherCAFile, Prefix: "postured:history:ca:", MaxChanges: 1, Retention: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.Apply(ctx, time.Now(), []Update{{"x", score(1)}}); err == nil {
			t.Error("a server signed by another CA was trusted")
		}
	})
}

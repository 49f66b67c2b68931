package cache

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// sharedStore is one store seen by several replicas' Loaders, with the
// locks Redis would give them; lock expiry follows the (bubble's) clock.
type sharedStore struct {
	*Memory[int]
	mu   sync.Mutex
	held map[string]lockHold
	next int
	// beforeLock, if set, runs as TryLock starts: another replica acting
	// just then.
	beforeLock func()
}

type lockHold struct {
	token   int
	expires time.Time
}

func newSharedStore(t *testing.T) *sharedStore {
	return &sharedStore{Memory: newTestMemory[int](t, MemoryConfig{}), held: map[string]lockHold{}}
}

func (s *sharedStore) TryLock(_ context.Context, key string, ttl time.Duration) (func(context.Context), bool, error) {
	if s.beforeLock != nil {
		s.beforeLock()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if h, ok := s.held[key]; ok && time.Now().Before(h.expires) {
		return nil, false, nil
	}
	s.next++
	token := s.next
	s.held[key] = lockHold{token: token, expires: time.Now().Add(ttl)}
	return func(context.Context) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.held[key].token == token {
			delete(s.held, key)
		}
	}, true, nil
}

func replicaLoader(t *testing.T, store Store[int], c *clock) *Loader[int] {
	t.Helper()
	l, err := NewLoader(LoaderConfig[int]{
		Store: store, Prefix: "p|", TTL: time.Minute, NegativeTTL: 10 * time.Second,
		FetchTimeout: time.Second, Now: c.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestLoaderLockSharesFetchesAcrossReplicas: two replicas asked for the
// same keys at once make one vendor call; the second reads the first's
// answer from the shared store. When the first fails, or dies holding the
// lock, the second asks the vendor itself.
func TestLoaderLockSharesFetchesAcrossReplicas(t *testing.T) {
	keys := []string{"a", "b", "c"} // c is unknown to the vendor
	check := func(t *testing.T, who string, r map[string]Result[int]) {
		t.Helper()
		if r["a"].Value != 1 || !r["a"].Found || r["b"].Value != 2 || r["c"].Found || r["a"].Err != nil || r["c"].Err != nil {
			t.Errorf("%s: %+v", who, r)
		}
	}
	tests := []struct {
		name string
		// firstFails: the first replica's vendor call fails. firstDies:
		// a replica took the lock and died; nothing else asks.
		firstFails, firstDies bool
		wantCalls             int64
	}{
		{"second reads the first's answer", false, false, 1},
		{"first fails, second asks", true, false, 2},
		{"first died holding the lock, second asks after its ttl", false, true, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
				store := newSharedStore(t)
				first, second := replicaLoader(t, store, c), replicaLoader(t, store, c)
				vendor := &backend{known: map[string]int{"a": 1, "b": 2}}
				firstVendor := &backend{known: vendor.known, release: make(chan struct{})}
				if tc.firstFails {
					err := errors.New("vendor 503")
					firstVendor.err.Store(&err)
				}
				firstDone := make(chan map[string]Result[int], 1)
				if tc.firstDies {
					if _, ok, _ := store.TryLock(t.Context(), "p|lock:"+keySetHash(keys), time.Second); !ok {
						t.Fatal("lock not taken")
					}
				} else {
					go func() { firstDone <- first.Load(t.Context(), keys, firstVendor.fetch) }()
				}
				synctest.Wait() // the lock is held; its holder waits on its vendor
				secondDone := make(chan map[string]Result[int], 1)
				go func() { secondDone <- second.Load(t.Context(), keys, vendor.fetch) }()
				synctest.Wait()
				if n := vendor.calls.Load(); n != 0 {
					t.Fatalf("second replica asked the vendor %d times while the lock was held", n)
				}
				close(firstVendor.release)
				if !tc.firstDies {
					if r := <-firstDone; !tc.firstFails {
						check(t, "first", r)
					}
				}
				check(t, "second", <-secondDone)
				if got := firstVendor.calls.Load() + vendor.calls.Load(); got != tc.wantCalls {
					t.Errorf("vendor calls %d, want %d", got, tc.wantCalls)
				}
			})
		})
	}
}

// TestLoaderLockRereadsAfterTakingIt: a replica that answered and
// released its lock between another's read of the store and that one's
// taking the lock is not asked again.
func TestLoaderLockRereadsAfterTakingIt(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	store := newSharedStore(t)
	other := replicaLoader(t, store, c)
	vendor := &backend{known: map[string]int{"a": 1, "b": 2}}
	store.beforeLock = func() {
		store.beforeLock = nil
		other.Load(t.Context(), []string{"a", "b", "c"}, vendor.fetch)
	}
	r := replicaLoader(t, store, c).Load(t.Context(), []string{"a", "b", "c"}, vendor.fetch)
	if r["a"].Value != 1 || r["b"].Value != 2 || r["c"].Found || r["c"].Err != nil {
		t.Errorf("got %+v", r)
	}
	if n := vendor.calls.Load(); n != 1 {
		t.Errorf("vendor calls %d, want 1: the answer stored meanwhile was not used", n)
	}
}

// TestLoaderLockLeavesNoFlightBehind: keys another replica answered are
// no longer in flight here, so once they expire they are fetched again
// rather than answered from the finished flight forever.
func TestLoaderLockLeavesNoFlightBehind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		store := newSharedStore(t)
		first, second := replicaLoader(t, store, c), replicaLoader(t, store, c)
		vendor := &backend{known: map[string]int{"a": 1}}
		firstVendor := &backend{known: map[string]int{"a": 1}, release: make(chan struct{})}
		done := make(chan struct{})
		go func() { first.Load(t.Context(), []string{"a"}, firstVendor.fetch); close(done) }()
		synctest.Wait()
		answered := make(chan map[string]Result[int], 1)
		go func() { answered <- second.Load(t.Context(), []string{"a"}, vendor.fetch) }()
		synctest.Wait()
		close(firstVendor.release)
		<-done
		if r := <-answered; r["a"].Value != 1 || vendor.calls.Load() != 0 {
			t.Fatalf("second replica: %+v after %d vendor calls, want the first's answer", r, vendor.calls.Load())
		}
		c.add(2 * time.Minute) // past the TTL
		if r := second.Load(t.Context(), []string{"a"}, vendor.fetch); r["a"].Value != 1 || r["a"].Cached {
			t.Errorf("after expiry: %+v", r)
		}
		if n := vendor.calls.Load(); n != 1 {
			t.Errorf("vendor calls after expiry: %d, want 1", n)
		}
	})
}

// TestLoaderRecheckTakesNoLock: a recheck asks the vendor at once, even
// while another replica holds the lock on the same keys: waiting would
// only answer it from the store it means to bypass.
func TestLoaderRecheckTakesNoLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		store := newSharedStore(t)
		if _, ok, _ := store.TryLock(t.Context(), "p|lock:"+keySetHash([]string{"a"}), time.Hour); !ok {
			t.Fatal("lock not taken")
		}
		vendor := &backend{known: map[string]int{"a": 1}}
		answered := make(chan map[string]Result[int], 1)
		go func() {
			answered <- replicaLoader(t, store, c).Load(WithRefresh(t.Context()), []string{"a"}, vendor.fetch)
		}()
		synctest.Wait()
		if n := vendor.calls.Load(); n != 1 {
			t.Fatalf("vendor calls %d while another replica holds the lock, want 1", n)
		}
		if r := <-answered; r["a"].Value != 1 {
			t.Errorf("got %+v", r)
		}
	})
}

package history

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// score is a one-provider state whose reason carries the score, so every
// score change has exactly one cause.
func score(s int) State {
	return State{Score: s, Decision: "weighted mean of 1 provider(s)", Providers: []ProviderState{{
		Name: "intune", Outcome: "matched", RecordID: "i1", Reason: fmt.Sprintf("level=%d", s), Score: s,
	}}}
}

// testStore is what every Store must do; newStore gets maxChanges.
func testStore(t *testing.T, newStore func(t *testing.T, maxChanges int) Store) {
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	ctx := t.Context()
	t.Run("never seen, seen unchanged, changed", func(t *testing.T) {
		s := newStore(t, 20)
		if _, ok, err := s.Device(ctx, "ghost"); ok || err != nil {
			t.Fatalf("never-seen device: ok=%v err=%v", ok, err)
		}
		for i := range 3 {
			if err := s.Apply(ctx, t0.Add(time.Duration(i)*time.Minute), []Update{{"steady", score(80)}, {"moving", score(80 - 30*(i/2))}}); err != nil {
				t.Fatal(err)
			}
		}
		d, ok, err := s.Device(ctx, "steady")
		if err != nil || !ok {
			t.Fatalf("steady: ok=%v err=%v", ok, err)
		}
		if d.Score != 80 || d.Changes == nil || len(d.Changes) != 0 || !d.SeenAt.Equal(t0.Add(2*time.Minute)) {
			t.Errorf("steady device: %+v", d)
		}
		d, _, _ = s.Device(ctx, "moving")
		want := []Change{{At: t0.Add(2 * time.Minute), OldScore: 80, NewScore: 50, Causes: []string{"intune level 80 -> 50"}}}
		if d.Score != 50 || !changesEqual(d.Changes, want) {
			t.Errorf("moving device: %+v, want changes %+v", d, want)
		}
	})
	t.Run("keeps the newest max_changes", func(t *testing.T) {
		s := newStore(t, 3)
		for i := range 10 {
			if err := s.Apply(ctx, t0.Add(time.Duration(i)*time.Minute), []Update{{"flappy", score(i * 10)}}); err != nil {
				t.Fatal(err)
			}
		}
		d, _, err := s.Device(ctx, "flappy")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, c := range d.Changes {
			got = append(got, fmt.Sprintf("%s %d->%d %s", c.At.Format("15:04"), c.OldScore, c.NewScore, strings.Join(c.Causes, ";")))
		}
		want := []string{"09:09 80->90 intune level 80 -> 90", "09:08 70->80 intune level 70 -> 80", "09:07 60->70 intune level 60 -> 70"}
		if !slices.Equal(got, want) {
			t.Errorf("changes %q, want %q", got, want)
		}
	})
}

func changesEqual(a, b []Change) bool {
	return slices.EqualFunc(a, b, func(x, y Change) bool {
		return x.At.Equal(y.At) && x.OldScore == y.OldScore && x.NewScore == y.NewScore && slices.Equal(x.Causes, y.Causes)
	})
}

func TestMemoryStore(t *testing.T) {
	testStore(t, func(t *testing.T, maxChanges int) Store {
		m, err := NewMemory(MemoryConfig{MaxDevices: 100, MaxBytes: 1 << 20, MaxChanges: maxChanges, Retention: 24 * time.Hour,
			Now: func() time.Time { return time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC) }})
		if err != nil {
			t.Fatal(err)
		}
		return m
	})
}

func TestMemoryBounds(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	ctx := t.Context()
	now := t0
	newMem := func(t *testing.T, devices, bytes int) *Memory {
		m, err := NewMemory(MemoryConfig{MaxDevices: devices, MaxBytes: bytes, MaxChanges: 20, Retention: time.Hour, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	apply := func(t *testing.T, m *Memory, at time.Time, ids ...string) {
		t.Helper()
		var us []Update
		for _, id := range ids {
			us = append(us, Update{id, score(int(at.Sub(t0) / time.Minute))})
		}
		if err := m.Apply(ctx, at, us); err != nil {
			t.Fatal(err)
		}
	}
	known := func(m *Memory, id string) bool {
		_, ok, _ := m.Device(ctx, id)
		return ok
	}
	t.Run("devices", func(t *testing.T) {
		now = t0
		m := newMem(t, 3, 1<<20)
		apply(t, m, t0, "a", "b", "c")
		apply(t, m, t0.Add(time.Minute), "a") // a is now the most recent
		apply(t, m, t0.Add(2*time.Minute), "d")
		if n, _ := m.Stats(); n != 3 {
			t.Errorf("%d devices, want 3", n)
		}
		if known(m, "b") || !known(m, "a") || !known(m, "c") || !known(m, "d") {
			t.Error("the device answered longest ago (b) should be the one forgotten")
		}
	})
	t.Run("bytes", func(t *testing.T) {
		now = t0
		const limit = 8 << 10
		m := newMem(t, 1_000_000, limit)
		// Each device changes score every minute, so its changes grow too.
		ids := make([]string, 50)
		for i := range ids {
			ids[i] = fmt.Sprintf("device-%03d", i)
		}
		for i := range 30 {
			apply(t, m, t0.Add(time.Duration(i)*time.Second), ids...)
			if _, b := m.Stats(); b > limit {
				t.Fatalf("round %d: %d bytes, bound %d", i, b, limit)
			}
		}
		n, b := m.Stats()
		if n == 0 || n == len(ids) || b == 0 {
			t.Errorf("%d devices in %d bytes: want some, not all, of %d", n, b, len(ids))
		}
		if !known(m, ids[len(ids)-1]) || known(m, ids[0]) {
			t.Error("the last answered device should be kept, the first forgotten")
		}
	})
	t.Run("retention", func(t *testing.T) {
		now = t0
		m := newMem(t, 100, 1<<20)
		apply(t, m, t0, "old")
		now = t0.Add(59 * time.Minute)
		if !known(m, "old") {
			t.Fatal("forgotten before the retention")
		}
		now = t0.Add(61 * time.Minute)
		if known(m, "old") {
			t.Error("read after the retention")
		}
		apply(t, m, now, "new")
		if n, _ := m.Stats(); n != 1 {
			t.Errorf("%d devices held after the retention, want 1", n)
		}
	})
}

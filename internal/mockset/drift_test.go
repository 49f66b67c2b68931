package mockset

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/postured/postured/internal/fleet"
)

// TestDrift runs drift ticks over every vendor mock and reads the result
// the way postured scores it (each vendor's Current): a changed device
// held by the vendor is seen at the change's time and mostly scores
// differently, a re-enrolled one has a new current record with the old
// one superseded, and every other device is untouched.
func TestDrift(t *testing.T) {
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	set, err := New(600, 5, now)
	if err != nil {
		t.Fatal(err)
	}
	for tick := 1; tick <= 3; tick++ {
		before := map[string]map[int]mockExpected{}
		for _, v := range set.Vendors {
			before[v.Name] = snapshot(v.Current())
		}
		changes := set.Drift(20, now.Add(time.Duration(tick)*time.Minute))
		changed := map[int]fleet.Change{}
		for _, c := range changes {
			changed[c.Index] = c
		}
		for _, v := range set.Vendors {
			t.Run(v.Name, func(t *testing.T) {
				b, a := before[v.Name], snapshot(v.Current())
				held, moved, reenrolled := 0, 0, 0
				for i, was := range b {
					now := a[i]
					c, ok := changed[i]
					if !ok {
						if !reflect.DeepEqual(now, was) {
							t.Errorf("tick %d: device %d did not drift but changed: %+v -> %+v", tick, i, was, now)
						}
						continue
					}
					held++
					// Vendors add their own sub-second jitter.
					if d := c.LastSeen.Sub(now.LastSeen); d < -time.Second || d > time.Second {
						t.Errorf("tick %d: device %d seen %s, drifted at %s", tick, i, now.LastSeen, c.LastSeen)
					}
					if c.Reenrolled {
						reenrolled++
						if now.ID == was.ID || !slices.Contains(now.Older, was.ID) {
							t.Errorf("tick %d: re-enrolled device %d: current %s (was %s), older %q", tick, i, now.ID, was.ID, now.Older)
						}
					} else if now.ID != was.ID {
						t.Errorf("tick %d: device %d changed record %s -> %s without re-enrolling", tick, i, was.ID, now.ID)
					}
					if now.Score != was.Score {
						moved++
					}
				}
				if len(a) != len(b) {
					t.Errorf("tick %d: %d devices held, %d before", tick, len(a), len(b))
				}
				if held == 0 || moved*2 < held {
					t.Errorf("tick %d: %d of %d drifted devices changed score", tick, moved, held)
				}
				t.Logf("tick %d: %d drifted, %d scores moved, %d re-enrolled", tick, held, moved, reenrolled)
			})
		}
	}
}

// mockExpected is an expectation with its superseded records in order,
// so snapshots compare whatever order a vendor lists them in.
type mockExpected struct {
	ID       string
	Score    int
	LastSeen time.Time
	Older    []string
}

func snapshot[E interface {
	~struct {
		ID       string
		Score    int
		LastSeen time.Time
		Older    []string
	}
}](m map[int]E) map[int]mockExpected {
	out := make(map[int]mockExpected, len(m))
	for i, e := range m {
		x := mockExpected(e)
		x.Older = slices.Sorted(slices.Values(x.Older))
		out[i] = x
	}
	return out
}

// TestDriftDeterministic: the same seed drifts into the same vendor
// records, tick after tick; another seed does not.
func TestDriftDeterministic(t *testing.T) {
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name         string
		seedA, seedB uint64
		same         bool
	}{
		{"same seed", 8, 8, true},
		{"other seed", 8, 9, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := New(300, tc.seedA, now)
			if err != nil {
				t.Fatal(err)
			}
			b, err := New(300, tc.seedB, now)
			if err != nil {
				t.Fatal(err)
			}
			for tick := 1; tick <= 2; tick++ {
				at := now.Add(time.Duration(tick) * time.Minute)
				a.Drift(10, at)
				b.Drift(10, at)
				for i, v := range a.Vendors {
					if got := reflect.DeepEqual(v.Current(), b.Vendors[i].Current()); got != tc.same {
						t.Errorf("tick %d: %s records equal = %v, want %v", tick, v.Name, got, tc.same)
					}
				}
			}
		})
	}
}

package fleet

import (
	"reflect"
	"slices"
	"testing"
	"time"
)

func TestDriftDeterministic(t *testing.T) {
	tests := []struct {
		name         string
		seedA, seedB uint64
		same         bool
	}{
		{"same seed, same changes", 3, 3, true},
		{"other seed, other changes", 3, 4, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := NewDrift(Generate(400, tc.seedA, testNow)), NewDrift(Generate(400, tc.seedB, testNow))
			for tick := 1; tick <= 3; tick++ {
				at := testNow.Add(time.Duration(tick) * time.Minute)
				ca, cb := a.Next(5, at), b.Next(5, at)
				if got := reflect.DeepEqual(ca, cb); got != tc.same {
					t.Errorf("tick %d: changes equal = %v, want %v", tick, got, tc.same)
				}
			}
		})
	}
}

// TestDriftChanges: the share asked for changes, only managed devices, in
// index order, each swinging across the middle from its current health.
func TestDriftChanges(t *testing.T) {
	f := Generate(1000, 9, testNow)
	d := NewDrift(f)
	health, seen := make([]int, len(f.Devices)), make([]time.Time, len(f.Devices))
	for i, dev := range f.Devices {
		health[i], seen[i] = dev.Health, dev.LastSeen
	}
	managed := 0
	for _, dev := range f.Devices {
		if !dev.Unmanaged {
			managed++
		}
	}
	reenrolled := 0
	tests := []struct {
		percent float64
		want    int
	}{
		{10, (managed + 5) / 10},
		{10, (managed + 5) / 10},
		{0.001, 1}, // at least one
		{0, 0},
		{100, managed},
	}
	for _, tc := range tests {
		at := testNow.Add(time.Duration(d.Tick()+1) * time.Minute)
		changes := d.Next(tc.percent, at)
		if len(changes) != tc.want {
			t.Fatalf("tick %d, %v%%: %d changes, want %d", d.Tick(), tc.percent, len(changes), tc.want)
		}
		if !slices.IsSortedFunc(changes, func(a, b Change) int { return a.Index - b.Index }) {
			t.Errorf("tick %d: changes not in index order", d.Tick())
		}
		for _, c := range changes {
			if f.Devices[c.Index].Unmanaged {
				t.Errorf("tick %d: unmanaged device %d changed", d.Tick(), c.Index)
			}
			if (health[c.Index] >= 50) == (c.Health >= 50) || c.Health < 0 || c.Health > 100 {
				t.Errorf("tick %d: device %d health %d -> %d, want a swing across 50", d.Tick(), c.Index, health[c.Index], c.Health)
			}
			if c.LastSeen.After(at) || at.Sub(c.LastSeen) > time.Minute || !c.LastSeen.After(seen[c.Index]) {
				t.Errorf("tick %d: device %d seen %s (before: %s), tick at %s", d.Tick(), c.Index, c.LastSeen, seen[c.Index], at)
			}
			health[c.Index], seen[c.Index] = c.Health, c.LastSeen
			if c.Reenrolled {
				reenrolled++
			}
		}
	}
	if reenrolled == 0 {
		t.Error("no change was a re-enrolment")
	}
	if f.Devices[0].Health != Generate(1000, 9, testNow).Devices[0].Health {
		t.Error("drift modified the fleet")
	}
}

package fleet

import (
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// Change is what happens to one device at one drift tick. Every vendor
// view holding the device applies it to its current record in its own
// terms (a compliance state, a containment and a Zero Trust score, a
// FileVault status), so the vendors agree on the device's new health the
// way they agree on its generated one.
type Change struct {
	Index int
	// Health is the device's new underlying state, 0..100.
	Health int
	// LastSeen is when the device checked in with its vendors.
	LastSeen time.Time
	// Reenrolled devices enrolled again: vendors add a new record (new
	// id, seen at LastSeen) and leave the old one behind, now superseded.
	Reenrolled bool
	// Rand seeds the vendors' choices for this change.
	Rand uint64
}

// VendorRand returns a reproducible random source for applying c in one
// vendor view, independent of every other vendor's.
func (c Change) VendorRand(vendor string) *rand.Rand {
	return rand.New(rand.NewPCG(c.Rand, vendorHash(vendor))) // #nosec G404 -- seeded on purpose so the mock fleet replays alike; nothing secret
}

// Drift is the fleet living on: each Next changes a share of the managed
// devices, chosen from the fleet's seed and the tick number alone, so two
// drifts over the same fleet produce the same changes tick after tick. A
// changed device's health swings across the middle (a healthy device
// degrades, a failing one is fixed), so its scores move. Drift keeps the
// devices' current health and never modifies the Fleet, which vendor
// views and batches keep reading. It is not safe for concurrent use.
type Drift struct {
	fleet    *Fleet
	managed  []int // indexes of the devices some vendor may hold
	health   []int
	lastSeen []time.Time
	tick     uint64
}

// driftStream separates the drift's random stream from the generator's.
const driftStream = 0xd41f7

// NewDrift starts drifting f from its generated state.
func NewDrift(f *Fleet) *Drift {
	d := &Drift{fleet: f, health: make([]int, len(f.Devices)), lastSeen: make([]time.Time, len(f.Devices))}
	for i, dev := range f.Devices {
		d.health[i], d.lastSeen[i] = dev.Health, dev.LastSeen
		if !dev.Unmanaged {
			d.managed = append(d.managed, i)
		}
	}
	return d
}

// Tick is the number of Next calls so far.
func (d *Drift) Tick() uint64 { return d.tick }

// Next advances one tick at time at: percent (0..100) of the managed
// devices, at least one when percent > 0, change. A changed device was
// last seen in the minute before at, and always after its previous
// check-in. Changes are in index order.
func (d *Drift) Next(percent float64, at time.Time) []Change {
	d.tick++
	n := int(math.Round(float64(len(d.managed)) * min(max(percent, 0), 100) / 100))
	if percent > 0 && n == 0 && len(d.managed) > 0 {
		n = 1
	}
	r := rand.New(rand.NewPCG(d.fleet.Seed^driftStream, d.tick)) // #nosec G404 -- seeded on purpose so the mock fleet drifts alike every run; nothing secret
	picked := r.Perm(len(d.managed))[:n]
	changes := make([]Change, 0, n)
	for _, p := range picked {
		i := d.managed[p]
		h := d.health[i]
		if h >= 50 {
			h = r.IntN(30)
		} else {
			h = 70 + r.IntN(31)
		}
		// Checked in during the last minute, and never before its previous
		// check-in, however close the ticks.
		seen := at.UTC().Add(-time.Duration(r.IntN(60)) * time.Second).Truncate(time.Second)
		if !seen.After(d.lastSeen[i]) {
			seen = d.lastSeen[i].Add(time.Second).Truncate(time.Second)
		}
		d.health[i], d.lastSeen[i] = h, seen
		changes = append(changes, Change{
			Index:      i,
			Health:     h,
			LastSeen:   seen,
			Reenrolled: r.IntN(20) == 0,
			Rand:       r.Uint64(),
		})
	}
	slices.SortFunc(changes, func(a, b Change) int { return a.Index - b.Index })
	return changes
}

package crowdstrikemock

import (
	"math/rand/v2"
	"time"

	"github.com/postured/postured/internal/fleet"
	"github.com/postured/postured/internal/mockkit"
)

// live is the fleet's Falcon tenant as it drifts: the server, the fleet
// device each of its hosts describes, and the guard that keeps changes
// apart from the requests it serves.
type live struct {
	fleet  *fleet.Fleet
	s      *Server
	owners []int // parallel to s.hosts
	guard  *mockkit.Guard
}

// containedBelow is the health under which a drifted host is network
// contained; above it, a contained host's containment is lifted.
const containedBelow = 10

// drift applies one tick's changes. A changed device's current host (the
// most recently seen) checks in: containment follows its new health, and
// its Zero Trust Assessment, if it has one, is re-scored. A re-enrolled
// device gets a new host (new AID, first seen now) and the old one stays
// behind.
func (l *live) drift(changes []fleet.Change) {
	l.guard.Update(func() {
		defer l.s.index.reset()
		defer l.s.listing.reset()
		current := make(map[int]int, len(l.owners)) // fleet index -> host
		for i, o := range l.owners {
			if j, ok := current[o]; !ok || l.s.hosts[i].LastSeen > l.s.hosts[j].LastSeen {
				current[o] = i // RFC 3339 UTC without fractions orders as text
			}
		}
		for _, c := range changes {
			i, ok := current[c.Index]
			if !ok {
				continue // no Falcon sensor
			}
			r := c.VendorRand(vendorName)
			if c.Reenrolled {
				l.reenrol(c, r)
				continue
			}
			h := &l.s.hosts[i]
			h.LastSeen = falconTime(c.LastSeen)
			h.ModifiedTimestamp = h.LastSeen
			switch contained := h.Status == "contained" || h.Status == "containment_pending"; {
			case c.Health < containedBelow && !contained:
				h.Status = "contained"
			case c.Health >= containedBelow && contained:
				h.Status = "normal"
			}
			if a, ok := l.s.zta[h.DeviceID]; ok {
				*a = assessmentFor(h, min(max(c.Health+r.IntN(7)-3, 1), 100), r)
			}
		}
	})
}

// reenrol adds the new host of a re-enrolled device, assessed like a
// generated one.
func (l *live) reenrol(c fleet.Change, r *rand.Rand) {
	d := l.fleet.Devices[c.Index]
	d.Health, d.LastSeen = c.Health, c.LastSeen
	h := fleetHost(&d, r, l.s.cid, c.Health < containedBelow)
	h.FirstSeen = falconTime(c.LastSeen.Add(-time.Duration(1+r.IntN(60)) * time.Minute))
	l.s.hosts, l.owners = append(l.s.hosts, h), append(l.owners, c.Index)
	l.s.byID[h.DeviceID] = len(l.s.hosts) - 1
	if a, ok := fleetAssessment(&d, r, &h); ok {
		l.s.zta[a.AID] = &a
	}
}

// current is the view's expected over the hosts as they are now.
func (l *live) current() map[int]mockkit.Expected {
	var out map[int]mockkit.Expected
	l.guard.Read(func() {
		v := &view{hosts: l.s.hosts, owners: l.owners}
		for _, a := range l.s.zta {
			v.zta = append(v.zta, *a)
		}
		out = v.expected()
	})
	return out
}

package intunemock

import (
	"time"

	"github.com/postured/postured/internal/fleet"
	"github.com/postured/postured/internal/mockkit"
)

// live is the fleet's Intune tenant as it drifts: the server, the fleet
// device each of its records describes, and the guard that keeps changes
// apart from the requests it serves.
type live struct {
	fleet  *fleet.Fleet
	s      *Server
	owners []int // parallel to s.devices
	guard  *mockkit.Guard
}

// drift applies one tick's changes. A changed device's current record
// (the most recently synced) syncs again with the compliance state and
// encryption its new health gives; a re-enrolled device gets a new
// managedDevice (new id, enrolled now) and its old record stays behind.
func (l *live) drift(changes []fleet.Change) {
	l.guard.Update(func() {
		current := make(map[int]int, len(l.owners)) // fleet index -> record
		for i, o := range l.owners {
			if j, ok := current[o]; !ok || l.s.devices[i].LastSyncDateTime.After(l.s.devices[j].LastSyncDateTime) {
				current[o] = i
			}
		}
		for _, c := range changes {
			i, ok := current[c.Index]
			if !ok {
				continue // not enrolled in Intune
			}
			r := c.VendorRand(vendorName)
			if c.Reenrolled {
				d := l.fleet.Devices[c.Index]
				d.Health, d.LastSeen = c.Health, c.LastSeen
				md := intuneDevice(&d, r)
				md.EnrolledDateTime = md.LastSyncDateTime.Add(-time.Duration(1+r.IntN(60)) * time.Minute).Truncate(time.Second)
				l.s.devices, l.owners = append(l.s.devices, md), append(l.owners, c.Index)
				continue
			}
			md := &l.s.devices[i]
			md.LastSyncDateTime = c.LastSeen.Add(-time.Duration(1+r.IntN(9_999_999)) * 100 * time.Nanosecond)
			md.ComplianceState = compliance(c.Health, r)
			md.ComplianceGracePeriodExpirationDateTime = graceExpiry(md.ComplianceState, md.LastSyncDateTime)
			md.IsEncrypted = c.Health >= 40
			if md.OperatingSystem == "iOS" {
				md.JailBroken = map[bool]string{true: "True", false: "False"}[c.Health < 10]
			}
		}
		l.s.reindex()
	})
}

// current is expected over the records as they are now.
func (l *live) current() map[int]mockkit.Expected {
	var out map[int]mockkit.Expected
	l.guard.Read(func() { out = expected(l.s.devices, l.owners) })
	return out
}

package jamfmock

import (
	"strconv"

	"github.com/postured/postured/internal/fleet"
	"github.com/postured/postured/internal/mockkit"
)

// live is the fleet's Jamf inventory as it drifts: the server, the fleet
// device each of its records describes, and the guard that keeps changes
// apart from the requests it serves.
type live struct {
	fleet          *fleet.Fleet
	s              *Server
	computerOwners []int // parallel to s.opts.Computers
	mobileOwners   []int // parallel to s.opts.MobileDevices
	guard          *mockkit.Guard
}

// drift applies one tick's changes. A changed Mac's current record (the
// last to contact Jamf) checks in with the FileVault state its new health
// gives, a changed iPhone's reports whether a passcode is set. A
// re-enrolled device gets a new, managed record (the next id) and its old
// one is left unmanaged, as Jamf shows a device enrolled again.
func (l *live) drift(changes []fleet.Change) {
	l.guard.Update(func() {
		defer l.s.index.reset()
		computers := latest(l.computerOwners, func(i int) string {
			return *l.s.opts.Computers[i].General.LastContactTime
		})
		mobiles := latest(l.mobileOwners, func(i int) string {
			return *l.s.opts.MobileDevices[i].General.LastInventoryUpdateDate
		})
		for _, c := range changes {
			r := c.VendorRand(vendorName)
			d := l.fleet.Devices[c.Index]
			d.Health, d.LastSeen = c.Health, c.LastSeen
			if i, ok := computers[c.Index]; ok {
				cur := &l.s.opts.Computers[i]
				if c.Reenrolled {
					cur.General.RemoteManagement.Managed = false
					nc := fleetComputer(&d, r, c.LastSeen, true)
					nc.ID = strconv.Itoa(len(l.s.opts.Computers) + 1)
					l.s.opts.Computers, l.computerOwners = append(l.s.opts.Computers, nc), append(l.computerOwners, c.Index)
					continue
				}
				cur.General.LastContactTime = ptr(FormatTime(c.LastSeen))
				cur.General.ReportDate = ptr(FormatTime(c.LastSeen))
				setFileVault(cur, c.Health)
			}
			if i, ok := mobiles[c.Index]; ok {
				cur := &l.s.opts.MobileDevices[i]
				if c.Reenrolled {
					cur.General.Managed, cur.General.Supervised = false, false
					nm := fleetMobile(&d, r, c.LastSeen, true)
					nm.MobileDeviceID = strconv.Itoa(len(l.s.opts.MobileDevices) + 1)
					l.s.opts.MobileDevices, l.mobileOwners = append(l.s.opts.MobileDevices, nm), append(l.mobileOwners, c.Index)
					continue
				}
				cur.General.LastInventoryUpdateDate = ptr(FormatTime(c.LastSeen))
				if sec := cur.Security; sec != nil {
					sec.DataProtected, sec.PasscodePresent = c.Health >= 30, c.Health >= 30
					sec.PasscodeCompliant, sec.PasscodeCompliantWithProfile = c.Health >= 40, c.Health >= 40
				}
			}
		}
	})
}

// setFileVault sets a Mac's encryption as its health gives it, the way
// the generated inventory does: encrypted from 40, encrypting from 30.
// Ineligible hardware stays ineligible.
func setFileVault(c *Computer, health int) {
	fv := FileVaultNotEncrypted
	switch {
	case c.OperatingSystem.FileVault2Status == FileVaultNotApplicable:
		return
	case health >= 40:
		fv = FileVaultAllEncrypted
	case health >= 30:
		fv = FileVaultSomeEncrypted
	}
	part := map[string]string{FileVaultAllEncrypted: "ENCRYPTED", FileVaultSomeEncrypted: "ENCRYPTING", FileVaultNotEncrypted: "UNENCRYPTED"}[fv]
	c.OperatingSystem.FileVault2Status = fv
	c.DiskEncryption.FileVault2Enabled = fv == FileVaultAllEncrypted
	if p := c.DiskEncryption.BootPartitionEncryptionDetails; p != nil {
		p.PartitionFileVault2State = part
		p.PartitionFileVault2Percent = map[bool]int{true: 100, false: 0}[part == "ENCRYPTED"]
	}
}

// latest maps each fleet device to its most recent record: the one with
// the latest timestamp, which Jamf writes in a fixed-width UTC form that
// orders as text.
func latest(owners []int, seen func(int) string) map[int]int {
	out := make(map[int]int, len(owners))
	for i, o := range owners {
		if j, ok := out[o]; !ok || seen(i) > seen(j) {
			out[o] = i
		}
	}
	return out
}

// current is the view's expected over the records as they are now.
func (l *live) current() map[int]mockkit.Expected {
	var out map[int]mockkit.Expected
	l.guard.Read(func() {
		out = (&view{computers: l.s.opts.Computers, computerOwners: l.computerOwners,
			mobiles: l.s.opts.MobileDevices, mobileOwners: l.mobileOwners}).expected()
	})
	return out
}

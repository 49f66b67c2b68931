package fleet

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/postured/postured/providers/jamf/jamfmock"
)

// JamfComputers is the Jamf Pro computer inventory for the fleet: one record
// per Mac in Jamf, and for re-enrolled Macs an older, since unmanaged record
// with the same serial and a lower id. Ids number the records from 1 in
// fleet order. Health drives management and FileVault: below 10 the Mac is
// unmanaged, from 40 it is encrypted.
func (f *Fleet) JamfComputers() []jamfmock.Computer {
	var out []jamfmock.Computer
	for i := range f.Devices {
		d := &f.Devices[i]
		if !d.InJamf || d.Platform != "macOS" {
			continue
		}
		r := d.VendorRand("jamf")
		cur := jamfComputer(d, r, d.LastSeen, d.Health >= 10)
		if d.Reenrolled {
			seen := d.LastSeen.Add(-time.Duration(30+r.IntN(300)) * 24 * time.Hour)
			old := jamfComputer(d, r, seen, false)
			old.ID = strconv.Itoa(len(out) + 1)
			out = append(out, old)
		}
		cur.ID = strconv.Itoa(len(out) + 1)
		out = append(out, cur)
	}
	return out
}

// JamfMobileDevices is the Jamf Pro mobile device inventory: one record per
// iOS device in Jamf (plus an older unmanaged one for re-enrolled devices),
// numbered from 1 like the computers, so ids collide across the two kinds
// as they do in Jamf. Health drives management (from 10), passcode (from
// 30) and, for a few barely healthy devices, a detected jailbreak.
func (f *Fleet) JamfMobileDevices() []jamfmock.MobileDevice {
	var out []jamfmock.MobileDevice
	for i := range f.Devices {
		d := &f.Devices[i]
		if !d.InJamf || d.Platform != "iOS" {
			continue
		}
		r := d.VendorRand("jamf")
		cur := jamfMobile(d, r, d.LastSeen, d.Health >= 10)
		if d.Reenrolled {
			old := jamfMobile(d, r, d.LastSeen.Add(-time.Duration(30+r.IntN(300))*24*time.Hour), false)
			old.MobileDeviceID = strconv.Itoa(len(out) + 1)
			out = append(out, old)
		}
		cur.MobileDeviceID = strconv.Itoa(len(out) + 1)
		out = append(out, cur)
	}
	return out
}

var (
	jamfMacModels = []struct{ model, ident string }{
		{"MacBook Pro (14-inch, 2023)", "Mac14,9"},
		{"MacBook Air (M2, 2022)", "Mac14,2"},
		{"MacBook Pro (16-inch, 2019)", "MacBookPro16,1"},
		{"Mac mini (2023)", "Mac14,3"},
	}
	jamfMacOS = []struct{ version, build string }{
		{"14.5.0", "23F79"}, {"15.2.0", "24C101"}, {"15.6.1", "24G90"}, {"13.6.7", "22G720"},
	}
)

func jamfComputer(d *Device, r *rand.Rand, seen time.Time, managed bool) jamfmock.Computer {
	serial := d.Serial
	if serial == "" {
		serial = d.PlaceholderSerial
	}
	name := d.Hostname
	switch r.IntN(6) {
	case 0:
		name = strings.ToUpper(name)
	case 1:
		if d.Domain != "" {
			name += "." + d.Domain
		}
	}
	fv := jamfmock.FileVaultNotEncrypted
	switch {
	case r.IntN(40) == 0:
		fv = jamfmock.FileVaultNotApplicable
	case d.Health >= 40 && r.IntN(5) == 0:
		fv = jamfmock.FileVaultBootEncrypted
	case d.Health >= 40:
		fv = jamfmock.FileVaultAllEncrypted
	case d.Health >= 30:
		fv = jamfmock.FileVaultSomeEncrypted
	}
	partState := map[string]string{
		jamfmock.FileVaultAllEncrypted: "ENCRYPTED", jamfmock.FileVaultBootEncrypted: "ENCRYPTED",
		jamfmock.FileVaultSomeEncrypted: "ENCRYPTING", jamfmock.FileVaultNotEncrypted: "UNENCRYPTED",
		jamfmock.FileVaultNotApplicable: "INELIGIBLE",
	}[fv]
	hw := jamfMacModels[r.IntN(len(jamfMacModels))]
	osv := jamfMacOS[r.IntN(len(jamfMacOS))]

	mac := jamfMAC(d.MACs[0], r)
	if r.IntN(30) == 0 { // the interface reported no address
		mac = "00:00:00:00:00:00"
	}
	var altType, alt *string
	if len(d.MACs) > 1 {
		altType, alt = jamfPtr("Ethernet"), jamfPtr(jamfMAC(d.MACs[1], r))
	}

	contact := seen.Add(time.Duration(r.IntN(1000)) * time.Millisecond)
	report := seen.Add(-time.Duration(r.IntN(24*60)) * time.Minute)
	enrolled := seen.Add(-time.Duration(30+r.IntN(900)) * 24 * time.Hour)
	ip := fmt.Sprintf("10.%d.%d.%d", r.IntN(256), r.IntN(256), 1+r.IntN(254))

	c := jamfmock.Computer{
		UDID: strings.ToUpper(uuid(r)),
		General: &jamfmock.General{
			Name:              name,
			LastIPAddress:     jamfPtr(ip),
			LastReportedIP:    jamfPtr(ip),
			JamfBinaryVersion: jamfPtr("11.12.0-t1731508522"),
			Platform:          "Mac",
			RemoteManagement:  jamfmock.RemoteManagement{Managed: managed},
			Supervised:        managed && r.IntN(3) != 0,
			MDMCapable:        jamfmock.MDMCapable{Capable: managed, CapableUsers: []string{}},
			ReportDate:        jamfPtr(jamfmock.FormatTime(report)),
			LastContactTime:   jamfPtr(jamfmock.FormatTime(contact)),
			LastEnrolledDate:  jamfPtr(jamfmock.FormatTime(enrolled)),
			UserApprovedMDM:   managed,
			ManagementID:      uuid(r),

			EnrolledViaAutomatedDeviceEnrollment: r.IntN(2) == 0,
		},
		DiskEncryption: &jamfmock.DiskEncryption{
			FileVault2Enabled: fv == jamfmock.FileVaultAllEncrypted || fv == jamfmock.FileVaultBootEncrypted,
			BootPartitionEncryptionDetails: &jamfmock.PartitionEncryptionState{
				PartitionName: "Macintosh HD (Boot Partition)", PartitionFileVault2State: partState,
				PartitionFileVault2Percent: map[bool]int{true: 100, false: 0}[partState == "ENCRYPTED"],
			},
		},
		Hardware: &jamfmock.Hardware{
			Make: "Apple", Model: hw.model, ModelIdentifier: hw.ident, SerialNumber: serial,
			NetworkAdapterType: "IEEE80211", MacAddress: mac,
			AltNetworkAdapterType: altType, AltMacAddress: alt,
			AppleSilicon: strings.HasPrefix(hw.ident, "Mac14"),
		},
		Security: &jamfmock.Security{
			SIPStatus:        map[bool]string{true: "ENABLED", false: "DISABLED"}[d.Health >= 20],
			GatekeeperStatus: "APP_STORE_AND_IDENTIFIED_DEVELOPERS",
			FirewallEnabled:  d.Health >= 50,
			SecureBootLevel:  "FULL_SECURITY",
		},
		OperatingSystem: &jamfmock.OperatingSystem{
			Name: "macOS", Version: osv.version, Build: osv.build,
			ActiveDirectoryStatus: "Not Bound", FileVault2Status: fv,
		},
		UserAndLocation: jamfUser(d, r),
	}
	return c
}

// jamfUser is USER_AND_LOCATION: sometimes absent, sometimes without an
// email, sometimes with the email typed in mixed case.
func jamfUser(d *Device, r *rand.Rand) *jamfmock.UserAndLocation {
	if r.IntN(20) == 0 {
		return nil
	}
	user, _, _ := strings.Cut(d.Email, "@")
	u := &jamfmock.UserAndLocation{Username: user, Realname: "User " + strings.TrimPrefix(user, "user"), Email: d.Email}
	switch r.IntN(12) {
	case 0:
		u.Email = ""
	case 1, 2:
		u.Email = strings.ToUpper(d.Email[:1]) + strings.Replace(d.Email[1:], "example.com", "Example.com", 1)
	}
	return u
}

func jamfMobile(d *Device, r *rand.Rand, seen time.Time, managed bool) jamfmock.MobileDevice {
	serial := d.Serial
	if serial == "" {
		serial = d.PlaceholderSerial
	}
	name := d.Hostname
	if r.IntN(8) == 0 {
		name = strings.ToUpper(name[:1]) + name[1:]
	}
	bt := mac(r)
	if len(d.MACs) > 1 {
		bt = d.MACs[1]
	}
	m := jamfmock.MobileDevice{
		DeviceType: "ios",
		General: &jamfmock.MobileGeneral{
			UDID:                    fmt.Sprintf("%016x%016x%08x", r.Uint64(), r.Uint64(), r.Uint32()),
			DisplayName:             name,
			LastInventoryUpdateDate: jamfPtr(jamfmock.FormatTime(seen.Add(time.Duration(r.IntN(1000)) * time.Millisecond))),
			OSVersion:               []string{"17.5.1", "18.1", "18.6.2"}[r.IntN(3)],
			OSBuild:                 "22G100",
			IPAddress:               jamfPtr(fmt.Sprintf("10.%d.%d.%d", r.IntN(256), r.IntN(256), 1+r.IntN(254))),
			Managed:                 managed,
			Supervised:              managed,
			DeviceOwnershipType:     "Institutional",
			LastEnrolledDate:        jamfPtr(jamfmock.FormatTime(seen.Add(-time.Duration(30+r.IntN(900)) * 24 * time.Hour))),
			ManagementID:            uuid(r),
		},
		Hardware: &jamfmock.MobileHardware{
			CapacityMB: 122070, SerialNumber: serial, WifiMacAddress: d.MACs[0], BluetoothMacAddress: bt,
			Model: "iPhone 15", ModelIdentifier: "iPhone15,4",
		},
		Security: &jamfmock.MobileSecurity{
			DataProtected:                d.Health >= 30,
			BlockLevelEncryptionCapable:  true,
			FileLevelEncryptionCapable:   true,
			PasscodePresent:              d.Health >= 30,
			PasscodeCompliant:            d.Health >= 40,
			PasscodeCompliantWithProfile: d.Health >= 40,
			HardwareEncryption:           3,
			ActivationLockEnabled:        r.IntN(2) == 0,
			JailBreakDetected:            d.Health < 15 && r.IntN(3) == 0,
		},
	}
	if r.IntN(20) != 0 {
		user, _, _ := strings.Cut(d.Email, "@")
		m.UserAndLocation = &jamfmock.MobileUserAndLocation{Username: user, RealName: "User " + strings.TrimPrefix(user, "user"), EmailAddress: d.Email}
	}
	return m
}

// jamfMAC renders a canonical MAC as Jamf reports a Mac's interfaces:
// colon form, upper, lower or mixed case depending on the device.
func jamfMAC(m string, r *rand.Rand) string {
	b := []byte(m)
	style := r.IntN(3)
	for i, c := range b {
		if c < 'a' || c > 'f' {
			continue
		}
		if style == 0 || (style == 2 && r.IntN(2) == 0) {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func jamfPtr[T any](v T) *T { return &v }

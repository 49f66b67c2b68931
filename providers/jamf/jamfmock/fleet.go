package jamfmock

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/postured/postured/internal/fleet"
	"github.com/postured/postured/internal/mockkit"
	"github.com/postured/postured/providers"
)

// vendorName is the provider type and the fleet view's random stream.
const vendorName = "jamf"

// The API client the fleet's mock accepts.
const (
	fleetClientID     = "postured-demo"
	fleetClientSecret = "jamf-demo-secret"
)

// Vendor is the Jamf Pro mock over f's Jamf view, as the mock set serves
// and configures it.
func Vendor(f *fleet.Fleet) mockkit.Vendor {
	v := newView(f)
	s := New(Options{Computers: v.computers, MobileDevices: v.mobiles, ClientID: fleetClientID, ClientSecret: fleetClientSecret})
	l := &live{fleet: f, s: s, computerOwners: v.computerOwners, mobileOwners: v.mobileOwners, guard: mockkit.NewGuard(s)}
	return mockkit.Vendor{
		Name:         vendorName,
		Handler:      l.guard,
		Drift:        l.drift,
		Current:      l.current,
		Faults:       s.Faults,
		Calls:        s.Calls,
		ExpireTokens: s.ExpireTokens,
		Config: func(root string) mockkit.ProviderConfig {
			return mockkit.ProviderConfig{Weight: 2, Mode: providers.ModeQuery, Settings: []mockkit.Setting{
				{Key: "base_url", Value: root},
				{Key: "client_id", Value: fleetClientID},
				{Key: "client_secret", Value: fleetClientSecret, Secret: true},
			}}
		},
		Expected: v.expected(),
		// design.md's bound for a cold 1000-device batch; the provider
		// needs about 30 (=in= lists of a few hundred values, mobile
		// devices asked only for the serials and MACs no computer has).
		BatchCalls: 150,
	}
}

// FleetComputers is the Jamf Pro computer inventory for the fleet: one
// record per Mac in Jamf, and for re-enrolled Macs an older, since
// unmanaged record with the same serial and a lower id. Ids number the
// records from 1 in fleet order. Health drives management and FileVault:
// below 10 the Mac is unmanaged, from 40 it is encrypted.
func FleetComputers(f *fleet.Fleet) []Computer { return newView(f).computers }

// FleetMobileDevices is the Jamf Pro mobile device inventory: one record
// per iOS device in Jamf (plus an older unmanaged one for re-enrolled
// devices), numbered from 1 like the computers, so ids collide across the
// two kinds as they do in Jamf. Health drives management (from 10),
// passcode (from 30) and, for a few barely healthy devices, a detected
// jailbreak.
func FleetMobileDevices(f *fleet.Fleet) []MobileDevice { return newView(f).mobiles }

// view is the fleet's Jamf inventory with, per record, the index of the
// fleet device it describes.
type view struct {
	computers      []Computer
	computerOwners []int
	mobiles        []MobileDevice
	mobileOwners   []int
}

func newView(f *fleet.Fleet) *view {
	v := &view{}
	for i := range f.Devices {
		d := &f.Devices[i]
		r := d.VendorRand(vendorName)
		if !enrolled(d, r) {
			continue
		}
		switch d.Platform {
		case "macOS":
			cur := fleetComputer(d, r, d.LastSeen, d.Health >= 10)
			if d.Reenrolled {
				seen := d.LastSeen.Add(-time.Duration(30+r.IntN(300)) * 24 * time.Hour)
				v.addComputer(fleetComputer(d, r, seen, false), d.Index)
			}
			v.addComputer(cur, d.Index)
		case "iOS":
			cur := fleetMobile(d, r, d.LastSeen, d.Health >= 10)
			if d.Reenrolled {
				v.addMobile(fleetMobile(d, r, d.LastSeen.Add(-time.Duration(30+r.IntN(300))*24*time.Hour), false), d.Index)
			}
			v.addMobile(cur, d.Index)
		}
	}
	return v
}

func (v *view) addComputer(c Computer, owner int) {
	c.ID = strconv.Itoa(len(v.computers) + 1)
	v.computers, v.computerOwners = append(v.computers, c), append(v.computerOwners, owner)
}

func (v *view) addMobile(m MobileDevice, owner int) {
	m.MobileDeviceID = strconv.Itoa(len(v.mobiles) + 1)
	v.mobiles, v.mobileOwners = append(v.mobiles, m), append(v.mobileOwners, owner)
}

// enrolled decides whether Jamf manages d: most Macs and iPhones, nothing
// else.
func enrolled(d *fleet.Device, r *rand.Rand) bool {
	share := map[string]int{"macOS": 9, "iOS": 8}[d.Platform]
	return r.IntN(10) < share && !d.Unmanaged
}

// expected scores computers by design.md (managed and FileVault
// ALL_ENCRYPTED or BOOT_ENCRYPTED 100, managed 50, unmanaged 0), seen at
// their last contact, and mobile devices by the README's rule (unmanaged or
// jailbroken 0, passcode set 100, else 50), seen at their last inventory
// update. Mobile device ids collide with computer ids in Jamf, so the
// provider reports them as mobile-<id>.
func (v *view) expected() map[int]mockkit.Expected {
	var recs []mockkit.Scored
	for i, c := range v.computers {
		score := 0
		if c.General.RemoteManagement.Managed {
			score = 50
			if fv := c.OperatingSystem.FileVault2Status; fv == FileVaultAllEncrypted || fv == FileVaultBootEncrypted {
				score = 100
			}
		}
		seen, _ := parseTime(*c.General.LastContactTime)
		recs = append(recs, mockkit.Scored{Owner: v.computerOwners[i], ID: c.ID, Score: score, LastSeen: seen})
	}
	for i, m := range v.mobiles {
		score := 0
		switch {
		case !m.General.Managed, m.Security != nil && m.Security.JailBreakDetected:
		case m.Security != nil && m.Security.PasscodePresent:
			score = 100
		default:
			score = 50
		}
		seen, _ := parseTime(*m.General.LastInventoryUpdateDate)
		recs = append(recs, mockkit.Scored{Owner: v.mobileOwners[i], ID: "mobile-" + m.MobileDeviceID, Score: score, LastSeen: seen})
	}
	return mockkit.Latest(recs)
}

var (
	macModels = []struct{ model, ident string }{
		{"MacBook Pro (14-inch, 2023)", "Mac14,9"},
		{"MacBook Air (M2, 2022)", "Mac14,2"},
		{"MacBook Pro (16-inch, 2019)", "MacBookPro16,1"},
		{"Mac mini (2023)", "Mac14,3"},
	}
	macOSReleases = []struct{ version, build string }{
		{"14.5.0", "23F79"}, {"15.2.0", "24C101"}, {"15.6.1", "24G90"}, {"13.6.7", "22G720"},
	}
)

func fleetComputer(d *fleet.Device, r *rand.Rand, seen time.Time, managed bool) Computer {
	name := d.Hostname
	switch r.IntN(6) {
	case 0:
		name = strings.ToUpper(name)
	case 1:
		if d.Domain != "" {
			name += "." + d.Domain
		}
	}
	fv := FileVaultNotEncrypted
	switch {
	case r.IntN(40) == 0:
		fv = FileVaultNotApplicable
	case d.Health >= 40 && r.IntN(5) == 0:
		fv = FileVaultBootEncrypted
	case d.Health >= 40:
		fv = FileVaultAllEncrypted
	case d.Health >= 30:
		fv = FileVaultSomeEncrypted
	}
	partState := map[string]string{
		FileVaultAllEncrypted: "ENCRYPTED", FileVaultBootEncrypted: "ENCRYPTED",
		FileVaultSomeEncrypted: "ENCRYPTING", FileVaultNotEncrypted: "UNENCRYPTED",
		FileVaultNotApplicable: "INELIGIBLE",
	}[fv]
	hw := macModels[r.IntN(len(macModels))]
	osv := macOSReleases[r.IntN(len(macOSReleases))]

	mac := jamfMAC(d.MACs[0], r)
	if r.IntN(30) == 0 { // the interface reported no address
		mac = "00:00:00:00:00:00"
	}
	var altType, alt *string
	if len(d.MACs) > 1 {
		altType, alt = ptr("Ethernet"), ptr(jamfMAC(d.MACs[1], r))
	}

	contact := seen.Add(time.Duration(r.IntN(1000)) * time.Millisecond)
	report := seen.Add(-time.Duration(r.IntN(24*60)) * time.Minute)
	enrolledAt := seen.Add(-time.Duration(30+r.IntN(900)) * 24 * time.Hour)
	ip := fmt.Sprintf("10.%d.%d.%d", r.IntN(256), r.IntN(256), 1+r.IntN(254))

	return Computer{
		UDID: strings.ToUpper(fleet.UUID(r)),
		General: &General{
			Name:              name,
			LastIPAddress:     ptr(ip),
			LastReportedIP:    ptr(ip),
			JamfBinaryVersion: ptr("11.12.0-t1731508522"),
			Platform:          "Mac",
			RemoteManagement:  RemoteManagement{Managed: managed},
			Supervised:        managed && r.IntN(3) != 0,
			MDMCapable:        MDMCapable{Capable: managed, CapableUsers: []string{}},
			ReportDate:        ptr(FormatTime(report)),
			LastContactTime:   ptr(FormatTime(contact)),
			LastEnrolledDate:  ptr(FormatTime(enrolledAt)),
			UserApprovedMDM:   managed,
			ManagementID:      fleet.UUID(r),

			EnrolledViaAutomatedDeviceEnrollment: r.IntN(2) == 0,
		},
		DiskEncryption: &DiskEncryption{
			FileVault2Enabled: fv == FileVaultAllEncrypted || fv == FileVaultBootEncrypted,
			BootPartitionEncryptionDetails: &PartitionEncryptionState{
				PartitionName: "Macintosh HD (Boot Partition)", PartitionFileVault2State: partState,
				PartitionFileVault2Percent: map[bool]int{true: 100, false: 0}[partState == "ENCRYPTED"],
			},
		},
		Hardware: &Hardware{
			Make: "Apple", Model: hw.model, ModelIdentifier: hw.ident, SerialNumber: d.ReportedSerial(),
			NetworkAdapterType: "IEEE80211", MacAddress: mac,
			AltNetworkAdapterType: altType, AltMacAddress: alt,
			AppleSilicon: strings.HasPrefix(hw.ident, "Mac14"),
		},
		Security: &Security{
			SIPStatus:        map[bool]string{true: "ENABLED", false: "DISABLED"}[d.Health >= 20],
			GatekeeperStatus: "APP_STORE_AND_IDENTIFIED_DEVELOPERS",
			FirewallEnabled:  d.Health >= 50,
			SecureBootLevel:  "FULL_SECURITY",
		},
		OperatingSystem: &OperatingSystem{
			Name: "macOS", Version: osv.version, Build: osv.build,
			ActiveDirectoryStatus: "Not Bound", FileVault2Status: fv,
		},
		UserAndLocation: fleetUser(d, r),
	}
}

// fleetUser is USER_AND_LOCATION: sometimes absent, sometimes without an
// email, sometimes with the email typed in mixed case.
func fleetUser(d *fleet.Device, r *rand.Rand) *UserAndLocation {
	if r.IntN(20) == 0 {
		return nil
	}
	user, _, _ := strings.Cut(d.Email, "@")
	u := &UserAndLocation{Username: user, Realname: "User " + strings.TrimPrefix(user, "user"), Email: d.Email}
	switch r.IntN(12) {
	case 0:
		u.Email = ""
	case 1, 2:
		u.Email = strings.ToUpper(d.Email[:1]) + strings.Replace(d.Email[1:], "example.com", "Example.com", 1)
	}
	return u
}

func fleetMobile(d *fleet.Device, r *rand.Rand, seen time.Time, managed bool) MobileDevice {
	name := d.Hostname
	if r.IntN(8) == 0 {
		name = strings.ToUpper(name[:1]) + name[1:]
	}
	bt := fleet.MAC(r)
	if len(d.MACs) > 1 {
		bt = d.MACs[1]
	}
	m := MobileDevice{
		DeviceType: "ios",
		General: &MobileGeneral{
			UDID:                    fmt.Sprintf("%016x%016x%08x", r.Uint64(), r.Uint64(), r.Uint32()),
			DisplayName:             name,
			LastInventoryUpdateDate: ptr(FormatTime(seen.Add(time.Duration(r.IntN(1000)) * time.Millisecond))),
			OSVersion:               []string{"17.5.1", "18.1", "18.6.2"}[r.IntN(3)],
			OSBuild:                 "22G100",
			IPAddress:               ptr(fmt.Sprintf("10.%d.%d.%d", r.IntN(256), r.IntN(256), 1+r.IntN(254))),
			Managed:                 managed,
			Supervised:              managed,
			DeviceOwnershipType:     "Institutional",
			LastEnrolledDate:        ptr(FormatTime(seen.Add(-time.Duration(30+r.IntN(900)) * 24 * time.Hour))),
			ManagementID:            fleet.UUID(r),
		},
		Hardware: &MobileHardware{
			CapacityMB: 122070, SerialNumber: d.ReportedSerial(), WifiMacAddress: d.MACs[0], BluetoothMacAddress: bt,
			Model: "iPhone 15", ModelIdentifier: "iPhone15,4",
		},
		Security: &MobileSecurity{
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
		m.UserAndLocation = &MobileUserAndLocation{Username: user, RealName: "User " + strings.TrimPrefix(user, "user"), EmailAddress: d.Email}
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

func ptr[T any](v T) *T { return &v }

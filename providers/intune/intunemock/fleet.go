package intunemock

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/postured/postured/internal/fleet"
	"github.com/postured/postured/internal/mockkit"
	"github.com/postured/postured/providers"
)

// vendorName is the provider type and the fleet view's random stream.
const vendorName = "intune"

// Vendor is the Intune mock over f's Intune view, as the mock set serves and
// configures it.
func Vendor(f *fleet.Fleet) mockkit.Vendor {
	devs, owners := fleetView(f)
	// Graph as reported, not as documented: startswith acts like contains.
	s := New(Options{Devices: devs, StartsWithContains: true})
	l := &live{fleet: f, s: s, owners: owners, guard: mockkit.NewGuard(s)}
	return mockkit.Vendor{
		Name:         vendorName,
		Handler:      l.guard,
		Drift:        l.drift,
		Current:      l.current,
		Faults:       s.Faults,
		Calls:        s.Calls,
		ExpireTokens: s.ExpireTokens,
		Config: func(root string) mockkit.ProviderConfig {
			return mockkit.ProviderConfig{Weight: 3, Mode: providers.ModeSync, Settings: []mockkit.Setting{
				{Key: "base_url", Value: root},
				{Key: "token_url", Value: root + "/" + DefaultTenantID + "/oauth2/v2.0/token"},
				{Key: "tenant_id", Value: DefaultTenantID},
				{Key: "client_id", Value: DefaultClientID},
				{Key: "client_secret", Value: DefaultClientSecret, Secret: true},
			}}
		},
		Expected: expected(devs, owners),
		// One clause per request, 20 per $batch: serials, names and users
		// of a 1000-device batch.
		BatchCalls: 150,
	}
}

// expected scores each record by complianceState (design.md: compliant
// 100, inGracePeriod 50, anything else 0), seen at its last sync.
func expected(devs []ManagedDevice, owners []int) map[int]mockkit.Expected {
	var recs []mockkit.Scored
	for i, md := range devs {
		if owners[i] < 0 {
			continue // a lab machine no fleet device is
		}
		score := 0
		switch md.ComplianceState {
		case "compliant":
			score = 100
		case "inGracePeriod":
			score = 50
		}
		recs = append(recs, mockkit.Scored{Owner: owners[i], ID: md.ID, Score: score, LastSeen: md.LastSyncDateTime})
	}
	return mockkit.Latest(recs)
}

// FleetDevices is the Intune view of the fleet: one managedDevice per
// device enrolled in Intune, plus an older record (different id, older
// sync, same serial and name) for each re-enrolled one, plus a lab machine
// named after every labEvery-th device ("lab-ws-00042" beside "ws-00042"),
// which a startswith that acts like contains also returns. Intune's own
// conventions apply: Wi-Fi MAC as 12 upper-case hex digits, Windows device
// names upper-case (NetBIOS), Linux names fully qualified when the device
// has a domain, 7-digit fractional seconds, jailBroken as a string.
func FleetDevices(f *fleet.Fleet) []ManagedDevice {
	devs, _ := fleetView(f)
	return devs
}

// labEvery is how often a fleet device has a lab machine named after it.
const labEvery = 20

// fleetView is FleetDevices with the index of the fleet device each record
// describes, -1 for the lab machines.
func fleetView(f *fleet.Fleet) ([]ManagedDevice, []int) {
	var out []ManagedDevice
	var owners []int
	for i := range f.Devices {
		d := &f.Devices[i]
		r := d.VendorRand(vendorName)
		if !enrolled(d, r) {
			continue
		}
		md := intuneDevice(d, r)
		out, owners = append(out, md), append(owners, d.Index)
		if d.Reenrolled {
			old := md
			old.ID = fleet.UUID(r)
			old.AzureADDeviceID = fleet.UUID(r)
			old.LastSyncDateTime = md.LastSyncDateTime.Add(-time.Duration(30+r.IntN(60)) * 24 * time.Hour)
			old.EnrolledDateTime = old.LastSyncDateTime.Add(-time.Duration(100+r.IntN(300)) * 24 * time.Hour)
			old.ComplianceState = []string{"noncompliant", "unknown", "compliant"}[r.IntN(3)]
			old.ComplianceGracePeriodExpirationDateTime = graceExpiry(old.ComplianceState, old.LastSyncDateTime)
			out, owners = append(out, old), append(owners, d.Index)
		}
		if d.Index%labEvery == 0 {
			out, owners = append(out, labTwin(md, r)), append(owners, -1)
		}
	}
	return out, owners
}

// labTwin is a lab machine named after md: its name contains md's, and
// nothing else ties it to md's device.
func labTwin(md ManagedDevice, r *rand.Rand) ManagedDevice {
	lab := md
	lab.ID, lab.UserID, lab.AzureADDeviceID = fleet.UUID(r), "", fleet.UUID(r)
	lab.DeviceName = "lab-" + md.DeviceName
	if md.OperatingSystem == "Windows" {
		lab.DeviceName = strings.ToUpper(lab.DeviceName)
	}
	lab.SerialNumber = fmt.Sprintf("LAB%09d", r.IntN(1_000_000_000))
	lab.WiFiMacAddress, lab.EthernetMacAddress = "", ""
	lab.UserPrincipalName, lab.EmailAddress, lab.UserDisplayName = "", "", ""
	lab.ManagedDeviceOwnerType = "company"
	lab.DeviceEnrollmentType = "deviceEnrollmentManager"
	lab.ComplianceState = "compliant"
	lab.ComplianceGracePeriodExpirationDateTime = graceExpiry(lab.ComplianceState, lab.LastSyncDateTime)
	return lab
}

// enrolled decides whether Intune manages d: most Windows PCs, some Macs
// and phones, few Linux machines.
func enrolled(d *fleet.Device, r *rand.Rand) bool {
	share := map[string]int{"Windows": 9, "iOS": 5, "macOS": 4, "Linux": 2}[d.Platform]
	return r.IntN(10) < share && !d.Unmanaged
}

func intuneDevice(d *fleet.Device, r *rand.Rand) ManagedDevice {
	// Graph reports ticks: give every sync a 7-digit fraction, never later
	// than the device's true last-seen.
	lastSync := d.LastSeen.Add(-time.Duration(1+r.IntN(9_999_999)) * 100 * time.Nanosecond)
	md := ManagedDevice{
		ID:                         fleet.UUID(r),
		UserID:                     fleet.UUID(r),
		DeviceName:                 d.Hostname,
		ManagedDeviceOwnerType:     "company",
		EnrolledDateTime:           lastSync.Add(-time.Duration(30+r.IntN(700)) * 24 * time.Hour).Truncate(time.Second),
		LastSyncDateTime:           lastSync,
		OperatingSystem:            d.Platform,
		ComplianceState:            compliance(d.Health, r),
		JailBroken:                 "Unknown",
		ManagementAgent:            "mdm",
		AzureADRegistered:          true,
		DeviceEnrollmentType:       "userEnrollment",
		DeviceRegistrationState:    "registered",
		IsEncrypted:                d.Health >= 40,
		UserPrincipalName:          d.Email,
		EmailAddress:               d.Email,
		SerialNumber:               d.ReportedSerial(),
		AzureADDeviceID:            fleet.UUID(r),
		UserDisplayName:            displayName(d.Email),
		PartnerReportedThreatState: "unknown",
		PhysicalMemoryInBytes:      int64(8<<30) << r.IntN(3),
	}
	if len(d.MACs) > 0 {
		md.WiFiMacAddress = intuneMAC(d.MACs[0])
	}
	if len(d.MACs) > 1 {
		md.EthernetMacAddress = intuneMAC(d.MACs[1])
	}
	switch d.Platform {
	case "Windows":
		md.DeviceName = strings.ToUpper(d.Hostname)
		md.OSVersion = []string{"10.0.19045.4291", "10.0.22631.3447", "10.0.26100.2033"}[r.IntN(3)]
		md.Manufacturer, md.Model = "Dell Inc.", "Latitude 7440"
		md.DeviceEnrollmentType = "windowsAzureADJoin"
	case "macOS":
		md.OSVersion = []string{"14.6.1 (23G93)", "15.1 (24B83)", "15.2 (24C101)"}[r.IntN(3)]
		md.Manufacturer, md.Model = "Apple", "MacBook Pro"
		md.IsSupervised = true
		md.UDID = strings.ToUpper(fleet.UUID(r))
		if d.Domain != "" && r.IntN(2) == 0 {
			md.DeviceName = d.Hostname + "." + d.Domain
		}
	case "Linux":
		md.OSVersion = "22.04"
		md.Manufacturer, md.Model = "LENOVO", "ThinkPad T14"
		md.ManagementAgent = "intuneClient"
		if d.Domain != "" {
			md.DeviceName = d.Hostname + "." + d.Domain
		}
		// Intune does not report serials or MACs for some Linux machines.
		if r.IntN(3) == 0 {
			md.SerialNumber = ""
			md.WiFiMacAddress = ""
		}
	case "iOS":
		md.OSVersion = "17.5.1"
		md.Manufacturer, md.Model = "Apple", "iPhone 15"
		md.IsSupervised = true
		md.JailBroken = "False"
		if d.Health < 10 {
			md.JailBroken = "True"
		}
		md.UDID = fmt.Sprintf("%016X", r.Uint64())
	}
	switch {
	case r.IntN(10) == 0:
		md.EmailAddress = "" // Graph leaves it blank for some records
	case r.IntN(5) == 0:
		md.UserPrincipalName = strings.ToUpper(md.UserPrincipalName[:1]) + md.UserPrincipalName[1:]
	}
	md.ComplianceGracePeriodExpirationDateTime = graceExpiry(md.ComplianceState, lastSync)
	return md
}

// compliance maps health to the complianceState enum, covering every
// value: healthy devices comply, middling ones are in their grace period,
// the rest spread over the failure states.
func compliance(health int, r *rand.Rand) string {
	switch {
	case health >= 70:
		return "compliant"
	case health >= 55:
		return "inGracePeriod"
	case health >= 30:
		return "noncompliant"
	}
	return []string{"noncompliant", "unknown", "conflict", "error", "configManager"}[r.IntN(5)]
}

// graceExpiry is Graph's sentinel 9999-12-31T23:59:59Z unless the device
// is in its grace period.
func graceExpiry(state string, lastSync time.Time) time.Time {
	if state == "inGracePeriod" {
		return lastSync.Add(72 * time.Hour).Truncate(time.Second)
	}
	return time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
}

// intuneMAC formats a canonical colon MAC as Intune's wiFiMacAddress.
func intuneMAC(m string) string {
	return strings.ToUpper(strings.ReplaceAll(m, ":", ""))
}

func displayName(email string) string {
	local, _, _ := strings.Cut(email, "@")
	if local == "" {
		return ""
	}
	return strings.ToUpper(local[:1]) + local[1:]
}

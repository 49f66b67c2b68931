package jamfmock

import (
	"strconv"
	"strings"
)

// Filterable and sortable fields, copied from the parameter descriptions of
// GET /api/v3/computers-inventory and GET /api/v2/mobile-devices/detail.
// Note hardware.altMacAddress is not filterable. A field in these lists the
// mock does not model reads as null (so == "x" matches nothing); a field
// outside them is rejected with 400, as Jamf does.
var (
	computerFilterFields = strings.Fields(`general.name udid id general.assetTag general.barcode1 general.barcode2
		general.enrolledViaAutomatedDeviceEnrollment general.lastIpAddress general.itunesStoreAccountActive
		general.jamfBinaryVersion general.lastContactTime general.lastEnrolledDate general.lastCloudBackupDate
		general.reportDate general.lastReportedIp general.lastReportedIpV4 general.lastReportedIpV6
		general.managementId general.remoteManagement.managed general.mdmCapable.capable
		general.mdmCertificateExpiration general.platform general.supervised general.userApprovedMdm
		general.declarativeDeviceManagementEnabled general.lastLoggedInUsernameSelfService
		general.lastLoggedInUsernameSelfServiceTimestamp general.lastLoggedInUsernameBinary
		general.lastLoggedInUsernameBinaryTimestamp hardware.bleCapable hardware.macAddress hardware.make
		hardware.model hardware.modelIdentifier hardware.serialNumber hardware.supportsIosAppInstalls
		hardware.appleSilicon operatingSystem.activeDirectoryStatus operatingSystem.fileVault2Status
		operatingSystem.build operatingSystem.supplementalBuildVersion operatingSystem.rapidSecurityResponse
		operatingSystem.name operatingSystem.version security.activationLockEnabled security.recoveryLockEnabled
		security.firewallEnabled userAndLocation.buildingId userAndLocation.departmentId userAndLocation.email
		userAndLocation.realname userAndLocation.phone userAndLocation.position userAndLocation.room
		userAndLocation.username diskEncryption.fileVault2Enabled purchasing.appleCareId
		purchasing.lifeExpectancy purchasing.purchased purchasing.leased purchasing.vendor purchasing.warrantyDate`)

	computerSortFields = strings.Fields(`general.name udid id general.assetTag general.jamfBinaryVersion
		general.lastContactTime general.lastEnrolledDate general.lastCloudBackupDate general.reportDate
		general.mdmCertificateExpiration general.platform general.lastLoggedInUsernameSelfService
		general.lastLoggedInUsernameSelfServiceTimestamp general.lastLoggedInUsernameBinary
		general.lastLoggedInUsernameBinaryTimestamp hardware.make hardware.model operatingSystem.build
		operatingSystem.supplementalBuildVersion operatingSystem.rapidSecurityResponse operatingSystem.name
		operatingSystem.version userAndLocation.realname purchasing.lifeExpectancy purchasing.warrantyDate`)

	mobileFilterFields = strings.Fields(`airPlayPassword appAnalyticsEnabled assetTag availableSpaceMb batteryLevel
		bluetoothLowEnergyCapable bluetoothMacAddress capacityMb declarativeDeviceManagementEnabled deviceId
		deviceLocatorServiceEnabled devicePhoneNumber diagnosticAndUsageReportingEnabled displayName
		doNotDisturbEnabled exchangeDeviceId cloudBackupEnabled osBuild osSupplementalBuildVersion osVersion
		osRapidSecurityResponse ipAddress itunesStoreAccountActive mobileDeviceId managementId languages
		lastInventoryUpdateDate locales locationServicesForSelfServiceMobileEnabled lostModeEnabled managed model
		modelIdentifier modelNumber modemFirmwareVersion preferredVoiceNumber quotaSize residentUsers serialNumber
		sharedIpad supervised tethered timeZone udid usedSpacePercentage wifiMacAddress building department
		emailAddress fullName userPhoneNumber position room username appleCareId lifeExpectancyYears poNumber
		purchasePrice purchasedOrLeased purchasingAccount purchasingContact vendor activationLockEnabled
		blockEncryptionCapable dataProtection fileEncryptionCapable passcodeCompliant passcodeCompliantWithProfile
		passcodeLockGracePeriodEnforcedSeconds passcodePresent carrierSettingsVersion currentCarrierNetwork
		currentMobileCountryCode currentMobileNetworkCode dataRoamingEnabled eid network homeMobileCountryCode
		homeMobileNetworkCode iccid imei imei2 meid personalHotspotEnabled roaming lastLoggedInUsernameSelfService
		lastLoggedInUsernameSelfServiceTimestamp groupId groupName`)

	mobileSortFields = strings.Fields(`airPlayPassword appAnalyticsEnabled assetTag availableSpaceMb batteryLevel
		batteryHealth bluetoothLowEnergyCapable bluetoothMacAddress capacityMb lostModeEnabledDate
		declarativeDeviceManagementEnabled deviceId deviceLocatorServiceEnabled devicePhoneNumber
		diagnosticAndUsageReportingEnabled displayName doNotDisturbEnabled enrollmentSessionTokenValid
		exchangeDeviceId cloudBackupEnabled osBuild osSupplementalBuildVersion osVersion osRapidSecurityResponse
		ipAddress itunesStoreAccountActive mobileDeviceId managementId languages lastBackupDate lastEnrolledDate
		lastCloudBackupDate lastInventoryUpdateDate locales locationServicesForSelfServiceMobileEnabled
		lostModeEnabled managed mdmProfileExpirationDate model modelIdentifier modelNumber modemFirmwareVersion
		preferredVoiceNumber quotaSize residentUsers serialNumber sharedIpad supervised tethered timeZone udid
		usedSpacePercentage wifiMacAddress deviceOwnershipType building department emailAddress fullName
		userPhoneNumber position room username appleCareId leaseExpirationDate lifeExpectancyYears poDate poNumber
		purchasePrice purchasedOrLeased purchasingAccount purchasingContact vendor warrantyExpirationDate
		activationLockEnabled blockEncryptionCapable dataProtection fileEncryptionCapable
		hardwareEncryptionSupported jailbreakStatus passcodeCompliant passcodeCompliantWithProfile
		passcodeLockGracePeriodEnforcedSeconds passcodePresent carrierSettingsVersion cellularTechnology
		currentCarrierNetwork currentMobileCountryCode currentMobileNetworkCode dataRoamingEnabled eid network
		homeMobileCountryCode homeMobileNetworkCode iccid imei imei2 meid personalHotspotEnabled
		voiceRoamingEnabled roaming lastLoggedInUsernameSelfService lastLoggedInUsernameSelfServiceTimestamp`)
)

// computerField reads one filterable field of a computer.
type computerField func(c *Computer) (value, bool)

// computerFields are the modelled fields; v4 names lastContactTime
// general.lastCheckIn instead.
var computerFields = map[string]computerField{
	"id":                               func(c *Computer) (value, bool) { return numValue(c.ID) },
	"udid":                             func(c *Computer) (value, bool) { return strValue(c.UDID) },
	"general.name":                     gen(func(g *General) (value, bool) { return strValue(g.Name) }),
	"general.assetTag":                 gen(func(g *General) (value, bool) { return strPtrValue(g.AssetTag) }),
	"general.lastIpAddress":            gen(func(g *General) (value, bool) { return strPtrValue(g.LastIPAddress) }),
	"general.lastReportedIp":           gen(func(g *General) (value, bool) { return strPtrValue(g.LastReportedIP) }),
	"general.jamfBinaryVersion":        gen(func(g *General) (value, bool) { return strPtrValue(g.JamfBinaryVersion) }),
	"general.platform":                 gen(func(g *General) (value, bool) { return strValue(g.Platform) }),
	"general.remoteManagement.managed": gen(func(g *General) (value, bool) { return boolValue(g.RemoteManagement.Managed) }),
	"general.supervised":               gen(func(g *General) (value, bool) { return boolValue(g.Supervised) }),
	"general.mdmCapable.capable":       gen(func(g *General) (value, bool) { return boolValue(g.MDMCapable.Capable) }),
	"general.reportDate":               gen(func(g *General) (value, bool) { return timeValue(g.ReportDate) }),
	"general.lastContactTime":          gen(func(g *General) (value, bool) { return timeValue(g.LastContactTime) }),
	"general.lastEnrolledDate":         gen(func(g *General) (value, bool) { return timeValue(g.LastEnrolledDate) }),
	"general.userApprovedMdm":          gen(func(g *General) (value, bool) { return boolValue(g.UserApprovedMDM) }),
	"general.enrolledViaAutomatedDeviceEnrollment": gen(func(g *General) (value, bool) {
		return boolValue(g.EnrolledViaAutomatedDeviceEnrollment)
	}),
	"general.managementId": gen(func(g *General) (value, bool) { return strValue(g.ManagementID) }),
	"diskEncryption.fileVault2Enabled": func(c *Computer) (value, bool) {
		if c.DiskEncryption == nil {
			return value{}, false
		}
		return boolValue(c.DiskEncryption.FileVault2Enabled)
	},
	"hardware.make":            hw(func(h *Hardware) (value, bool) { return strValue(h.Make) }),
	"hardware.model":           hw(func(h *Hardware) (value, bool) { return strValue(h.Model) }),
	"hardware.modelIdentifier": hw(func(h *Hardware) (value, bool) { return strValue(h.ModelIdentifier) }),
	"hardware.serialNumber":    hw(func(h *Hardware) (value, bool) { return strValue(h.SerialNumber) }),
	"hardware.macAddress":      hw(func(h *Hardware) (value, bool) { return strValue(h.MacAddress) }),
	"hardware.appleSilicon":    hw(func(h *Hardware) (value, bool) { return boolValue(h.AppleSilicon) }),
	"operatingSystem.name":     osf(func(o *OperatingSystem) (value, bool) { return strValue(o.Name) }),
	"operatingSystem.version":  osf(func(o *OperatingSystem) (value, bool) { return strValue(o.Version) }),
	"operatingSystem.build":    osf(func(o *OperatingSystem) (value, bool) { return strValue(o.Build) }),
	"operatingSystem.activeDirectoryStatus": osf(func(o *OperatingSystem) (value, bool) {
		return strValue(o.ActiveDirectoryStatus)
	}),
	"operatingSystem.fileVault2Status": osf(func(o *OperatingSystem) (value, bool) { return strValue(o.FileVault2Status) }),
	"security.activationLockEnabled":   sec(func(s *Security) (value, bool) { return boolValue(s.ActivationLockEnabled) }),
	"security.recoveryLockEnabled":     sec(func(s *Security) (value, bool) { return boolValue(s.RecoveryLockEnabled) }),
	"security.firewallEnabled":         sec(func(s *Security) (value, bool) { return boolValue(s.FirewallEnabled) }),
	"userAndLocation.username":         ul(func(u *UserAndLocation) (value, bool) { return strValue(u.Username) }),
	"userAndLocation.realname":         ul(func(u *UserAndLocation) (value, bool) { return strValue(u.Realname) }),
	"userAndLocation.email":            ul(func(u *UserAndLocation) (value, bool) { return strValue(u.Email) }),
	"userAndLocation.position":         ul(func(u *UserAndLocation) (value, bool) { return strPtrValue(u.Position) }),
	"userAndLocation.phone":            ul(func(u *UserAndLocation) (value, bool) { return strPtrValue(u.Phone) }),
	"userAndLocation.room":             ul(func(u *UserAndLocation) (value, bool) { return strPtrValue(u.Room) }),
	"userAndLocation.buildingId":       ul(func(u *UserAndLocation) (value, bool) { return strPtrValue(u.BuildingID) }),
	"userAndLocation.departmentId":     ul(func(u *UserAndLocation) (value, bool) { return strPtrValue(u.DepartmentID) }),
}

func gen(f func(*General) (value, bool)) computerField {
	return func(c *Computer) (value, bool) {
		if c.General == nil {
			return value{}, false
		}
		return f(c.General)
	}
}

func hw(f func(*Hardware) (value, bool)) computerField {
	return func(c *Computer) (value, bool) {
		if c.Hardware == nil {
			return value{}, false
		}
		return f(c.Hardware)
	}
}

func osf(f func(*OperatingSystem) (value, bool)) computerField {
	return func(c *Computer) (value, bool) {
		if c.OperatingSystem == nil {
			return value{}, false
		}
		return f(c.OperatingSystem)
	}
}

func sec(f func(*Security) (value, bool)) computerField {
	return func(c *Computer) (value, bool) {
		if c.Security == nil {
			return value{}, false
		}
		return f(c.Security)
	}
}

func ul(f func(*UserAndLocation) (value, bool)) computerField {
	return func(c *Computer) (value, bool) {
		if c.UserAndLocation == nil {
			return value{}, false
		}
		return f(c.UserAndLocation)
	}
}

// computerGetter adapts a computer to the filter evaluator for an API
// version.
func computerGetter(c *Computer, v4 bool) getter {
	return func(sel string) (value, bool) {
		if v4 {
			switch sel {
			case "general.lastCheckIn":
				sel = "general.lastContactTime"
			case "general.lastContactTime":
				return value{}, false
			}
		}
		if f, ok := computerFields[sel]; ok {
			return f(c)
		}
		return value{}, false
	}
}

// v4Fields renames lastContactTime in a v3 field list.
func v4Fields(v3 []string) []string {
	out := make([]string, len(v3))
	for i, f := range v3 {
		if f == "general.lastContactTime" {
			f = "general.lastCheckIn"
		}
		out[i] = f
	}
	return out
}

type mobileField func(m *MobileDevice) (value, bool)

var mobileFields = map[string]mobileField{
	"mobileDeviceId": func(m *MobileDevice) (value, bool) { return numValue(m.MobileDeviceID) },
	"udid":           mgen(func(g *MobileGeneral) (value, bool) { return strValue(g.UDID) }),
	"displayName":    mgen(func(g *MobileGeneral) (value, bool) { return strValue(g.DisplayName) }),
	"assetTag":       mgen(func(g *MobileGeneral) (value, bool) { return strPtrValue(g.AssetTag) }),
	"lastInventoryUpdateDate": mgen(func(g *MobileGeneral) (value, bool) {
		return timeValue(g.LastInventoryUpdateDate)
	}),
	"lastEnrolledDate":    mgen(func(g *MobileGeneral) (value, bool) { return timeValue(g.LastEnrolledDate) }),
	"osVersion":           mgen(func(g *MobileGeneral) (value, bool) { return strValue(g.OSVersion) }),
	"osBuild":             mgen(func(g *MobileGeneral) (value, bool) { return strValue(g.OSBuild) }),
	"ipAddress":           mgen(func(g *MobileGeneral) (value, bool) { return strPtrValue(g.IPAddress) }),
	"managed":             mgen(func(g *MobileGeneral) (value, bool) { return boolValue(g.Managed) }),
	"supervised":          mgen(func(g *MobileGeneral) (value, bool) { return boolValue(g.Supervised) }),
	"deviceOwnershipType": mgen(func(g *MobileGeneral) (value, bool) { return strValue(g.DeviceOwnershipType) }),
	"managementId":        mgen(func(g *MobileGeneral) (value, bool) { return strValue(g.ManagementID) }),
	"capacityMb": mhw(func(h *MobileHardware) (value, bool) {
		return numValue(strconv.Itoa(h.CapacityMB))
	}),
	"serialNumber":        mhw(func(h *MobileHardware) (value, bool) { return strValue(h.SerialNumber) }),
	"wifiMacAddress":      mhw(func(h *MobileHardware) (value, bool) { return strValue(h.WifiMacAddress) }),
	"bluetoothMacAddress": mhw(func(h *MobileHardware) (value, bool) { return strValue(h.BluetoothMacAddress) }),
	"model":               mhw(func(h *MobileHardware) (value, bool) { return strValue(h.Model) }),
	"modelIdentifier":     mhw(func(h *MobileHardware) (value, bool) { return strValue(h.ModelIdentifier) }),
	"username":            mul(func(u *MobileUserAndLocation) (value, bool) { return strValue(u.Username) }),
	"fullName":            mul(func(u *MobileUserAndLocation) (value, bool) { return strValue(u.RealName) }),
	"emailAddress":        mul(func(u *MobileUserAndLocation) (value, bool) { return strValue(u.EmailAddress) }),
	"position":            mul(func(u *MobileUserAndLocation) (value, bool) { return strPtrValue(u.Position) }),
	"userPhoneNumber":     mul(func(u *MobileUserAndLocation) (value, bool) { return strPtrValue(u.PhoneNumber) }),
	"passcodePresent":     msec(func(s *MobileSecurity) (value, bool) { return boolValue(s.PasscodePresent) }),
	"passcodeCompliant":   msec(func(s *MobileSecurity) (value, bool) { return boolValue(s.PasscodeCompliant) }),
	"passcodeCompliantWithProfile": msec(func(s *MobileSecurity) (value, bool) {
		return boolValue(s.PasscodeCompliantWithProfile)
	}),
	"dataProtection":        msec(func(s *MobileSecurity) (value, bool) { return boolValue(s.DataProtected) }),
	"activationLockEnabled": msec(func(s *MobileSecurity) (value, bool) { return boolValue(s.ActivationLockEnabled) }),
	"lostModeEnabled":       msec(func(s *MobileSecurity) (value, bool) { return boolValue(s.LostModeEnabled) }),
	"blockEncryptionCapable": msec(func(s *MobileSecurity) (value, bool) {
		return boolValue(s.BlockLevelEncryptionCapable)
	}),
	"fileEncryptionCapable": msec(func(s *MobileSecurity) (value, bool) {
		return boolValue(s.FileLevelEncryptionCapable)
	}),
	// Sortable only: jailbreakStatus is not in the filter list.
	"jailbreakStatus": msec(func(s *MobileSecurity) (value, bool) { return boolValue(s.JailBreakDetected) }),
}

func mgen(f func(*MobileGeneral) (value, bool)) mobileField {
	return func(m *MobileDevice) (value, bool) {
		if m.General == nil {
			return value{}, false
		}
		return f(m.General)
	}
}

func mhw(f func(*MobileHardware) (value, bool)) mobileField {
	return func(m *MobileDevice) (value, bool) {
		if m.Hardware == nil {
			return value{}, false
		}
		return f(m.Hardware)
	}
}

func mul(f func(*MobileUserAndLocation) (value, bool)) mobileField {
	return func(m *MobileDevice) (value, bool) {
		if m.UserAndLocation == nil {
			return value{}, false
		}
		return f(m.UserAndLocation)
	}
}

func msec(f func(*MobileSecurity) (value, bool)) mobileField {
	return func(m *MobileDevice) (value, bool) {
		if m.Security == nil {
			return value{}, false
		}
		return f(m.Security)
	}
}

func mobileGetter(m *MobileDevice) getter {
	return func(sel string) (value, bool) {
		if f, ok := mobileFields[sel]; ok {
			return f(m)
		}
		return value{}, false
	}
}

// Sections, in the order Jamf renders them. listSection marks the ones that
// are arrays; the mock fills requested but unmodelled sections with an
// empty array or object.
type section struct {
	name, key   string
	listSection bool
}

var computerSections = []section{
	{"GENERAL", "general", false},
	{"DISK_ENCRYPTION", "diskEncryption", false},
	{"PURCHASING", "purchasing", false},
	{"APPLICATIONS", "applications", true},
	{"STORAGE", "storage", false},
	{"USER_AND_LOCATION", "userAndLocation", false},
	{"CONFIGURATION_PROFILES", "configurationProfiles", true},
	{"PRINTERS", "printers", true},
	{"SERVICES", "services", true},
	{"HARDWARE", "hardware", false},
	{"LOCAL_USER_ACCOUNTS", "localUserAccounts", true},
	{"CERTIFICATES", "certificates", true},
	{"ATTACHMENTS", "attachments", true},
	{"PLUGINS", "plugins", true},
	{"PACKAGE_RECEIPTS", "packageReceipts", false},
	{"FONTS", "fonts", true},
	{"SECURITY", "security", false},
	{"OPERATING_SYSTEM", "operatingSystem", false},
	{"LICENSED_SOFTWARE", "licensedSoftware", true},
	{"IBEACONS", "ibeacons", true},
	{"SOFTWARE_UPDATES", "softwareUpdates", true},
	{"EXTENSION_ATTRIBUTES", "extensionAttributes", true},
	{"CONTENT_CACHING", "contentCaching", false},
	{"GROUP_MEMBERSHIPS", "groupMemberships", true},
}

var mobileSections = []section{
	{"HARDWARE", "hardware", false},
	{"USER_AND_LOCATION", "userAndLocation", false},
	{"PURCHASING", "purchasing", false},
	{"APPLICATIONS", "applications", true},
	{"CERTIFICATES", "certificates", true},
	{"PROFILES", "profiles", true},
	{"USER_PROFILES", "userProfiles", true},
	{"EXTENSION_ATTRIBUTES", "extensionAttributes", true},
	{"GENERAL", "general", false},
	{"SECURITY", "security", false},
	{"EBOOKS", "ebooks", true},
	{"NETWORK", "network", false},
	{"SERVICE_SUBSCRIPTIONS", "serviceSubscriptions", true},
	{"PROVISIONING_PROFILES", "provisioningProfiles", true},
	{"SHARED_USERS", "sharedUsers", true},
}

// timeValue renders a timestamp field.
func timeValue(s *string) (value, bool) {
	if s == nil {
		return value{}, false
	}
	return value{s: *s, kind: kindTime}, true
}

func strValue(s string) (value, bool) { return value{s: s}, true }

func strPtrValue(s *string) (value, bool) {
	if s == nil {
		return value{}, false
	}
	return value{s: *s}, true
}

func boolValue(b bool) (value, bool) { return value{s: strconv.FormatBool(b), kind: kindBool}, true }

func numValue(s string) (value, bool) { return value{s: s, kind: kindNumber}, true }

// compareValues orders two field values for sorting; nulls sort first.
func compareValues(a value, aok bool, b value, bok bool) int {
	switch {
	case !aok && !bok:
		return 0
	case !aok:
		return -1
	case !bok:
		return 1
	}
	if a.kind == kindTime {
		x, ok1 := parseTime(a.s)
		y, ok2 := parseTime(b.s)
		if ok1 && ok2 {
			return x.Compare(y)
		}
	}
	if c, ok := compare(a, b.s); ok {
		return c
	}
	return strings.Compare(a.s, b.s)
}

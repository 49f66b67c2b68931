package jamfmock

import "time"

// Computer is one record of GET /api/v3/computers-inventory, restricted to
// the sections the mock models. Sections left nil are rendered as JSON null,
// as Jamf does for sections that were not requested.
// https://developer.jamf.com/jamf-pro/reference/get_v3-computers-inventory
type Computer struct {
	// ID is the numeric computer id as a string, e.g. "9".
	ID              string           `json:"id"`
	UDID            string           `json:"udid"`
	General         *General         `json:"general"`
	DiskEncryption  *DiskEncryption  `json:"diskEncryption"`
	UserAndLocation *UserAndLocation `json:"userAndLocation"`
	Hardware        *Hardware        `json:"hardware"`
	Security        *Security        `json:"security"`
	OperatingSystem *OperatingSystem `json:"operatingSystem"`
}

// General is the GENERAL section of a computer.
type General struct {
	Name              string           `json:"name"`
	LastIPAddress     *string          `json:"lastIpAddress"`
	LastReportedIP    *string          `json:"lastReportedIp"`
	JamfBinaryVersion *string          `json:"jamfBinaryVersion"`
	Platform          string           `json:"platform"`
	AssetTag          *string          `json:"assetTag"`
	RemoteManagement  RemoteManagement `json:"remoteManagement"`
	Supervised        bool             `json:"supervised"`
	MDMCapable        MDMCapable       `json:"mdmCapable"`
	// Dates are Jamf's ISO-8601 form with milliseconds, see FormatTime.
	ReportDate                           *string `json:"reportDate"`
	LastContactTime                      *string `json:"lastContactTime"`
	LastEnrolledDate                     *string `json:"lastEnrolledDate"`
	UserApprovedMDM                      bool    `json:"userApprovedMdm"`
	EnrolledViaAutomatedDeviceEnrollment bool    `json:"enrolledViaAutomatedDeviceEnrollment"`
	ManagementID                         string  `json:"managementId"`
}

// RemoteManagement says whether Jamf manages the computer.
// managementUsername is deprecated and always null.
type RemoteManagement struct {
	Managed            bool    `json:"managed"`
	ManagementUsername *string `json:"managementUsername"`
}

// MDMCapable is general.mdmCapable.
type MDMCapable struct {
	Capable      bool     `json:"capable"`
	CapableUsers []string `json:"capableUsers"`
}

// DiskEncryption is the DISK_ENCRYPTION section.
type DiskEncryption struct {
	FileVault2Enabled              bool                      `json:"fileVault2Enabled"`
	BootPartitionEncryptionDetails *PartitionEncryptionState `json:"bootPartitionEncryptionDetails"`
}

// PartitionEncryptionState describes the boot partition's FileVault state.
type PartitionEncryptionState struct {
	PartitionName              string `json:"partitionName"`
	PartitionFileVault2State   string `json:"partitionFileVault2State"`
	PartitionFileVault2Percent int    `json:"partitionFileVault2Percent"`
}

// UserAndLocation is the USER_AND_LOCATION section of a computer. Email may
// be empty; the whole section is null on some real records.
type UserAndLocation struct {
	Username     string  `json:"username"`
	Realname     string  `json:"realname"`
	Email        string  `json:"email"`
	Position     *string `json:"position"`
	Phone        *string `json:"phone"`
	DepartmentID *string `json:"departmentId"`
	BuildingID   *string `json:"buildingId"`
	Room         *string `json:"room"`
}

// Hardware is the HARDWARE section of a computer. MACs are in colon form
// with whatever case the device reported; Alt* are null on single-NIC Macs.
type Hardware struct {
	Make                  string  `json:"make"`
	Model                 string  `json:"model"`
	ModelIdentifier       string  `json:"modelIdentifier"`
	SerialNumber          string  `json:"serialNumber"`
	NetworkAdapterType    string  `json:"networkAdapterType"`
	MacAddress            string  `json:"macAddress"`
	AltNetworkAdapterType *string `json:"altNetworkAdapterType"`
	AltMacAddress         *string `json:"altMacAddress"`
	AppleSilicon          bool    `json:"appleSilicon"`
}

// Security is the SECURITY section of a computer.
type Security struct {
	SIPStatus             string `json:"sipStatus"`
	GatekeeperStatus      string `json:"gatekeeperStatus"`
	FirewallEnabled       bool   `json:"firewallEnabled"`
	ActivationLockEnabled bool   `json:"activationLockEnabled"`
	RecoveryLockEnabled   bool   `json:"recoveryLockEnabled"`
	SecureBootLevel       string `json:"secureBootLevel"`
}

// OperatingSystem is the OPERATING_SYSTEM section; FileVault2Status is one
// of the FileVault* constants.
type OperatingSystem struct {
	Name                  string `json:"name"`
	Version               string `json:"version"`
	Build                 string `json:"build"`
	ActiveDirectoryStatus string `json:"activeDirectoryStatus"`
	FileVault2Status      string `json:"fileVault2Status"`
}

// operatingSystem.fileVault2Status values.
const (
	FileVaultNotApplicable = "NOT_APPLICABLE"
	FileVaultNotEncrypted  = "NOT_ENCRYPTED"
	FileVaultBootEncrypted = "BOOT_ENCRYPTED"
	FileVaultSomeEncrypted = "SOME_ENCRYPTED"
	FileVaultAllEncrypted  = "ALL_ENCRYPTED"
)

// MobileDevice is one record of GET /api/v2/mobile-devices/detail.
// https://developer.jamf.com/jamf-pro/reference/get_v2-mobile-devices-detail
type MobileDevice struct {
	MobileDeviceID  string                 `json:"mobileDeviceId"`
	DeviceType      string                 `json:"deviceType"` // ios, appleTv, watch, visionOS
	Hardware        *MobileHardware        `json:"hardware"`
	UserAndLocation *MobileUserAndLocation `json:"userAndLocation"`
	General         *MobileGeneral         `json:"general"`
	Security        *MobileSecurity        `json:"security"`
}

// MobileGeneral is the GENERAL section of a mobile device.
type MobileGeneral struct {
	UDID                    string  `json:"udid"`
	DisplayName             string  `json:"displayName"`
	AssetTag                *string `json:"assetTag"`
	LastInventoryUpdateDate *string `json:"lastInventoryUpdateDate"`
	OSVersion               string  `json:"osVersion"`
	OSBuild                 string  `json:"osBuild"`
	IPAddress               *string `json:"ipAddress"`
	Managed                 bool    `json:"managed"`
	Supervised              bool    `json:"supervised"`
	DeviceOwnershipType     string  `json:"deviceOwnershipType"`
	LastEnrolledDate        *string `json:"lastEnrolledDate"`
	ManagementID            string  `json:"managementId"`
}

// MobileHardware is the HARDWARE section of a mobile device; MACs are lower
// case colon form.
type MobileHardware struct {
	CapacityMB          int    `json:"capacityMb"`
	SerialNumber        string `json:"serialNumber"`
	WifiMacAddress      string `json:"wifiMacAddress"`
	BluetoothMacAddress string `json:"bluetoothMacAddress"`
	Model               string `json:"model"`
	ModelIdentifier     string `json:"modelIdentifier"`
}

// MobileUserAndLocation is the USER_AND_LOCATION section of a mobile device;
// note the email field is emailAddress here, not email.
type MobileUserAndLocation struct {
	Username     string  `json:"username"`
	RealName     string  `json:"realName"`
	EmailAddress string  `json:"emailAddress"`
	Position     *string `json:"position"`
	PhoneNumber  *string `json:"phoneNumber"`
}

// MobileSecurity is the SECURITY section (iOS only).
type MobileSecurity struct {
	DataProtected                bool `json:"dataProtected"`
	BlockLevelEncryptionCapable  bool `json:"blockLevelEncryptionCapable"`
	FileLevelEncryptionCapable   bool `json:"fileLevelEncryptionCapable"`
	PasscodePresent              bool `json:"passcodePresent"`
	PasscodeCompliant            bool `json:"passcodeCompliant"`
	PasscodeCompliantWithProfile bool `json:"passcodeCompliantWithProfile"`
	HardwareEncryption           int  `json:"hardwareEncryption"`
	ActivationLockEnabled        bool `json:"activationLockEnabled"`
	JailBreakDetected            bool `json:"jailBreakDetected"`
	LostModeEnabled              bool `json:"lostModeEnabled"`
}

// FormatTime renders t the way Jamf does: UTC, milliseconds, "Z".
func FormatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// parseTime reads a Jamf timestamp or an RSQL date argument (date only or
// RFC 3339, with or without zone; no zone means UTC).
func parseTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

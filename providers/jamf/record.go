package jamf

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

	"github.com/postured/postured/providers"
)

// page is the envelope of every Jamf Pro API listing.
type page[T any] struct {
	TotalCount int `json:"totalCount"`
	Results    []T `json:"results"`
}

// computer is the part of a computers-inventory record postured reads, in
// any API version: v1 to v3 share these fields, v4 calls lastContactTime
// lastCheckIn. Sections are pointers because Jamf sends null for sections
// not requested.
type computer struct {
	ID      flexString `json:"id"`
	General *struct {
		Name             string `json:"name"`
		LastContactTime  string `json:"lastContactTime"`
		LastCheckIn      string `json:"lastCheckIn"`
		ReportDate       string `json:"reportDate"`
		RemoteManagement *struct {
			Managed *bool `json:"managed"`
		} `json:"remoteManagement"`
	} `json:"general"`
	Hardware *struct {
		SerialNumber  string `json:"serialNumber"`
		MacAddress    string `json:"macAddress"`
		AltMacAddress string `json:"altMacAddress"`
	} `json:"hardware"`
	OperatingSystem *struct {
		FileVault2Status string `json:"fileVault2Status"`
	} `json:"operatingSystem"`
	UserAndLocation *struct {
		Email string `json:"email"`
	} `json:"userAndLocation"`
}

// mobileDevice is the part of a mobile-devices/detail record postured reads.
type mobileDevice struct {
	MobileDeviceID flexString `json:"mobileDeviceId"`
	DeviceType     string     `json:"deviceType"`
	General        *struct {
		DisplayName             string `json:"displayName"`
		LastInventoryUpdateDate string `json:"lastInventoryUpdateDate"`
		Managed                 *bool  `json:"managed"`
	} `json:"general"`
	Hardware *struct {
		SerialNumber   string `json:"serialNumber"`
		WifiMacAddress string `json:"wifiMacAddress"`
	} `json:"hardware"`
	UserAndLocation *struct {
		EmailAddress string `json:"emailAddress"`
	} `json:"userAndLocation"`
	Security *struct {
		JailBreakDetected *bool `json:"jailBreakDetected"`
		PasscodePresent   *bool `json:"passcodePresent"`
	} `json:"security"`
}

// mobileIDPrefix keeps mobile device ids apart from computer ids: Jamf
// numbers both from 1, so computer 12 and mobile device 12 would otherwise
// share an s2s_id.
const mobileIDPrefix = "mobile-"

// fileVault2Status values that count as encrypted: the whole disk, or the
// boot volume (what FileVault protects on a single-volume Mac).
var encryptedStatuses = map[string]bool{"ALL_ENCRYPTED": true, "BOOT_ENCRYPTED": true}

// scoring is the configured score table.
type scoring struct {
	encrypted, unencrypted, unmanaged int
}

func (s scoring) computer(c *computer) providers.Record {
	rec := providers.Record{ID: c.ID.String()}
	var managed *bool
	if g := c.General; g != nil {
		rec.Hostnames = []string{g.Name}
		rec.LastSeen = firstTime(g.LastCheckIn, g.LastContactTime, g.ReportDate)
		if g.RemoteManagement != nil {
			managed = g.RemoteManagement.Managed
		}
	}
	if h := c.Hardware; h != nil {
		rec.Serials = []string{h.SerialNumber}
		rec.MACs = []string{h.MacAddress, h.AltMacAddress}
	}
	if u := c.UserAndLocation; u != nil {
		rec.Emails = []string{u.Email}
	}
	fv := ""
	if c.OperatingSystem != nil {
		fv = c.OperatingSystem.FileVault2Status
	}
	switch {
	case managed == nil || !*managed:
		rec.Score = s.unmanaged
	case encryptedStatuses[fv]:
		rec.Score = s.encrypted
	default:
		rec.Score = s.unencrypted
	}
	rec.Reason = "managed=" + boolText(managed) + " fileVault2Status=" + orUnknown(fv)
	rec.Normalize()
	return rec
}

// mobile scores a mobile device: unmanaged -> score_unmanaged; jailbroken
// -> 0; a passcode (which is what turns on iOS Data Protection, i.e. the
// device's encryption) -> score_encrypted; no passcode, or no SECURITY
// data (Apple TV) -> score_unencrypted.
func (s scoring) mobile(m *mobileDevice) providers.Record {
	rec := providers.Record{ID: mobileIDPrefix + m.MobileDeviceID.String()}
	var managed, jailbroken, passcode *bool
	if g := m.General; g != nil {
		rec.Hostnames = []string{g.DisplayName}
		rec.LastSeen = firstTime(g.LastInventoryUpdateDate)
		managed = g.Managed
	}
	if h := m.Hardware; h != nil {
		rec.Serials = []string{h.SerialNumber}
		rec.MACs = []string{h.WifiMacAddress}
	}
	if u := m.UserAndLocation; u != nil {
		rec.Emails = []string{u.EmailAddress}
	}
	if sec := m.Security; sec != nil {
		jailbroken, passcode = sec.JailBreakDetected, sec.PasscodePresent
	}
	switch {
	case managed == nil || !*managed:
		rec.Score = s.unmanaged
		rec.Reason = "managed=" + boolText(managed)
	case jailbroken != nil && *jailbroken:
		rec.Score = 0
		rec.Reason = "managed=true jailBreakDetected=true"
	default:
		rec.Score = s.unencrypted
		if passcode != nil && *passcode {
			rec.Score = s.encrypted
		}
		rec.Reason = "managed=true jailBreakDetected=" + boolText(jailbroken) + " passcodePresent=" + boolText(passcode)
	}
	rec.Normalize()
	return rec
}

func boolText(b *bool) string {
	if b == nil {
		return "unknown"
	}
	return strconv.FormatBool(*b)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// firstTime parses the first non-empty Jamf timestamp.
func firstTime(vals ...string) time.Time {
	for _, v := range vals {
		if t, ok := parseTime(v); ok {
			return t
		}
	}
	return time.Time{}
}

// parseTime reads Jamf's "2023-02-21T09:31:49.792Z", tolerating a missing
// zone (read as UTC).
func parseTime(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// flexString is an id Jamf documents as a string but some versions and
// endpoints send as a number.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		*f = ""
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*f = flexString(n.String())
	return nil
}

func (f flexString) String() string { return string(f) }

package intunemock

import (
	"strings"
	"time"
)

// ManagedDevice mirrors the Graph v1.0 managedDevice resource (the subset of
// properties posture tools read, plus a few non-default ones).
// https://learn.microsoft.com/graph/api/resources/intune-devices-manageddevice
type ManagedDevice struct {
	ID                                      string    `json:"id"`
	UserID                                  string    `json:"userId"`
	DeviceName                              string    `json:"deviceName"`
	ManagedDeviceOwnerType                  string    `json:"managedDeviceOwnerType"`
	EnrolledDateTime                        time.Time `json:"enrolledDateTime"`
	LastSyncDateTime                        time.Time `json:"lastSyncDateTime"`
	OperatingSystem                         string    `json:"operatingSystem"`
	ComplianceState                         string    `json:"complianceState"`
	JailBroken                              string    `json:"jailBroken"`
	ManagementAgent                         string    `json:"managementAgent"`
	OSVersion                               string    `json:"osVersion"`
	AzureADRegistered                       bool      `json:"azureADRegistered"`
	DeviceEnrollmentType                    string    `json:"deviceEnrollmentType"`
	DeviceRegistrationState                 string    `json:"deviceRegistrationState"`
	IsSupervised                            bool      `json:"isSupervised"`
	IsEncrypted                             bool      `json:"isEncrypted"`
	UserPrincipalName                       string    `json:"userPrincipalName"`
	Model                                   string    `json:"model"`
	Manufacturer                            string    `json:"manufacturer"`
	SerialNumber                            string    `json:"serialNumber"`
	EmailAddress                            string    `json:"emailAddress"`
	AzureADDeviceID                         string    `json:"azureADDeviceId"`
	ComplianceGracePeriodExpirationDateTime time.Time `json:"complianceGracePeriodExpirationDateTime"`
	UserDisplayName                         string    `json:"userDisplayName"`
	// WiFiMacAddress is 12 upper-case hex digits without separators, or "".
	WiFiMacAddress             string `json:"wiFiMacAddress"`
	PartnerReportedThreatState string `json:"partnerReportedThreatState"`

	// Non-default properties: Graph answers null (or 0) for them in list
	// responses and fills them only on GET managedDevices/{id}.
	EthernetMacAddress    string `json:"ethernetMacAddress"`
	UDID                  string `json:"udid"`
	Notes                 string `json:"notes"`
	PhysicalMemoryInBytes int64  `json:"physicalMemoryInBytes"`
}

// ComplianceStates is the full v1.0 complianceState enum.
// https://learn.microsoft.com/graph/api/resources/intune-devices-compliancestate
var ComplianceStates = []string{"unknown", "compliant", "noncompliant", "conflict", "error", "inGracePeriod", "configManager"}

// odataType is what Graph puts in "@odata.type" on full objects.
const odataType = "#microsoft.graph.managedDevice"

type propKind int

const (
	kindString propKind = iota
	kindBool
	kindTime
	kindInt
)

// prop describes one managedDevice property: how to read it, whether list
// calls return it, and which $filter operators the mock honours on it.
type prop struct {
	name       string
	kind       propKind
	nonDefault bool
	// ops are the $filter operators Graph honours on the property; empty
	// means filters on it are not supported (see Options.UnsupportedFilter).
	ops []string
	// neAsEq reproduces the confirmed bug where "ne" acts as "eq"
	// (microsoft-graph-docs#9953).
	neAsEq bool
	get    func(*ManagedDevice) any
}

var (
	stringEq   = []string{"eq", "ne", "startswith", "contains", "endswith"}
	enumEq     = []string{"eq", "ne"}
	dateCmp    = []string{"gt", "ge", "lt", "le"}
	properties = []prop{
		{name: "id", kind: kindString, ops: []string{"eq", "ne"}, get: func(d *ManagedDevice) any { return d.ID }},
		{name: "userId", kind: kindString, ops: []string{"eq"}, get: func(d *ManagedDevice) any { return d.UserID }},
		{name: "deviceName", kind: kindString, ops: stringEq, get: func(d *ManagedDevice) any { return d.DeviceName }},
		{name: "managedDeviceOwnerType", kind: kindString, ops: enumEq, neAsEq: true, get: func(d *ManagedDevice) any { return d.ManagedDeviceOwnerType }},
		{name: "enrolledDateTime", kind: kindTime, ops: dateCmp, get: func(d *ManagedDevice) any { return d.EnrolledDateTime }},
		{name: "lastSyncDateTime", kind: kindTime, ops: dateCmp, get: func(d *ManagedDevice) any { return d.LastSyncDateTime }},
		{name: "operatingSystem", kind: kindString, ops: stringEq, get: func(d *ManagedDevice) any { return d.OperatingSystem }},
		{name: "complianceState", kind: kindString, ops: enumEq, get: func(d *ManagedDevice) any { return d.ComplianceState }},
		{name: "jailBroken", kind: kindString, ops: enumEq, get: func(d *ManagedDevice) any { return d.JailBroken }},
		{name: "managementAgent", kind: kindString, ops: enumEq, get: func(d *ManagedDevice) any { return d.ManagementAgent }},
		{name: "osVersion", kind: kindString, ops: stringEq, get: func(d *ManagedDevice) any { return d.OSVersion }},
		{name: "azureADRegistered", kind: kindBool, get: func(d *ManagedDevice) any { return d.AzureADRegistered }},
		{name: "deviceEnrollmentType", kind: kindString, get: func(d *ManagedDevice) any { return d.DeviceEnrollmentType }},
		{name: "deviceRegistrationState", kind: kindString, ops: enumEq, get: func(d *ManagedDevice) any { return d.DeviceRegistrationState }},
		{name: "isSupervised", kind: kindBool, get: func(d *ManagedDevice) any { return d.IsSupervised }},
		{name: "isEncrypted", kind: kindBool, get: func(d *ManagedDevice) any { return d.IsEncrypted }},
		{name: "userPrincipalName", kind: kindString, ops: stringEq, get: func(d *ManagedDevice) any { return d.UserPrincipalName }},
		{name: "model", kind: kindString, ops: stringEq, get: func(d *ManagedDevice) any { return d.Model }},
		{name: "manufacturer", kind: kindString, ops: stringEq, get: func(d *ManagedDevice) any { return d.Manufacturer }},
		{name: "serialNumber", kind: kindString, ops: stringEq, get: func(d *ManagedDevice) any { return d.SerialNumber }},
		{name: "emailAddress", kind: kindString, get: func(d *ManagedDevice) any { return d.EmailAddress }},
		{name: "azureADDeviceId", kind: kindString, ops: []string{"eq"}, get: func(d *ManagedDevice) any { return d.AzureADDeviceID }},
		{name: "complianceGracePeriodExpirationDateTime", kind: kindTime, get: func(d *ManagedDevice) any { return d.ComplianceGracePeriodExpirationDateTime }},
		{name: "userDisplayName", kind: kindString, ops: stringEq, get: func(d *ManagedDevice) any { return d.UserDisplayName }},
		{name: "wiFiMacAddress", kind: kindString, get: func(d *ManagedDevice) any { return d.WiFiMacAddress }},
		{name: "partnerReportedThreatState", kind: kindString, get: func(d *ManagedDevice) any { return d.PartnerReportedThreatState }},
		{name: "ethernetMacAddress", kind: kindString, nonDefault: true, get: func(d *ManagedDevice) any { return d.EthernetMacAddress }},
		{name: "udid", kind: kindString, nonDefault: true, get: func(d *ManagedDevice) any { return d.UDID }},
		{name: "notes", kind: kindString, nonDefault: true, get: func(d *ManagedDevice) any { return d.Notes }},
		{name: "physicalMemoryInBytes", kind: kindInt, nonDefault: true, get: func(d *ManagedDevice) any { return d.PhysicalMemoryInBytes }},
	}
)

// lookupProp finds a property by name. Graph parses URLs case-insensitively.
func lookupProp(name string) *prop {
	for i := range properties {
		if strings.EqualFold(properties[i].name, name) {
			return &properties[i]
		}
	}
	return nil
}

// formatTime renders a DateTimeOffset the way Graph does: seconds precision
// when there is no fraction, else 7 fractional digits (.NET ticks), always
// UTC with Z. The zero time is Graph's 0001-01-01T00:00:00Z sentinel.
func formatTime(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond() == 0 {
		return t.Format("2006-01-02T15:04:05Z")
	}
	return t.Format("2006-01-02T15:04:05.0000000Z")
}

// renderDevice writes one device as a JSON object. selected nil means the
// full default property set with "@odata.type"; list is true for
// collection responses, where non-default properties come back empty.
func renderDevice(b *strings.Builder, d *ManagedDevice, selected []*prop, list bool) {
	b.WriteByte('{')
	first := true
	field := func(name string, v any) {
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.Write(marshal(name))
		b.WriteByte(':')
		b.Write(marshal(v))
	}
	props := selected
	if props == nil {
		field("@odata.type", odataType)
		props = make([]*prop, len(properties))
		for i := range properties {
			props[i] = &properties[i]
		}
	}
	for _, p := range props {
		field(p.name, renderValue(p, d, list))
	}
	b.WriteByte('}')
}

func renderValue(p *prop, d *ManagedDevice, list bool) any {
	v := p.get(d)
	if p.nonDefault && list {
		if p.kind == kindInt {
			return 0
		}
		return nil
	}
	switch x := v.(type) {
	case time.Time:
		return formatTime(x)
	case string:
		if x == "" && p.nonDefault {
			return nil
		}
	}
	return v
}

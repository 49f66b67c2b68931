package crowdstrikemock

// Host is one Falcon host record as GET/POST /devices/entities/devices/v2
// returns it (gofalcon models.DeviceapiDeviceSwagger, the fields a posture
// integration and typical FQL filters use). Scalars are omitted when empty;
// the arrays are always present, as the real API serialises them. Timestamps
// are RFC 3339 UTC without fractions ("2025-09-08T12:49:47Z"). Status is
// normal, containment_pending, contained or lift_containment_pending, which
// is still contained until the lift completes (gofalcon
// models.DeviceapiDeviceSwagger; vendor-apis.md, review of the live docs).
type Host struct {
	DeviceID                    string          `json:"device_id"`
	CID                         string          `json:"cid"`
	AgentLoadFlags              string          `json:"agent_load_flags,omitempty"`
	AgentVersion                string          `json:"agent_version,omitempty"`
	BIOSManufacturer            string          `json:"bios_manufacturer,omitempty"`
	BIOSVersion                 string          `json:"bios_version,omitempty"`
	ConfigIDBase                string          `json:"config_id_base,omitempty"`
	ConfigIDBuild               string          `json:"config_id_build,omitempty"`
	ConfigIDPlatform            string          `json:"config_id_platform,omitempty"`
	CPUSignature                string          `json:"cpu_signature,omitempty"`
	ExternalIP                  string          `json:"external_ip,omitempty"`
	MACAddress                  string          `json:"mac_address,omitempty"`
	Hostname                    string          `json:"hostname,omitempty"`
	FirstSeen                   string          `json:"first_seen,omitempty"`
	LastLoginTimestamp          string          `json:"last_login_timestamp,omitempty"`
	LastLoginUser               string          `json:"last_login_user,omitempty"`
	LastSeen                    string          `json:"last_seen,omitempty"`
	LocalIP                     string          `json:"local_ip,omitempty"`
	MachineDomain               string          `json:"machine_domain,omitempty"`
	MajorVersion                string          `json:"major_version,omitempty"`
	MinorVersion                string          `json:"minor_version,omitempty"`
	OSVersion                   string          `json:"os_version,omitempty"`
	OSBuild                     string          `json:"os_build,omitempty"`
	OSProductName               string          `json:"os_product_name,omitempty"`
	PlatformID                  string          `json:"platform_id,omitempty"`
	PlatformName                string          `json:"platform_name,omitempty"`
	Policies                    []Policy        `json:"policies"`
	ReducedFunctionalityMode    string          `json:"reduced_functionality_mode,omitempty"`
	DevicePolicies              *DevicePolicies `json:"device_policies,omitempty"`
	Groups                      []string        `json:"groups"`
	GroupHash                   string          `json:"group_hash,omitempty"`
	ProductType                 string          `json:"product_type,omitempty"`
	ProductTypeDesc             string          `json:"product_type_desc,omitempty"`
	ProvisionStatus             string          `json:"provision_status,omitempty"`
	SerialNumber                string          `json:"serial_number,omitempty"`
	ServiceProvider             string          `json:"service_provider,omitempty"`
	ServiceProviderAccountID    string          `json:"service_provider_account_id,omitempty"`
	InstanceID                  string          `json:"instance_id,omitempty"`
	Status                      string          `json:"status,omitempty"`
	SystemManufacturer          string          `json:"system_manufacturer,omitempty"`
	SystemProductName           string          `json:"system_product_name,omitempty"`
	Tags                        []string        `json:"tags"`
	ModifiedTimestamp           string          `json:"modified_timestamp,omitempty"`
	Email                       string          `json:"email,omitempty"`
	KernelVersion               string          `json:"kernel_version,omitempty"`
	ChassisType                 string          `json:"chassis_type,omitempty"`
	ChassisTypeDesc             string          `json:"chassis_type_desc,omitempty"`
	ConnectionIP                string          `json:"connection_ip,omitempty"`
	DefaultGatewayIP            string          `json:"default_gateway_ip,omitempty"`
	ConnectionMACAddress        string          `json:"connection_mac_address,omitempty"`
	FilesystemContainmentStatus string          `json:"filesystem_containment_status,omitempty"`
}

// Policy is one entry of a host's policies array (and of device_policies).
type Policy struct {
	PolicyType   string `json:"policy_type"`
	PolicyID     string `json:"policy_id"`
	Applied      bool   `json:"applied"`
	SettingsHash string `json:"settings_hash,omitempty"`
	AssignedDate string `json:"assigned_date,omitempty"`
	AppliedDate  string `json:"applied_date,omitempty"`
}

// DevicePolicies is the per-type view of a host's policies.
type DevicePolicies struct {
	Prevention   *Policy `json:"prevention,omitempty"`
	SensorUpdate *Policy `json:"sensor_update,omitempty"`
	Firewall     *Policy `json:"firewall,omitempty"`
}

// Assessment is one Zero Trust Assessment as GET
// /zero-trust-assessment/entities/assessments/v1 returns it (gofalcon
// models.DomainSignalProperties).
type Assessment struct {
	AID                string          `json:"aid"`
	CID                string          `json:"cid"`
	EventPlatform      string          `json:"event_platform"`
	ProductTypeDesc    string          `json:"product_type_desc"`
	SystemSerialNumber string          `json:"system_serial_number"`
	SensorFileStatus   string          `json:"sensor_file_status"`
	ModifiedTime       string          `json:"modified_time"`
	Assessment         Scores          `json:"assessment"`
	AssessmentItems    AssessmentItems `json:"assessment_items"`
}

// Scores are the ZTA scores, 1..100, higher is healthier.
type Scores struct {
	Overall      int    `json:"overall"`
	OS           int    `json:"os"`
	SensorConfig int    `json:"sensor_config"`
	Version      string `json:"version"`
}

// AssessmentItems lists the signals behind the scores.
type AssessmentItems struct {
	OSSignals     []Signal `json:"os_signals"`
	SensorSignals []Signal `json:"sensor_signals"`
}

// Signal is one assessed setting.
type Signal struct {
	SignalID      string `json:"signal_id"`
	SignalName    string `json:"signal_name"`
	GroupName     string `json:"group_name"`
	Criteria      string `json:"criteria"`
	MeetsCriteria string `json:"meets_criteria"`
}

// hostProperty returns the FQL type of a Hosts API filter property.
func hostProperty(prop string) (fieldType, bool) {
	switch prop {
	case "first_seen", "last_seen", "modified_timestamp", "last_login_timestamp":
		return typeTimestamp, true
	case "device_id", "cid", "agent_load_flags", "agent_version", "bios_manufacturer", "bios_version",
		"config_id_base", "config_id_build", "config_id_platform", "cpu_signature", "external_ip",
		"mac_address", "connection_mac_address", "hostname", "last_login_user", "local_ip", "local_ip.raw",
		"machine_domain", "major_version", "minor_version", "os_version", "platform_id", "platform_name",
		"reduced_functionality_mode", "groups", "product_type", "product_type_desc", "provision_status",
		"serial_number", "service_provider", "service_provider_account_id", "instance_id", "status",
		"system_manufacturer", "system_product_name", "tags", "email", "kernel_version", "connection_ip",
		"default_gateway_ip", "filesystem_containment_status":
		return typeString, true
	}
	return 0, false
}

// field returns the values of an FQL property for h.
func (h *Host) field(prop string) []string {
	one := func(s string) []string { return []string{s} }
	switch prop {
	case "device_id":
		return one(h.DeviceID)
	case "cid":
		return one(h.CID)
	case "agent_load_flags":
		return one(h.AgentLoadFlags)
	case "agent_version":
		return one(h.AgentVersion)
	case "bios_manufacturer":
		return one(h.BIOSManufacturer)
	case "bios_version":
		return one(h.BIOSVersion)
	case "config_id_base":
		return one(h.ConfigIDBase)
	case "config_id_build":
		return one(h.ConfigIDBuild)
	case "config_id_platform":
		return one(h.ConfigIDPlatform)
	case "cpu_signature":
		return one(h.CPUSignature)
	case "external_ip":
		return one(h.ExternalIP)
	case "mac_address":
		return one(h.MACAddress)
	case "connection_mac_address":
		return one(h.ConnectionMACAddress)
	case "hostname":
		return one(h.Hostname)
	case "first_seen":
		return one(h.FirstSeen)
	case "last_login_timestamp":
		return one(h.LastLoginTimestamp)
	case "last_login_user":
		return one(h.LastLoginUser)
	case "last_seen":
		return one(h.LastSeen)
	case "local_ip", "local_ip.raw":
		return one(h.LocalIP)
	case "machine_domain":
		return one(h.MachineDomain)
	case "major_version":
		return one(h.MajorVersion)
	case "minor_version":
		return one(h.MinorVersion)
	case "os_version":
		return one(h.OSVersion)
	case "platform_id":
		return one(h.PlatformID)
	case "platform_name":
		return one(h.PlatformName)
	case "reduced_functionality_mode":
		return one(h.ReducedFunctionalityMode)
	case "groups":
		return h.Groups
	case "product_type":
		return one(h.ProductType)
	case "product_type_desc":
		return one(h.ProductTypeDesc)
	case "provision_status":
		return one(h.ProvisionStatus)
	case "serial_number":
		return one(h.SerialNumber)
	case "service_provider":
		return one(h.ServiceProvider)
	case "service_provider_account_id":
		return one(h.ServiceProviderAccountID)
	case "instance_id":
		return one(h.InstanceID)
	case "status":
		return one(h.Status)
	case "system_manufacturer":
		return one(h.SystemManufacturer)
	case "system_product_name":
		return one(h.SystemProductName)
	case "tags":
		return h.Tags
	case "modified_timestamp":
		return one(h.ModifiedTimestamp)
	case "email":
		return one(h.Email)
	case "kernel_version":
		return one(h.KernelVersion)
	case "connection_ip":
		return one(h.ConnectionIP)
	case "default_gateway_ip":
		return one(h.DefaultGatewayIP)
	case "filesystem_containment_status":
		return one(h.FilesystemContainmentStatus)
	}
	return nil
}

// sortable reports whether hosts can be sorted by prop.
func sortable(prop string) bool {
	_, ok := hostProperty(prop)
	return ok && prop != "groups" && prop != "tags"
}

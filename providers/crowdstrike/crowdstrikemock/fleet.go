package crowdstrikemock

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
const vendorName = "crowdstrike"

// The API client the fleet's mock accepts: New's defaults.
const (
	fleetClientID     = "falcon-client"
	fleetClientSecret = "falcon-secret"
)

// Vendor is the CrowdStrike Falcon mock over f's Falcon view, as the mock
// set serves and configures it.
func Vendor(f *fleet.Fleet) mockkit.Vendor {
	v := newView(f)
	s := New(Options{Devices: v.hosts, Assessments: v.zta, ClientID: fleetClientID, ClientSecret: fleetClientSecret})
	l := &live{fleet: f, s: s, owners: v.owners, guard: mockkit.NewGuard(s)}
	return mockkit.Vendor{
		Name:         vendorName,
		Handler:      l.guard,
		Drift:        l.drift,
		Current:      l.current,
		Faults:       s.Faults,
		Calls:        s.Calls,
		ExpireTokens: s.ExpireTokens,
		Config: func(root string) mockkit.ProviderConfig {
			return mockkit.ProviderConfig{Weight: 5, Mode: providers.ModeQuery, Settings: []mockkit.Setting{
				{Key: "base_url", Value: root},
				{Key: "client_id", Value: fleetClientID},
				{Key: "client_secret", Value: fleetClientSecret, Secret: true},
			}}
		},
		Expected: v.expected(),
		// 200 serials per FQL bracket list, then 20 per statement as
		// single terms (for Falcon's case rules) for the third of them
		// not stored as normalised or not in Falcon at all; host records
		// with the statement (combined endpoint), ZTA 100 ids per call:
		// about 30 calls for the serials of 1000 devices, 20-40 more for
		// the MACs, hostnames and emails of those serials did not settle
		// (53-56 measured on the demo fleet, 77-78 before the bracket
		// lists).
		BatchCalls: 80,
	}
}

// FleetHosts is the CrowdStrike Falcon view of the fleet: one host per
// device in Falcon, plus an older duplicate (new AID, same serial and MACs,
// older last_seen) for re-enrolled devices. It carries what real tenants
// show: lower-case dash MACs, the Cloudflare-visible MAC sometimes only in
// connection_mac_address, upper-case Windows computer names, mixed-case Mac
// hostnames, FQDN hostnames on some Macs and Linux hosts, serials in mixed
// case, SMBIOS-UUID serials on Linux VMs without a hardware serial,
// contained, containment-pending and lift-pending hosts, and hosts in
// reduced functionality mode.
func FleetHosts(f *fleet.Fleet) []Host { return newView(f).hosts }

// FleetAssessments are the Zero Trust Assessments of FleetHosts. Health
// drives the overall score; some hosts (a third of Linux hosts, new sensors,
// most re-enrolment leftovers) have none.
func FleetAssessments(f *fleet.Fleet) []Assessment { return newView(f).zta }

// view is the fleet's Falcon tenant with, per host, the index of the fleet
// device it describes.
type view struct {
	hosts  []Host
	owners []int
	zta    []Assessment
}

func newView(f *fleet.Fleet) *view {
	cid := hex32(rand.New(rand.NewPCG(f.Seed, 0xfa1c0))) // #nosec G404 -- a seeded PRNG on purpose: the mock fleet must be the same on every run; nothing secret comes from it
	v := &view{}
	for i := range f.Devices {
		d := &f.Devices[i]
		r := d.VendorRand(vendorName)
		if !installed(d, r) {
			continue
		}
		contained := r.IntN(50) == 0
		h := fleetHost(d, r, cid, contained)
		v.hosts, v.owners = append(v.hosts, h), append(v.owners, d.Index)
		if a, ok := fleetAssessment(d, r, &h); ok {
			v.zta = append(v.zta, a)
		}
		if d.Reenrolled {
			old := h
			old.DeviceID = hex32(r)
			age := time.Duration(20+r.IntN(70)) * 24 * time.Hour
			lastSeen := d.LastSeen.Add(-age)
			old.LastSeen = falconTime(lastSeen)
			old.ModifiedTimestamp = old.LastSeen
			old.FirstSeen = falconTime(lastSeen.Add(-time.Duration(100+r.IntN(600)) * 24 * time.Hour))
			old.Status = "normal"
			old.AgentVersion = "7.10.17706.0"
			v.hosts, v.owners = append(v.hosts, old), append(v.owners, d.Index)
			// A leftover often still has its last assessment, and a good
			// one: only the most recently seen record may decide.
			if r.IntN(2) == 0 {
				v.zta = append(v.zta, assessmentFor(&old, 95, r))
			}
		}
	}
	return v
}

// installed decides whether d runs the Falcon sensor: most computers, no
// phones.
func installed(d *fleet.Device, r *rand.Rand) bool {
	share := map[string]int{"Windows": 9, "Linux": 9, "macOS": 8}[d.Platform]
	return r.IntN(10) < share && !d.Unmanaged
}

// expected scores each host by design.md: its Zero Trust Assessment's
// overall score, 50 without one, 0 while contained (a lift still pending
// included), as of its last_seen.
func (v *view) expected() map[int]mockkit.Expected {
	overall := make(map[string]int, len(v.zta))
	for _, a := range v.zta {
		overall[a.AID] = a.Assessment.Overall
	}
	recs := make([]mockkit.Scored, len(v.hosts))
	for i, h := range v.hosts {
		score, ok := overall[h.DeviceID]
		if !ok {
			score = 50
		}
		switch h.Status {
		case "contained", "containment_pending", "lift_containment_pending":
			score = 0
		}
		seen, _ := time.Parse(time.RFC3339, h.LastSeen)
		recs[i] = mockkit.Scored{Owner: v.owners[i], ID: h.DeviceID, Score: score, LastSeen: seen}
	}
	return mockkit.Latest(recs)
}

func fleetHost(d *fleet.Device, r *rand.Rand, cid string, contained bool) Host {
	h := Host{
		DeviceID:                 hex32(r),
		CID:                      cid,
		AgentVersion:             fmt.Sprintf("7.%d.%d.0", 20+r.IntN(8), 17000+r.IntN(2000)),
		ConfigIDBase:             "65994763",
		ConfigIDBuild:            fmt.Sprint(17000 + r.IntN(2000)),
		LastSeen:                 falconTime(d.LastSeen),
		ModifiedTimestamp:        falconTime(d.LastSeen),
		FirstSeen:                falconTime(d.LastSeen.Add(-time.Duration(30+r.IntN(700)) * 24 * time.Hour)),
		LocalIP:                  fmt.Sprintf("10.%d.%d.%d", r.IntN(256), r.IntN(256), 1+r.IntN(254)),
		ExternalIP:               fmt.Sprintf("203.0.113.%d", 1+r.IntN(254)),
		SerialNumber:             d.Serial,
		Status:                   "normal",
		ReducedFunctionalityMode: "no",
		ProductTypeDesc:          "Workstation",
		ProvisionStatus:          "Provisioned",
		Tags:                     []string{},
		Groups:                   []string{},
	}
	if r.IntN(30) == 0 {
		h.ReducedFunctionalityMode = "yes"
	}
	if contained {
		switch r.IntN(4) {
		case 0:
			h.Status = "containment_pending"
		case 1:
			h.Status = "lift_containment_pending"
		default:
			h.Status = "contained"
		}
	}
	// The interface Cloudflare sees (MACs[0]) is sometimes only the
	// connection MAC: Falcon's mac_address is the primary adapter.
	macs := d.MACs
	h.MACAddress, h.ConnectionMACAddress = falconMAC(macs[0]), falconMAC(macs[0])
	if len(macs) > 1 {
		h.ConnectionMACAddress = falconMAC(macs[1])
		if r.IntN(2) == 0 {
			h.MACAddress, h.ConnectionMACAddress = falconMAC(macs[1]), falconMAC(macs[0])
		}
	}
	user, _, _ := strings.Cut(d.Email, "@")
	if r.IntN(3) == 0 {
		h.Email = d.Email // rarely populated in real tenants
		if r.IntN(2) == 0 {
			h.Email = titleCase(d.Email) // as the user typed it
		}
	}
	h.Hostname = d.Hostname
	switch d.Platform {
	case "Windows":
		h.PlatformName, h.PlatformID, h.OSVersion, h.OSProductName = "Windows", "0", "Windows 11", "Windows 11 Enterprise"
		h.Hostname = strings.ToUpper(d.Hostname)
		h.SystemManufacturer, h.SystemProductName = "Dell Inc.", "Latitude 7440"
		h.LastLoginUser = `CORP\` + user
		h.MachineDomain = d.Domain
	case "macOS":
		h.PlatformName, h.PlatformID, h.OSVersion, h.OSProductName = "Mac", "1", "Sonoma (14)", "macOS"
		h.SystemManufacturer, h.SystemProductName = "Apple Inc.", "MacBookPro18,3"
		h.LastLoginUser = user
		// macOS derives the local hostname from the computer name, mixed
		// case (Janes-MacBook-Pro): only a single-value FQL term finds it.
		if r.IntN(3) != 0 {
			h.Hostname = titleCase(d.Hostname)
		}
		if d.Domain != "" && r.IntN(2) == 0 {
			h.Hostname += "." + d.Domain
		}
	default:
		h.PlatformName, h.PlatformID, h.OSVersion, h.KernelVersion = "Linux", "3", "Ubuntu 24.04", "6.8.0-1017-aws"
		h.SystemManufacturer, h.SystemProductName = "LENOVO", "ThinkPad T14"
		h.LastLoginUser = user
		if d.Domain != "" {
			h.Hostname = d.Hostname + "." + d.Domain
		}
	}
	if r.IntN(8) == 0 {
		// Firmware that reports its serial in mixed case, as VMware does
		// ("VMware-56 4d ..."); Cloudflare's copy normalises to upper case.
		h.SerialNumber = mixedCase(d.Serial)
	}
	if d.Serial == "" {
		h.SerialNumber = d.PlaceholderSerial
		if d.Platform == "Linux" {
			// A VM reports its SMBIOS UUID, lower case, as the serial.
			h.SerialNumber = "ec2" + fleet.UUID(r)[3:]
			h.SystemManufacturer, h.SystemProductName = "Amazon EC2", "m6i.large"
			h.ServiceProvider, h.InstanceID = "AWS_EC2_V2", fmt.Sprintf("i-%017x", r.Uint64()>>4)
		}
	}
	applied := d.Health >= 30
	h.Policies = []Policy{{PolicyType: "prevention", PolicyID: "a5b7c9d1e3f5a7b9c1d3e5f7a9b1c3d5", Applied: applied,
		AppliedDate: h.LastSeen, AssignedDate: h.FirstSeen}}
	h.DevicePolicies = &DevicePolicies{Prevention: &h.Policies[0]}
	return h
}

func fleetAssessment(d *fleet.Device, r *rand.Rand, h *Host) (Assessment, bool) {
	switch {
	case d.Platform == "Linux" && r.IntN(3) == 0, // no ZTA for this platform/entitlement
		r.IntN(15) == 0: // sensor too new to be assessed
		return Assessment{}, false
	}
	overall := min(max(d.Health+r.IntN(7)-3, 1), 100)
	return assessmentFor(h, overall, r), true
}

func assessmentFor(h *Host, overall int, r *rand.Rand) Assessment {
	platform := map[string]string{"Windows": "Win", "Mac": "Mac", "Linux": "Lin"}[h.PlatformName]
	meets := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "no"
	}
	return Assessment{
		AID:                h.DeviceID,
		CID:                h.CID,
		EventPlatform:      platform,
		ProductTypeDesc:    h.ProductTypeDesc,
		SystemSerialNumber: h.SerialNumber,
		SensorFileStatus:   "confirmed",
		ModifiedTime:       h.LastSeen,
		Assessment: Scores{
			Overall:      overall,
			OS:           min(max(overall+r.IntN(11)-5, 1), 100),
			SensorConfig: min(max(overall+r.IntN(11)-5, 1), 100),
			Version:      "2.1.0",
		},
		AssessmentItems: AssessmentItems{
			OSSignals: []Signal{{SignalID: "disk_encryption", SignalName: "Full disk encryption",
				GroupName: "os", Criteria: "enabled", MeetsCriteria: meets(overall >= 50)}},
			SensorSignals: []Signal{{SignalID: "sensor_prevention", SignalName: "Prevention policy",
				GroupName: "sensor", Criteria: "applied", MeetsCriteria: meets(overall >= 30)}},
		},
	}
}

// titleCase capitalises each word: mbp-00042 is Mbp-00042,
// user0042@example.com is User0042@Example.com.
func titleCase(s string) string {
	b := []byte(s)
	for i := range b {
		if (i == 0 || strings.IndexByte("-@.", b[i-1]) >= 0) && b[i] >= 'a' && b[i] <= 'z' {
			b[i] -= 'a' - 'A'
		}
	}
	return string(b)
}

// mixedCase lower-cases every other letter of an upper-case serial:
// PF00000042 is Pf00000042, C020000042K is C020000042k.
func mixedCase(s string) string {
	b := []byte(s)
	letter := 0
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			if letter%2 == 1 {
				b[i] = c + 'a' - 'A'
			}
			letter++
		}
	}
	return string(b)
}

// falconMAC renders a canonical MAC the way Falcon reports it:
// aa-bb-cc-dd-ee-ff.
func falconMAC(m string) string { return strings.ReplaceAll(strings.ToLower(m), ":", "-") }

// falconTime is Falcon's timestamp format: RFC 3339, UTC, no fractions.
func falconTime(t time.Time) string { return t.UTC().Truncate(time.Second).Format(time.RFC3339) }

func hex32(r *rand.Rand) string { return fmt.Sprintf("%016x%016x", r.Uint64(), r.Uint64()) }

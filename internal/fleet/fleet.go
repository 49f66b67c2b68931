// Package fleet generates the deterministic, vendor-neutral ground truth the
// vendor mocks serve: one list of physical devices with the messiness real
// fleets have (re-enrolment duplicates, stale devices, placeholder serials,
// mixed MAC notation, FQDN hostnames, devices no vendor manages), and Batch,
// what Cloudflare would send for them. Which devices a vendor holds, and in
// what shape, is that vendor's view, built in its mock package from
// VendorRand, so this package names no vendor.
package fleet

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Device is one physical device, the truth every vendor view derives from.
type Device struct {
	Index int
	// CloudflareID is the WARP device_id Cloudflare sends.
	CloudflareID string
	// Serial is the hardware serial, upper-case. Empty when the device has
	// no usable serial (VMs with placeholder SMBIOS): vendors then report
	// PlaceholderSerial instead.
	Serial            string
	PlaceholderSerial string
	// MACs are canonical lower-case colon form; vendors re-format them.
	MACs     []string
	Hostname string // short name, lower-case
	Domain   string // non-empty when the device reports an FQDN somewhere
	Email    string
	Platform string // macOS, Windows, Linux, iOS
	// Health is the device's underlying state, 0..100; vendor views map it
	// to their own fields (compliance, FileVault, ZTA score) deterministically.
	Health   int
	LastSeen time.Time
	// Stale devices have not been seen for 60+ days.
	Stale bool
	// Reenrolled devices have an older duplicate record (same serial,
	// different vendor id) in every vendor they are in.
	Reenrolled bool
	// Unmanaged devices are in no vendor at all: vendor views leave them
	// out, so some devices of every batch match nothing.
	Unmanaged bool
	// Rand seeds per-device, per-vendor choices so views are reproducible.
	Rand uint64
}

// Fleet is a generated set of devices.
type Fleet struct {
	Seed    uint64
	Now     time.Time
	Devices []Device
}

// Generate builds n devices from seed; now anchors every timestamp.
func Generate(n int, seed uint64, now time.Time) *Fleet {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) // #nosec G404 -- a seeded PRNG on purpose: the mock fleet must be the same on every run; nothing secret comes from it
	f := &Fleet{Seed: seed, Now: now.UTC().Truncate(time.Second)}
	platforms := []string{"macOS", "macOS", "macOS", "Windows", "Windows", "Windows", "Linux", "iOS"}
	for i := range n {
		d := Device{
			Index:        i,
			CloudflareID: UUID(r),
			Platform:     platforms[r.IntN(len(platforms))],
			Health:       r.IntN(101),
			Rand:         r.Uint64(),
		}
		d.Email = fmt.Sprintf("user%04d@example.com", i/2) // two devices per user, often
		switch d.Platform {
		case "macOS":
			d.Hostname = fmt.Sprintf("mbp-%05d", i)
			d.Serial = fmt.Sprintf("C02%07d%s", i, string(rune('A'+r.IntN(26)))) // #nosec G115 -- IntN(26) is 0..25
		case "iOS":
			d.Hostname = fmt.Sprintf("iphone-%05d", i)
			d.Serial = fmt.Sprintf("F%09dQ", i)
		case "Windows":
			d.Hostname = fmt.Sprintf("desktop-%05d", i)
			d.Serial = fmt.Sprintf("PF%08d", i)
		case "Linux":
			d.Hostname = fmt.Sprintf("ws-%05d", i)
			d.Serial = fmt.Sprintf("LNX%07d", i)
		}
		if r.IntN(40) == 0 { // VMs and white boxes without a real serial
			d.PlaceholderSerial = []string{"To be filled by O.E.M.", "System Serial Number", "0", "Default string"}[r.IntN(4)]
			d.Serial = ""
		}
		nmac := 1 + r.IntN(2)
		for range nmac {
			d.MACs = append(d.MACs, MAC(r))
		}
		if r.IntN(3) == 0 {
			d.Domain = "corp.example"
		}
		age := time.Duration(r.IntN(72*60)) * time.Minute // seen in the last 3 days
		if r.IntN(25) == 0 {
			d.Stale = true
			age = time.Duration(60+r.IntN(120)) * 24 * time.Hour
		}
		d.LastSeen = f.Now.Add(-age)
		d.Reenrolled = r.IntN(20) == 0
		d.Unmanaged = r.IntN(10) == 0
		f.Devices = append(f.Devices, d)
	}
	return f
}

// CloudflareDevice is one entry of a custom device posture batch, as
// Cloudflare sends it.
type CloudflareDevice struct {
	DeviceID     string `json:"device_id"`
	SerialNumber string `json:"serial_number,omitempty"`
	MACAddress   string `json:"mac_address,omitempty"`
	Hostname     string `json:"hostname,omitempty"`
	Email        string `json:"email,omitempty"`
	VirtualIPv4  string `json:"virtual_ipv4,omitempty"`
}

// Batch returns what Cloudflare would send for every device: identifiers in
// the formats WARP reports (MACs colon or dash, hostnames sometimes
// qualified), with fields sometimes blank as the protocol allows.
func (f *Fleet) Batch() []CloudflareDevice {
	out := make([]CloudflareDevice, 0, len(f.Devices))
	for _, d := range f.Devices {
		r := rand.New(rand.NewPCG(d.Rand, 1)) // #nosec G404 -- a seeded PRNG on purpose: the mock fleet must be the same on every run; nothing secret comes from it
		cd := CloudflareDevice{
			DeviceID:    d.CloudflareID,
			Email:       d.Email,
			VirtualIPv4: fmt.Sprintf("100.96.%d.%d", d.Index/250, d.Index%250+1),
		}
		cd.SerialNumber = d.ReportedSerial()
		if len(d.MACs) > 0 && d.Platform != "iOS" {
			cd.MACAddress = d.MACs[0]
			if r.IntN(4) == 0 {
				cd.MACAddress = dashUpper(d.MACs[0])
			}
		}
		cd.Hostname = d.Hostname
		if d.Domain != "" && r.IntN(2) == 0 {
			cd.Hostname = d.Hostname + "." + d.Domain
		}
		if r.IntN(30) == 0 { // WARP could not read the serial
			cd.SerialNumber = ""
		}
		out = append(out, cd)
	}
	return out
}

// ReportedSerial is the serial a vendor agent reads off the device: the
// hardware serial, or the placeholder a VM's firmware reports instead.
func (d *Device) ReportedSerial() string {
	if d.Serial == "" {
		return d.PlaceholderSerial
	}
	return d.Serial
}

// VendorRand returns a reproducible random source for one device in one
// vendor view, so adding a vendor never changes another vendor's data.
func (d *Device) VendorRand(vendor string) *rand.Rand {
	return rand.New(rand.NewPCG(d.Rand, vendorHash(vendor))) // #nosec G404 -- a seeded PRNG on purpose: the mock fleet must be the same on every run; nothing secret comes from it
}

// vendorHash is FNV-1a of a vendor name, the stream of its random sources.
func vendorHash(vendor string) uint64 {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(vendor); i++ {
		h = (h ^ uint64(vendor[i])) * 1099511628211
	}
	return h
}

// UUID draws a random version-4 UUID, lower case, for ids in any view.
func UUID(r *rand.Rand) string {
	a, b := r.Uint64(), r.Uint64()
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", a>>32, (a>>16)&0xffff, a&0xfff, (b>>48)&0x3fff|0x8000, b&0xffffffffffff)
}

// MAC draws a unicast, locally administered MAC in canonical colon form.
func MAC(r *rand.Rand) string {
	b := make([]byte, 6)
	for i := range b {
		b[i] = byte(r.IntN(256)) // #nosec G115 -- IntN(256) is 0..255
	}
	b[0] = b[0]&^1 | 2 // never all-zero or broadcast
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5])
}

func dashUpper(m string) string {
	out := []byte(m)
	for i, c := range out {
		switch {
		case c == ':':
			out[i] = '-'
		case c >= 'a' && c <= 'f':
			out[i] = c - 'a' + 'A'
		}
	}
	return string(out)
}

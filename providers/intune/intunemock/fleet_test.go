package intunemock

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/postured/postured/internal/fleet"
)

var fleetNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func TestFleetView(t *testing.T) {
	f := fleet.Generate(2000, 42, fleetNow)
	devs, owners := fleetView(f)

	t.Run("deterministic", func(t *testing.T) {
		if !reflect.DeepEqual(devs, FleetDevices(fleet.Generate(2000, 42, fleetNow))) {
			t.Fatal("same seed, different Intune view")
		}
	})

	t.Run("membership", func(t *testing.T) {
		records := map[int]int{}
		labs := 0
		for _, o := range owners {
			if o < 0 {
				labs++
				continue
			}
			records[o]++
		}
		if labs == 0 {
			t.Error("no lab machines: the startswith-as-contains quirk has nothing to return")
		}
		perPlatform := map[string]int{}
		for o, n := range records {
			d := f.Devices[o]
			if d.Unmanaged {
				t.Fatalf("unmanaged device %d in Intune", o)
			}
			if want := map[bool]int{false: 1, true: 2}[d.Reenrolled]; n != want {
				t.Fatalf("device %d (re-enrolled %v) has %d records", o, d.Reenrolled, n)
			}
			perPlatform[d.Platform]++
		}
		if len(records) < 400 || len(devs) == len(records) {
			t.Errorf("implausible view: %d records for %d devices", len(devs), len(records))
		}
		// Windows first, Linux rarely.
		if perPlatform["Windows"] <= perPlatform["macOS"] || perPlatform["Linux"] == 0 || perPlatform["Linux"] >= perPlatform["macOS"] {
			t.Errorf("platform shares %v", perPlatform)
		}
	})

	t.Run("vendor formats", func(t *testing.T) {
		mac := regexp.MustCompile(`^[0-9A-F]{12}$`)
		ids := map[string]bool{}
		states := map[string]int{}
		var fqdn, upperWin, placeholder, fraction int
		for _, md := range devs {
			if ids[md.ID] {
				t.Fatalf("duplicate id %s", md.ID)
			}
			ids[md.ID] = true
			states[md.ComplianceState]++
			if md.WiFiMacAddress != "" && !mac.MatchString(md.WiFiMacAddress) {
				t.Errorf("wiFiMacAddress %q", md.WiFiMacAddress)
			}
			if md.EthernetMacAddress != "" && !mac.MatchString(md.EthernetMacAddress) {
				t.Errorf("ethernetMacAddress %q", md.EthernetMacAddress)
			}
			if strings.Contains(md.DeviceName, ".") {
				fqdn++
			}
			if md.OperatingSystem == "Windows" && md.DeviceName == strings.ToUpper(md.DeviceName) {
				upperWin++
			}
			switch md.SerialNumber {
			case "To be filled by O.E.M.", "System Serial Number", "0", "Default string":
				placeholder++
			}
			if md.LastSyncDateTime.Nanosecond()%100 == 0 && md.LastSyncDateTime.Nanosecond() != 0 {
				fraction++
			}
			if md.JailBroken == "" {
				t.Errorf("%s: jailBroken empty", md.ID)
			}
		}
		for _, s := range ComplianceStates {
			if states[s] == 0 {
				t.Errorf("no device with complianceState %s (%v)", s, states)
			}
		}
		if fqdn == 0 || upperWin == 0 || placeholder == 0 || fraction < len(devs)/2 {
			t.Errorf("fqdn %d, upper-case Windows %d, placeholder serials %d, 7-digit fractions %d", fqdn, upperWin, placeholder, fraction)
		}
	})

	t.Run("lab machines contain their device's name", func(t *testing.T) {
		for i, md := range devs {
			if owners[i] >= 0 {
				continue
			}
			named := devs[i-1]
			if !strings.HasPrefix(md.DeviceName, "lab-") && !strings.HasPrefix(md.DeviceName, "LAB-") ||
				!strings.Contains(strings.ToLower(md.DeviceName), strings.ToLower(named.DeviceName)) {
				t.Errorf("lab machine %q after %q", md.DeviceName, named.DeviceName)
			}
			if md.SerialNumber == named.SerialNumber || md.UserPrincipalName != "" || md.WiFiMacAddress != "" {
				t.Errorf("lab machine %q shares more than a name: %+v", md.DeviceName, md)
			}
		}
	})

	t.Run("truth preserved", func(t *testing.T) {
		for i, md := range devs {
			if owners[i] < 0 {
				continue
			}
			d := f.Devices[owners[i]]
			if md.LastSyncDateTime.After(d.LastSeen) {
				t.Fatalf("%s: lastSync %s after the device was last seen %s", md.ID, md.LastSyncDateTime, d.LastSeen)
			}
		}
	})
}

// TestVendorExpected checks the expected-score view against the records
// the mock serves: the newest record per device decides, scored by
// complianceState alone.
func TestVendorExpected(t *testing.T) {
	f := fleet.Generate(1500, 9, fleetNow)
	v := Vendor(f)
	devs, owners := fleetView(f)
	byID := map[string]ManagedDevice{}
	for _, md := range devs {
		byID[md.ID] = md
	}
	scores := map[string]int{"compliant": 100, "inGracePeriod": 50}
	reenrolled := 0
	for i, md := range devs {
		if owners[i] < 0 {
			if _, ok := v.Expected[owners[i]]; ok {
				t.Fatal("a lab machine has an expectation")
			}
			continue
		}
		e, ok := v.Expected[owners[i]]
		if !ok {
			t.Fatalf("device %d has record %s but no expectation", owners[i], md.ID)
		}
		cur := byID[e.ID]
		if md.LastSyncDateTime.After(cur.LastSyncDateTime) {
			t.Errorf("device %d: expected record %s is older than %s", owners[i], e.ID, md.ID)
		}
		if md.ID == e.ID {
			if e.Score != scores[md.ComplianceState] || !e.LastSeen.Equal(md.LastSyncDateTime) {
				t.Errorf("%s (%s): expected score %d, last seen %s", md.ID, md.ComplianceState, e.Score, e.LastSeen)
			}
			if healthy := f.Devices[owners[i]].Health >= 70; healthy != (e.Score == 100) {
				t.Errorf("device %d: health %d but score %d", owners[i], f.Devices[owners[i]].Health, e.Score)
			}
		}
		if len(e.Older) > 0 {
			reenrolled++
		}
	}
	if len(v.Expected) == 0 || reenrolled == 0 || len(v.Expected) >= len(devs) {
		t.Errorf("%d expectations over %d records, %d with older records", len(v.Expected), len(devs), reenrolled)
	}
}

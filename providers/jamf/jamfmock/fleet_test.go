package jamfmock

import (
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/postured/postured/internal/fleet"
)

var fleetNow = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

func TestFleetViewDeterministic(t *testing.T) {
	a, b := fleet.Generate(500, 7, fleetNow), fleet.Generate(500, 7, fleetNow)
	if !reflect.DeepEqual(FleetComputers(a), FleetComputers(b)) {
		t.Fatal("FleetComputers differs between two generations of the same fleet")
	}
	if !reflect.DeepEqual(FleetMobileDevices(a), FleetMobileDevices(b)) {
		t.Fatal("FleetMobileDevices differs between two generations of the same fleet")
	}
	if reflect.DeepEqual(FleetComputers(a), FleetComputers(fleet.Generate(500, 8, fleetNow))) {
		t.Fatal("different seeds gave the same computers")
	}
}

func TestFleetViewMembership(t *testing.T) {
	f := fleet.Generate(3000, 42, fleetNow)
	v := newView(f)
	for _, kind := range []struct {
		name     string
		platform string
		owners   []int
	}{
		{"computers", "macOS", v.computerOwners},
		{"mobile devices", "iOS", v.mobileOwners},
	} {
		t.Run(kind.name, func(t *testing.T) {
			records := map[int]int{}
			for _, o := range kind.owners {
				records[o]++
			}
			platform := 0
			for _, d := range f.Devices {
				if d.Platform == kind.platform {
					platform++
				}
			}
			for o, n := range records {
				d := f.Devices[o]
				if d.Platform != kind.platform || d.Unmanaged {
					t.Fatalf("device %d (%s, unmanaged %v) among Jamf %s", o, d.Platform, d.Unmanaged, kind.name)
				}
				if want := map[bool]int{false: 1, true: 2}[d.Reenrolled]; n != want {
					t.Fatalf("device %d (re-enrolled %v) has %d records", o, d.Reenrolled, n)
				}
			}
			// Jamf holds most, never all, of the platform's devices.
			if len(records) < platform/2 || len(records) >= platform {
				t.Errorf("%d of %d %s devices in Jamf", len(records), platform, kind.platform)
			}
		})
	}
}

func TestFleetViewPlausible(t *testing.T) {
	f := fleet.Generate(3000, 42, fleetNow)
	comps, mobiles := FleetComputers(f), FleetMobileDevices(f)
	statuses := map[string]int{}
	serials := map[string]int{}
	var unmanaged, zeroMAC, altMAC, noUser, noEmail, fqdn int
	for i, c := range comps {
		if c.ID != strconv.Itoa(i+1) {
			t.Fatalf("computer %d has id %q", i, c.ID)
		}
		statuses[c.OperatingSystem.FileVault2Status]++
		serials[c.Hardware.SerialNumber]++
		if !c.General.RemoteManagement.Managed {
			unmanaged++
		}
		if c.Hardware.MacAddress == "00:00:00:00:00:00" {
			zeroMAC++
		}
		if c.Hardware.AltMacAddress != nil {
			altMAC++
		}
		switch {
		case c.UserAndLocation == nil:
			noUser++
		case c.UserAndLocation.Email == "":
			noEmail++
		}
		if len(c.General.Name) > len("mbp-00000") {
			fqdn++
		}
		if _, err := time.Parse(time.RFC3339Nano, *c.General.LastContactTime); err != nil {
			t.Fatalf("lastContactTime %q: %v", *c.General.LastContactTime, err)
		}
	}
	for _, s := range []string{FileVaultAllEncrypted, FileVaultBootEncrypted, FileVaultSomeEncrypted, FileVaultNotEncrypted, FileVaultNotApplicable} {
		if statuses[s] == 0 {
			t.Errorf("no computer with fileVault2Status %s (%v)", s, statuses)
		}
	}
	dups := 0
	for _, n := range serials {
		if n > 1 {
			dups++
		}
	}
	for name, n := range map[string]int{"unmanaged": unmanaged, "zero MAC": zeroMAC, "alt MAC": altMAC,
		"null userAndLocation": noUser, "empty email": noEmail, "FQDN name": fqdn, "duplicate serial": dups} {
		if n == 0 || n > len(comps)/2+1 && name != "alt MAC" {
			t.Errorf("%s: %d of %d computers", name, n, len(comps))
		}
	}

	var jailbroken, noPasscode int
	for i, m := range mobiles {
		if m.MobileDeviceID != strconv.Itoa(i+1) || m.DeviceType != "ios" {
			t.Fatalf("mobile %d: id %q type %q", i, m.MobileDeviceID, m.DeviceType)
		}
		if m.Security.JailBreakDetected {
			jailbroken++
		}
		if !m.Security.PasscodePresent {
			noPasscode++
		}
	}
	if jailbroken == 0 || noPasscode == 0 {
		t.Errorf("mobile devices: %d jailbroken, %d without passcode", jailbroken, noPasscode)
	}
}

// TestVendorExpected checks the expected-score view against the records
// the mock serves, one case per scoring rule.
func TestVendorExpected(t *testing.T) {
	f := fleet.Generate(3000, 5, fleetNow)
	exp := Vendor(f).Expected
	v := newView(f)
	rules := map[string]int{}
	for i, c := range v.computers {
		e := exp[v.computerOwners[i]]
		if e.ID != c.ID {
			if !slices.Contains(e.Older, c.ID) {
				t.Errorf("computer %s: neither current (%s) nor older (%v)", c.ID, e.ID, e.Older)
			}
			continue
		}
		fv := c.OperatingSystem.FileVault2Status
		switch managed := c.General.RemoteManagement.Managed; {
		case !managed:
			rules["computer unmanaged"]++
			if e.Score != 0 {
				t.Errorf("unmanaged computer %s scored %d", c.ID, e.Score)
			}
		case fv == FileVaultAllEncrypted || fv == FileVaultBootEncrypted:
			rules["computer encrypted"]++
			if e.Score != 100 {
				t.Errorf("managed %s computer %s scored %d", fv, c.ID, e.Score)
			}
		default:
			rules["computer not encrypted"]++
			if e.Score != 50 {
				t.Errorf("managed %s computer %s scored %d", fv, c.ID, e.Score)
			}
		}
		if FormatTime(e.LastSeen) != *c.General.LastContactTime {
			t.Errorf("computer %s: last seen %s, last contact %s", c.ID, e.LastSeen, *c.General.LastContactTime)
		}
	}
	for i, m := range v.mobiles {
		e := exp[v.mobileOwners[i]]
		if e.ID != "mobile-"+m.MobileDeviceID {
			continue
		}
		want, rule := 50, "mobile no passcode"
		switch {
		case !m.General.Managed || m.Security.JailBreakDetected:
			want, rule = 0, "mobile unmanaged or jailbroken"
		case m.Security.PasscodePresent:
			want, rule = 100, "mobile passcode"
		}
		rules[rule]++
		if e.Score != want {
			t.Errorf("mobile %s (%s) scored %d, want %d", m.MobileDeviceID, rule, e.Score, want)
		}
	}
	for _, r := range []string{"computer unmanaged", "computer encrypted", "computer not encrypted", "mobile unmanaged or jailbroken", "mobile passcode", "mobile no passcode"} {
		if rules[r] == 0 {
			t.Errorf("no current record exercises %q: %v", r, rules)
		}
	}
}

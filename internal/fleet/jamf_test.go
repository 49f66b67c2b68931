package fleet

import (
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/postured/postured/providers/jamf/jamfmock"
)

func TestJamfViewDeterministic(t *testing.T) {
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	a, b := Generate(500, 7, now), Generate(500, 7, now)
	if !reflect.DeepEqual(a.JamfComputers(), b.JamfComputers()) {
		t.Fatal("JamfComputers differs between two generations of the same fleet")
	}
	if !reflect.DeepEqual(a.JamfMobileDevices(), b.JamfMobileDevices()) {
		t.Fatal("JamfMobileDevices differs between two generations of the same fleet")
	}
	if reflect.DeepEqual(a.JamfComputers(), Generate(500, 8, now).JamfComputers()) {
		t.Fatal("different seeds gave the same computers")
	}
}

func TestJamfViewPlausible(t *testing.T) {
	f := Generate(3000, 42, time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC))
	wantComputers, wantMobiles := 0, 0
	for _, d := range f.Devices {
		n := 0
		if d.InJamf {
			n = 1
			if d.Reenrolled {
				n = 2
			}
		}
		switch d.Platform {
		case "macOS":
			wantComputers += n
		case "iOS":
			wantMobiles += n
		}
	}
	comps, mobiles := f.JamfComputers(), f.JamfMobileDevices()
	if len(comps) != wantComputers || len(mobiles) != wantMobiles {
		t.Fatalf("got %d computers, %d mobile devices; want %d, %d", len(comps), len(mobiles), wantComputers, wantMobiles)
	}

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
	for _, s := range []string{jamfmock.FileVaultAllEncrypted, jamfmock.FileVaultBootEncrypted, jamfmock.FileVaultSomeEncrypted,
		jamfmock.FileVaultNotEncrypted, jamfmock.FileVaultNotApplicable} {
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

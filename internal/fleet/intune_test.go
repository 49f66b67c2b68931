package fleet

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/postured/postured/providers/intune/intunemock"
)

func TestIntuneDevices(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	f := Generate(2000, 42, now)
	devs := f.IntuneDevices()

	t.Run("deterministic", func(t *testing.T) {
		again := Generate(2000, 42, now).IntuneDevices()
		if !reflect.DeepEqual(devs, again) {
			t.Fatal("same seed, different Intune view")
		}
	})

	inIntune, reenrolled := 0, 0
	bySerial := map[string]*Device{}
	for i := range f.Devices {
		d := &f.Devices[i]
		if d.InIntune {
			inIntune++
			if d.Reenrolled {
				reenrolled++
			}
		}
		if d.Serial != "" {
			bySerial[d.Serial] = d
		}
	}

	t.Run("counts", func(t *testing.T) {
		if len(devs) != inIntune+reenrolled {
			t.Errorf("%d records for %d devices (%d re-enrolled)", len(devs), inIntune, reenrolled)
		}
		if inIntune < 400 || reenrolled == 0 {
			t.Errorf("implausible fleet: %d in Intune, %d re-enrolled", inIntune, reenrolled)
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
		for _, s := range intunemock.ComplianceStates {
			if states[s] == 0 {
				t.Errorf("no device with complianceState %s (%v)", s, states)
			}
		}
		if fqdn == 0 || upperWin == 0 || placeholder == 0 || fraction < len(devs)/2 {
			t.Errorf("fqdn %d, upper-case Windows %d, placeholder serials %d, 7-digit fractions %d", fqdn, upperWin, placeholder, fraction)
		}
	})

	t.Run("truth preserved", func(t *testing.T) {
		newest := map[string]intunemock.ManagedDevice{}
		for _, md := range devs {
			if cur, ok := newest[md.SerialNumber]; !ok || md.LastSyncDateTime.After(cur.LastSyncDateTime) {
				newest[md.SerialNumber] = md
			}
		}
		for serial, md := range newest {
			d, ok := bySerial[serial]
			if !ok {
				continue
			}
			if md.LastSyncDateTime.After(d.LastSeen) || d.LastSeen.Sub(md.LastSyncDateTime) > time.Second {
				t.Errorf("%s: lastSync %s, device last seen %s", serial, md.LastSyncDateTime, d.LastSeen)
			}
			if (d.Health >= 70) != (md.ComplianceState == "compliant") {
				t.Errorf("%s: health %d but %s", serial, d.Health, md.ComplianceState)
			}
		}
	})
}

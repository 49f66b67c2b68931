package fleet

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

func TestGenerateDeterministic(t *testing.T) {
	tests := []struct {
		name  string
		seedA uint64
		seedB uint64
		same  bool
	}{
		{"same seed, same fleet", 7, 7, true},
		{"other seed, other fleet", 7, 8, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := Generate(300, tc.seedA, testNow), Generate(300, tc.seedB, testNow)
			if got := reflect.DeepEqual(a.Devices, b.Devices); got != tc.same {
				t.Errorf("devices equal = %v, want %v", got, tc.same)
			}
			if got := reflect.DeepEqual(a.Batch(), b.Batch()); got != tc.same {
				t.Errorf("batches equal = %v, want %v", got, tc.same)
			}
		})
	}
}

// TestGenerateMessiness checks that a fleet carries every irregularity the
// vendor views and the matching rules are exercised with, in plausible
// shares.
func TestGenerateMessiness(t *testing.T) {
	f := Generate(3000, 42, testNow)
	if f.Now != testNow || len(f.Devices) != 3000 {
		t.Fatalf("now %s, %d devices", f.Now, len(f.Devices))
	}
	counts := map[string]int{}
	serials, hosts := map[string]bool{}, map[string]bool{}
	macRE := regexp.MustCompile(`^[0-9a-f]{2}(:[0-9a-f]{2}){5}$`)
	for i, d := range f.Devices {
		if d.Index != i {
			t.Fatalf("device %d has index %d", i, d.Index)
		}
		if hosts[d.Hostname] {
			t.Fatalf("hostname %s twice", d.Hostname)
		}
		hosts[d.Hostname] = true
		if d.Serial != "" {
			if serials[d.Serial] {
				t.Fatalf("serial %s twice", d.Serial)
			}
			serials[d.Serial] = true
		}
		if len(d.MACs) == 0 {
			t.Fatalf("device %d has no MAC", i)
		}
		for _, m := range d.MACs {
			if !macRE.MatchString(m) {
				t.Fatalf("device %d: MAC %q not canonical", i, m)
			}
		}
		if d.Health < 0 || d.Health > 100 {
			t.Fatalf("device %d: health %d", i, d.Health)
		}
		if d.LastSeen.After(f.Now) {
			t.Fatalf("device %d seen in the future", i)
		}
		if age := f.Now.Sub(d.LastSeen); d.Stale != (age >= 60*24*time.Hour) {
			t.Fatalf("device %d: stale %v, last seen %s ago", i, d.Stale, age)
		}
		counts[d.Platform]++
		for name, ok := range map[string]bool{
			"placeholder serial": d.Serial == "" && d.PlaceholderSerial != "" && d.ReportedSerial() == d.PlaceholderSerial,
			"stale":              d.Stale,
			"re-enrolled":        d.Reenrolled,
			"unmanaged":          d.Unmanaged,
			"domain":             d.Domain != "",
			"two MACs":           len(d.MACs) == 2,
		} {
			if ok {
				counts[name]++
			}
		}
	}
	for _, tc := range []struct {
		name     string
		min, max int
	}{
		{"macOS", 900, 1400}, {"Windows", 900, 1400}, {"Linux", 200, 600}, {"iOS", 200, 600},
		{"placeholder serial", 20, 150}, {"stale", 50, 200}, {"re-enrolled", 80, 250},
		{"unmanaged", 200, 400}, {"domain", 800, 1200}, {"two MACs", 1200, 1800},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if n := counts[tc.name]; n < tc.min || n > tc.max {
				t.Errorf("%d of 3000 devices, want %d..%d", n, tc.min, tc.max)
			}
		})
	}
}

func TestBatch(t *testing.T) {
	f := Generate(2000, 42, testNow)
	batch := f.Batch()
	if len(batch) != len(f.Devices) {
		t.Fatalf("%d batch entries for %d devices", len(batch), len(f.Devices))
	}
	counts := map[string]int{}
	for i, cd := range batch {
		d := f.Devices[i]
		if cd.DeviceID != d.CloudflareID || cd.Email != d.Email {
			t.Fatalf("entry %d: %+v for device %+v", i, cd, d)
		}
		switch {
		case cd.SerialNumber == "":
			counts["blank serial"]++
		case cd.SerialNumber != d.ReportedSerial():
			t.Fatalf("entry %d: serial %q, device reports %q", i, cd.SerialNumber, d.ReportedSerial())
		}
		switch {
		case d.Platform == "iOS":
			if cd.MACAddress != "" {
				t.Fatalf("entry %d: iOS device sent MAC %q", i, cd.MACAddress)
			}
		case cd.MACAddress == d.MACs[0]:
			counts["colon MAC"]++
		case cd.MACAddress == strings.ToUpper(strings.ReplaceAll(d.MACs[0], ":", "-")):
			counts["dash MAC"]++
		default:
			t.Fatalf("entry %d: MAC %q is not device MAC %q", i, cd.MACAddress, d.MACs[0])
		}
		switch cd.Hostname {
		case d.Hostname:
		case d.Hostname + "." + d.Domain:
			counts["fqdn"]++
		default:
			t.Fatalf("entry %d: hostname %q for %q", i, cd.Hostname, d.Hostname)
		}
	}
	for _, k := range []string{"blank serial", "colon MAC", "dash MAC", "fqdn"} {
		if counts[k] == 0 {
			t.Errorf("no batch entry with %s: %v", k, counts)
		}
	}
}

func TestVendorRand(t *testing.T) {
	d := Generate(1, 3, testNow).Devices[0]
	draw := func(vendor string) [4]uint64 {
		r := d.VendorRand(vendor)
		return [4]uint64{r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64()}
	}
	tests := []struct {
		name string
		a, b string
		same bool
	}{
		{"same vendor, same draws", "jamf", "jamf", true},
		{"vendors draw independently", "jamf", "intune", false},
		{"names are not prefixes", "jamf", "jamf2", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := draw(tc.a) == draw(tc.b); got != tc.same {
				t.Errorf("%s vs %s: equal = %v, want %v", tc.a, tc.b, got, tc.same)
			}
		})
	}
}

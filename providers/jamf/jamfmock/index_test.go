package jamfmock

import (
	"slices"
	"strings"
	"testing"

	"github.com/postured/postured/internal/fleet"
	"github.com/postured/postured/internal/mockkit"
)

var (
	computerSpec = listSpec[Computer]{name: "computers", indexed: computerIndexed,
		get: func(c *Computer) getter { return computerGetter(c, false) }}
	mobileSpec = listSpec[MobileDevice]{name: "mobiles", indexed: mobileIndexed, get: mobileGetter}
)

// scanList is what serveList did before the index: every record against e.
func scanList[T any](items []T, spec listSpec[T], e expr) []*T {
	var out []*T
	for i := range items {
		if e.eval(spec.get(&items[i])) {
			out = append(out, &items[i])
		}
	}
	return out
}

// str is a field's value quoted as an RSQL argument (serials may hold
// spaces).
func str(get getter, sel string) string {
	v, _ := get(sel)
	return `"` + v.s + `"`
}

func unquote(s string) string { return strings.Trim(s, `"`) }

func TestIndexAgreesWithScan(t *testing.T) {
	v := newView(fleet.Generate(4000, 11, fleetNow))
	// Values only Unicode case rules relate to ASCII queries: EqualFold
	// folds U+017F LONG S with 's' and U+212A KELVIN SIGN with 'k'.
	computers := append(v.computers,
		Computer{ID: "9001", General: &General{Name: "\u212Aiosk-7"}, Hardware: &Hardware{SerialNumber: "\u017FN-1", MacAddress: "aa:bb:cc:dd:ee:01"},
			UserAndLocation: &UserAndLocation{Email: "Zoë@Example.com"}},
		Computer{ID: "9002"}, // every section null
	)
	s := New(Options{Computers: computers, MobileDevices: v.mobiles})
	cg := func(i int) getter { return computerGetter(&s.opts.Computers[i], false) }
	mg := func(i int) getter { return mobileGetter(&s.opts.MobileDevices[i]) }
	var serials, names []string
	for i := range 30 {
		serials = append(serials, strings.ToLower(str(cg(i*3), "hardware.serialNumber")))
	}
	for i := range 10 {
		names = append(names, str(cg(i*5), "general.name"))
	}
	fqdn := slices.IndexFunc(s.opts.Computers, func(c Computer) bool { return c.General != nil && strings.Contains(c.General.Name, ".") })
	if fqdn < 0 {
		t.Fatal("the generated fleet has no Mac with an FQDN name")
	}
	short, _, _ := strings.Cut(unquote(str(cg(fqdn), "general.name")), ".")
	hostnames := func(names ...string) string { // postured's hostname filter
		f := "general.name=in=(" + strings.Join(names, ",") + ")"
		for _, n := range names {
			f += `,general.name=="` + unquote(n) + `.*"`
		}
		return f
	}
	tests := []struct {
		name     string
		mobile   bool
		filter   string
		indexed  bool // the index narrows it (else it scans)
		someWant bool // it matches at least one record
	}{
		{"serial ==", false, "hardware.serialNumber==" + str(cg(1), "hardware.serialNumber"), true, true},
		{"serial == in another case", false, "hardware.serialNumber==" + strings.ToLower(str(cg(2), "hardware.serialNumber")), true, true},
		{"serials =in=", false, "hardware.serialNumber=in=(" + strings.Join(serials, ",") + ")", true, true},
		{"serial by Unicode case rules", false, "hardware.serialNumber==SN-1", true, true},
		{"MAC =in=, upper case", false, "hardware.macAddress=in=(" + strings.ToUpper(str(cg(4), "hardware.macAddress")) + ",AA:BB:CC:DD:EE:01)", true, true},
		{"email, quoted", false, "userAndLocation.email==" + strings.ToUpper(str(cg(6), "userAndLocation.email")), true, true},
		{"non-ASCII email", false, `userAndLocation.email=="ZOË@example.com"`, false, true},
		{"hostnames with FQDN patterns", false, hostnames(append(names, strings.ToUpper(short))...), true, true},
		{"hostname by Unicode case rules", false, hostnames("KIOSK-7"), true, true},
		{"serial and managed", false, "hardware.serialNumber==" + str(cg(7), "hardware.serialNumber") + ";general.remoteManagement.managed==true", true, true},
		{"serial or unindexed", false, "hardware.serialNumber==" + str(cg(8), "hardware.serialNumber") + ",general.platform==Mac", false, true},
		{"!=", false, "hardware.serialNumber!=" + str(cg(9), "hardware.serialNumber"), false, true},
		{"=out=", false, "hardware.serialNumber=out=(" + str(cg(9), "hardware.serialNumber") + ")", false, true},
		{"null", false, "general.name==null", false, true},
		{"inner wildcard", false, `general.name=="` + short[:2] + `*` + short[3:] + `*"`, false, true},
		{"suffix wildcard", false, `general.name=="*` + short[1:] + `*"`, false, true},
		{"no such serial", false, "hardware.serialNumber=in=(NOPE1,NOPE2)", true, false},
		{"mobile serial", true, "serialNumber==" + strings.ToLower(str(mg(0), "serialNumber")), true, true},
		{"mobile MACs", true, "wifiMacAddress=in=(" + str(mg(1), "wifiMacAddress") + "," + strings.ToUpper(str(mg(2), "wifiMacAddress")) + ")", true, true},
		{"mobile names", true, `displayName=in=(` + str(mg(3), "displayName") + `),displayName=="` + unquote(str(mg(3), "displayName")) + `.*"`, true, true},
		{"mobile email", true, "emailAddress==" + strings.ToUpper(str(mg(4), "emailAddress")), true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := parseFilter(tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			var got, want []string
			var indexed bool
			if tt.mobile {
				_, indexed = candidates(e, func(sel string) *mockkit.FoldIndex {
					return fieldIndex(&s.index, s.opts.MobileDevices, mobileSpec, sel)
				})
				for _, m := range matching(&s.index, s.opts.MobileDevices, mobileSpec, e) {
					got = append(got, m.MobileDeviceID)
				}
				for _, m := range scanList(s.opts.MobileDevices, mobileSpec, e) {
					want = append(want, m.MobileDeviceID)
				}
			} else {
				_, indexed = candidates(e, func(sel string) *mockkit.FoldIndex { return fieldIndex(&s.index, s.opts.Computers, computerSpec, sel) })
				for _, c := range matching(&s.index, s.opts.Computers, computerSpec, e) {
					got = append(got, c.ID)
				}
				for _, c := range scanList(s.opts.Computers, computerSpec, e) {
					want = append(want, c.ID)
				}
			}
			if indexed != tt.indexed {
				t.Fatalf("indexed = %v, want %v", indexed, tt.indexed)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("index found %v, the scan %v", got, want)
			}
			if (len(got) > 0) != tt.someWant {
				t.Fatalf("%d records matched, want some: %v", len(got), tt.someWant)
			}
		})
	}
}

func TestIndexFollowsDrift(t *testing.T) {
	f := fleet.Generate(500, 3, fleetNow)
	v := newView(f)
	s := New(Options{Computers: v.computers, MobileDevices: v.mobiles})
	l := &live{fleet: f, s: s, computerOwners: v.computerOwners, mobileOwners: v.mobileOwners, guard: mockkit.NewGuard(s)}
	serial := s.opts.Computers[0].Hardware.SerialNumber
	e, err := parseFilter("hardware.serialNumber==" + serial)
	if err != nil {
		t.Fatal(err)
	}
	query := func() []string {
		var got, want []string
		for _, c := range matching(&s.index, s.opts.Computers, computerSpec, e) {
			got = append(got, c.ID)
		}
		for _, c := range scanList(s.opts.Computers, computerSpec, e) {
			want = append(want, c.ID)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("index found %v, the scan %v", got, want)
		}
		return got
	}
	before := query() // builds the index
	l.drift([]fleet.Change{{Index: v.computerOwners[0], Health: 80, LastSeen: fleetNow, Reenrolled: true, Rand: 9}})
	if after := query(); len(after) != len(before)+1 {
		t.Fatalf("serial %s: computers %v before re-enrolment, %v after; want one more", serial, before, after)
	}
}

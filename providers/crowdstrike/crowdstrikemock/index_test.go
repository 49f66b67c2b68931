package crowdstrikemock

import (
	"slices"
	"strings"
	"testing"

	"github.com/postured/postured/internal/fleet"
	"github.com/postured/postured/internal/mockkit"
)

// scan is what matchHosts did before the index: every host against f.
func scan(s *Server, f *filter) []int {
	var out []int
	for i := range s.hosts {
		if f.match(s.hosts[i].field, s.opts.SubstringTerms) {
			out = append(out, i)
		}
	}
	return out
}

// indexFleet is a generated Falcon tenant plus hosts whose values only
// Unicode case rules relate to ASCII queries: U+212A KELVIN SIGN lowers to
// 'k', and an upper-case non-ASCII serial.
func indexFleet(t *testing.T) *Server {
	t.Helper()
	v := newView(fleet.Generate(3000, 11, fleetNow))
	extra := []Host{
		{DeviceID: "k1", Hostname: "\u212Aiosk-7", SerialNumber: "ÄBC-1", Email: "Zoë@Example.com", MACAddress: "aa-bb-cc-dd-ee-01"},
		{DeviceID: "k2", Hostname: "kiosk-7.corp.example", SerialNumber: "äbc-1", Email: "zoë@example.com", MACAddress: "AA-BB-CC-DD-EE-02"},
	}
	return New(Options{Devices: append(v.hosts, extra...), Assessments: v.zta})
}

func quoteTerms(prop string, vals ...string) string {
	terms := make([]string, len(vals))
	for i, v := range vals {
		terms[i] = prop + ":'" + v + "'"
	}
	return strings.Join(terms, ",")
}

func bracket(prop string, vals ...string) string {
	return prop + ":['" + strings.Join(vals, "','") + "']"
}

func TestIndexAgreesWithScan(t *testing.T) {
	s := indexFleet(t)
	h := s.hosts
	var serials []string
	for i := range 20 {
		serials = append(serials, strings.ToUpper(h[i*7].SerialNumber))
	}
	macs := []string{h[3].MACAddress, h[4].ConnectionMACAddress, "aa-bb-cc-dd-ee-02"}
	emailHost := slices.IndexFunc(h, func(x Host) bool { return x.Email != "" })
	fqdnHost := slices.IndexFunc(h, func(x Host) bool { return strings.Contains(x.Hostname, ".") })
	if emailHost < 0 || fqdnHost < 0 {
		t.Fatal("the generated fleet has no host with an email or an FQDN hostname")
	}
	short, _, _ := strings.Cut(h[fqdnHost].Hostname, ".")
	tests := []struct {
		name    string
		filter  string
		indexed bool // the index narrows it (else it scans)
		some    bool // it matches at least one host
	}{
		{"serial as stored", quoteTerms("serial_number", h[1].SerialNumber), true, true},
		{"serial in another case", quoteTerms("serial_number", strings.ToLower(h[2].SerialNumber)), true, true},
		{"serial prefix", quoteTerms("serial_number", h[5].SerialNumber[:3]), true, true},
		{"20 serials OR-ed", quoteTerms("serial_number", serials...), true, true},
		{"hostname, short name of an FQDN", quoteTerms("hostname", strings.ToUpper(short)), true, true},
		{"hostname by Unicode case rules", quoteTerms("hostname", "KIOSK-7"), true, true},
		{"email in another case", quoteTerms("email", strings.ToUpper(h[emailHost].Email)), true, true},
		{"non-ASCII email", quoteTerms("email", "ZOË@example.com"), false, true},
		{"non-ASCII serial", quoteTerms("serial_number", "äbc"), false, true},
		{"MAC lists, exact case", bracket("mac_address", macs...) + "," + bracket("connection_mac_address", macs...), true, true},
		{"MAC list in the wrong case", bracket("mac_address", strings.ToUpper(h[3].MACAddress)), true, false},
		{"serial list, exact case", bracket("serial_number", h[6].SerialNumber, h[7].SerialNumber), true, true},
		{"non-ASCII serial list", bracket("serial_number", h[6].SerialNumber, "ÄBC-1"), false, true},
		{"serial and status", quoteTerms("serial_number", h[8].SerialNumber) + "+status:'normal'", true, true},
		{"serial or a scanned term", quoteTerms("serial_number", h[9].SerialNumber) + ",platform_name:'Mac'", false, true},
		{"negated serial", "serial_number:!'" + h[10].SerialNumber + "'", false, true},
		{"glob", "hostname:'*" + short[1:] + "*'", false, true},
		{"contains operator", "hostname:*'" + short[1:] + "'", false, true},
		{"text match", "hostname:~'" + strings.ToUpper(h[fqdnHost].Hostname) + "'", false, true},
		{"empty value", "email:''", true, true},
		{"unindexed property", "platform_name:'Windows'", false, true},
		{"comparison", "last_seen:>'2020-01-01'", false, true},
		{"no such serial", quoteTerms("serial_number", "NO-SUCH-SERIAL", "ZZZ"), true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseFilter(tt.filter, hostProperty)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := candidates(f.root, s.index.get(s.hosts)); ok != tt.indexed {
				t.Fatalf("indexed = %v, want %v", ok, tt.indexed)
			}
			got, want := s.matching(f), scan(s, f)
			if !slices.Equal(got, want) {
				t.Fatalf("index found hosts %v, the scan %v", got, want)
			}
			if (len(got) > 0) != tt.some {
				t.Fatalf("%d hosts matched, want some: %v", len(got), tt.some)
			}
		})
	}
}

func TestFoldIndexNarrows(t *testing.T) {
	s := indexFleet(t)
	f, err := parseFilter(quoteTerms("serial_number", s.hosts[0].SerialNumber), hostProperty)
	if err != nil {
		t.Fatal(err)
	}
	set, ok := candidates(f.root, s.index.get(s.hosts))
	// The two non-ASCII extra hosts are candidates of every lookup; a few
	// serials may share the prefix.
	if !ok || len(set) > 10 {
		t.Fatalf("%d candidates (indexed %v) for one serial among %d hosts", len(set), ok, len(s.hosts))
	}
}

func TestIndexFollowsDrift(t *testing.T) {
	f := fleet.Generate(500, 3, fleetNow)
	v := newView(f)
	s := New(Options{Devices: v.hosts, Assessments: v.zta})
	l := &live{fleet: f, s: s, owners: v.owners, guard: mockkit.NewGuard(s)}
	owner := v.owners[0]
	serial := s.hosts[0].SerialNumber
	query := func() []string {
		fl, err := parseFilter(quoteTerms("serial_number", serial), hostProperty)
		if err != nil {
			t.Fatal(err)
		}
		got, want := s.matching(fl), scan(s, fl)
		if !slices.Equal(got, want) {
			t.Fatalf("index found hosts %v, the scan %v", got, want)
		}
		var ids []string
		for _, i := range got {
			ids = append(ids, s.hosts[i].DeviceID)
		}
		return ids
	}
	before := query() // builds the index
	l.drift([]fleet.Change{{Index: owner, Health: 80, LastSeen: fleetNow, Reenrolled: true, Rand: 9}})
	after := query()
	if len(after) != len(before)+1 {
		t.Fatalf("serial %s: hosts %v before re-enrolment, %v after; want one more", serial, before, after)
	}
}
